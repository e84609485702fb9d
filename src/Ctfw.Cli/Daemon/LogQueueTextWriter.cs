using System.Globalization;
using System.Text;
using Ctfw.Firewall.Logging;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// A <see cref="TextWriter"/> whose lines go into a <see cref="LogQueue"/>, for what the daemon
/// writes off the packet path (start, reload, state file, hand-over, the counters at stop): a line
/// never waits for the output; when the queue is full it is lost there and counted. Text without a
/// newline waits here for the rest of its line. Safe from any thread: a lock around the unfinished
/// line, never held across I/O.
/// </summary>
internal sealed class LogQueueTextWriter : TextWriter
{
    private readonly LogQueue _queue;
    private readonly Lock _lock = new();
    private readonly StringBuilder _partial = new();

    public LogQueueTextWriter(LogQueue queue)
        : base(CultureInfo.InvariantCulture)
    {
        _queue = queue;
        CoreNewLine = ['\n'];
    }

    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value) => Write(new ReadOnlySpan<char>(in value));

    public override void Write(string? value) => Write(value.AsSpan());

    public override void Write(char[] buffer, int index, int count) => Write(buffer.AsSpan(index, count));

    public override void Write(ReadOnlySpan<char> buffer)
    {
        lock (_lock)
            Append(buffer);
    }

    public override void WriteLine() => Write('\n');

    public override void WriteLine(string? value)
    {
        value ??= "";
        lock (_lock)
        {
            // The common case, a whole line in one string, goes in by reference.
            if (_partial.Length == 0 && !value.Contains('\n', StringComparison.Ordinal))
            {
                _queue.TryEnqueue(value);
                return;
            }
            Append(value);
            Append("\n");
        }
    }

    public override void WriteLine(ReadOnlySpan<char> buffer)
    {
        lock (_lock)
        {
            Append(buffer);
            Append("\n");
        }
    }

    private void Append(ReadOnlySpan<char> text)
    {
        while (true)
        {
            int newline = text.IndexOf('\n');
            if (newline < 0)
            {
                _partial.Append(text);
                return;
            }
            _partial.Append(text[..newline]);
            _queue.TryEnqueue(_partial.ToString());
            _partial.Clear();
            text = text[(newline + 1)..];
        }
    }
}
