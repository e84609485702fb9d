using System.Buffers;
using System.Text.Unicode;
using Ctfw.Firewall.Logging;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The one thread that writes the lines of a <see cref="LogQueue"/> to a stream (the daemon's
/// stderr): each line UTF-8 encoded into a buffer of its own with a newline, one write per batch.
/// It is the only thread that waits on the stream. While it waits, lines collect in the queue and,
/// once that is full, are lost there and counted; nobody else is held up. <see cref="Stop"/> gives
/// it a deadline for what is still queued, so a stderr that never drains delays a stop by that much
/// and no more (the thread is a background one: a process may end while it is still in a write).
/// </summary>
internal sealed class LogWriter
{
    /// <summary>How long the thread sleeps when the queue is empty: the most a line waits before its write starts.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    private const int BufferBytes = 64 * 1024;

    private readonly LogQueue _queue;
    private readonly Stream _output;
    private readonly byte[] _buffer = new byte[BufferBytes];
    private readonly Thread _thread;
    private int _used;
    private long _batchLines;
    private long _written;
    private long _writeErrors;

    // Set once by Stop, read by the thread each turn; volatile so the read is fresh in the loop.
    private volatile bool _stopping;

    public LogWriter(LogQueue queue, Stream output, string threadName = "ctfw-log")
    {
        _queue = queue;
        _output = output;
        _thread = new Thread(Run) { Name = threadName, IsBackground = true };
    }

    public LogQueue Queue => _queue;

    /// <summary>
    /// Start each line with its syslog priority, <c>&lt;N&gt;</c> (<see cref="JournalPriority.Of"/>): for a
    /// stream journald reads (<see cref="JournalPriority.StderrIsJournal"/>), which takes the prefix off.
    /// </summary>
    public bool JournalPriorities { get; init; }

    /// <summary>Lines written to the stream.</summary>
    public long Written => Volatile.Read(ref _written); // statistic: a whole 64-bit read, written by the thread only

    /// <summary>Lines taken from the queue whose write failed (an I/O error on the stream).</summary>
    public long WriteErrors => Volatile.Read(ref _writeErrors);

    public void Start() => _thread.Start();

    /// <summary>
    /// Lets the thread write what is queued, up to <paramref name="timeout"/>; true when it did and
    /// ended, false when it is still in a write (or has more to write) at the deadline, in which case
    /// it is left behind. Lines queued after this call may not be written.
    /// </summary>
    public bool Stop(TimeSpan timeout)
    {
        _stopping = true;
        return _thread.ThreadState == ThreadState.Unstarted || _thread.Join(timeout);
    }

    private void Run()
    {
        while (true)
        {
            // Read before draining: everything queued before Stop was called is drained before the thread ends.
            bool stopping = _stopping;
            while (_queue.TryPeek(out ReadOnlySpan<char> line))
            {
                Append(line);
                _queue.Release();
                _batchLines++;
            }
            Flush();
            if (stopping)
                return;
            Thread.Sleep(PollInterval);
        }
    }

    private void Append(ReadOnlySpan<char> line)
    {
        if (JournalPriorities)
        {
            if (_buffer.Length - _used < 3)
                Flush();
            _buffer[_used++] = (byte)'<';
            _buffer[_used++] = (byte)('0' + JournalPriority.Of(line));
            _buffer[_used++] = (byte)'>';
        }
        while (true)
        {
            OperationStatus status = Utf8.FromUtf16(line, _buffer.AsSpan(_used), out int read, out int written);
            _used += written;
            line = line[read..];
            if (status == OperationStatus.Done)
                break;
            Flush(); // DestinationTooSmall: a long line goes out in pieces
        }
        if (_used == _buffer.Length)
            Flush();
        _buffer[_used++] = (byte)'\n';
    }

    private void Flush()
    {
        if (_used == 0)
            return;
        try
        {
            _output.Write(_buffer, 0, _used);
            _output.Flush();
            Volatile.Write(ref _written, _written + _batchLines);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
        {
            Volatile.Write(ref _writeErrors, _writeErrors + _batchLines);
        }
        _used = 0;
        _batchLines = 0;
    }
}
