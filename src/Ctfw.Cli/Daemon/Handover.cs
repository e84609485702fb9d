using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Linux;
using Ctfw.Linux.Nfqueue;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The upgrade hand-over (`ctfw run --takeover`) over the running daemon's control socket. The
/// running ctfw keeps its queues bound: it pauses its workers between batches with every verdict
/// sent, and passes the bound NFQUEUE sockets themselves (SCM_RIGHTS) and its table (the state-file
/// format) to the new process, which answers the packets that waited in the kernel queue meanwhile.
/// Nothing is unbound, so no packet is dropped by an unbind (the kernel drops every packet still
/// queued when a queue is unbound) and none passes unchecked for want of a listener (fail-open) or
/// is dropped for it (fail-closed); packets only wait, up to --queue-maxlen.
/// <code>
/// new → old   takeover␉PID
/// old → new   ok␉pid=…␉queues=F-L␉fail_closed=0|1␉copy_range=N␉maxlen=N␉queue_full=drop|accept␉tag=…␉paused=TICKS␉qN=queued,dropped,user_dropped,last_id…
///             (or error: MESSAGE)
/// new → old   go  |  abort␉WHY        (the new process checks the queues and their settings match its own)
/// old → new   one byte 'F' carrying the sockets (SCM_RIGHTS, queue order), then the table as
///             [u32 length][bytes]… chunks ended by a zero length (ChunkedWriteStream)
/// new → old   done  |  abort␉WHY      (after the restore)
/// old → new   bye                     (the old process exits without touching the sockets again)
/// </code>
/// Until `bye` the old process can resume: any other answer, a timeout or a closed connection puts
/// its workers back to work on the same sockets. The new process starts its workers only after
/// `bye`, so the two never read the same queue.
/// </summary>
internal static class HandoverProtocol
{
    public const string Request = "takeover";
    public const string Go = "go";
    public const string Abort = "abort";
    public const string Done = "done";
    public const string Bye = "bye";
    public const byte DescriptorMarker = (byte)'F';

    /// <summary>How long either side waits for the other's next line (the restore of a large table included).</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(60);

    /// <summary>How long the old process waits for its workers to finish their batch and pause.</summary>
    public static readonly TimeSpan PauseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Reads one line (without the newline) a byte at a time, so nothing after it is consumed.</summary>
    public static string ReadLine(Socket socket, TimeSpan timeout)
    {
        socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
        var bytes = new List<byte>(256);
        Span<byte> one = stackalloc byte[1];
        while (true)
        {
            int n = socket.Receive(one);
            if (n == 0)
                throw new IOException(bytes.Count == 0 ? "the other side closed the connection" : "the connection closed inside a line");
            if (one[0] == '\n')
                return Encoding.UTF8.GetString([.. bytes]);
            if (bytes.Count == 4096)
                throw new IOException("a hand-over line longer than 4096 bytes");
            bytes.Add(one[0]);
        }
    }

    public static void WriteLine(Socket socket, string line)
    {
        socket.SendTimeout = (int)StepTimeout.TotalMilliseconds;
        socket.Send(Encoding.UTF8.GetBytes(line + "\n"));
    }
}

/// <summary>What the running ctfw offers: its queues, their settings, and the kernel counters at the pause.</summary>
internal sealed record HandoverOffer(
    int Pid,
    ushort QueueFirst,
    ushort QueueLast,
    bool FailClosed,
    uint CopyRange,
    uint MaxLength,
    bool QueueFullAccept,
    string? IptablesTag,
    long PausedTimestamp,
    IReadOnlyList<NfqueueKernelCounters?> Counters)
{
    public string Encode()
    {
        var b = new StringBuilder("ok");
        b.Append(CultureInfo.InvariantCulture, $"\tpid={Pid}\tqueues={QueueFirst}-{QueueLast}\tfail_closed={(FailClosed ? 1 : 0)}");
        b.Append(CultureInfo.InvariantCulture, $"\tcopy_range={CopyRange}\tmaxlen={MaxLength}\tqueue_full={(QueueFullAccept ? "accept" : "drop")}\ttag={IptablesTag ?? "-"}\tpaused={PausedTimestamp}");
        for (int i = 0; i < Counters.Count; i++)
        {
            if (Counters[i] is { } c)
                b.Append(CultureInfo.InvariantCulture, $"\tq{QueueFirst + i}={c.Queued},{c.QueueDropped},{c.UserDropped},{c.LastPacketId}");
        }
        return b.ToString();
    }

    /// <summary>Parses the old process's answer; null with <paramref name="error"/> when it is not an offer.</summary>
    public static HandoverOffer? Parse(string line, out string? error)
    {
        error = null;
        if (line.StartsWith("error: ", StringComparison.Ordinal))
        {
            error = line["error: ".Length..];
            return null;
        }
        string[] words = line.Split('\t');
        if (words[0] != "ok")
        {
            error = $"unexpected answer '{(line.Length > 80 ? line[..80] + "…" : line)}'";
            return null;
        }
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string word in words.AsSpan(1))
        {
            int eq = word.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
                fields[word[..eq]] = word[(eq + 1)..];
        }
        static bool Number(Dictionary<string, string> f, string key, out long value) =>
            long.TryParse(f.GetValueOrDefault(key), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
        string[] queues = fields.GetValueOrDefault("queues", "").Split('-');
        if (!Number(fields, "pid", out long pid) || queues.Length != 2
            || !ushort.TryParse(queues[0], NumberStyles.None, CultureInfo.InvariantCulture, out ushort first)
            || !ushort.TryParse(queues[1], NumberStyles.None, CultureInfo.InvariantCulture, out ushort last) || last < first
            || !Number(fields, "fail_closed", out long failClosed) || !Number(fields, "copy_range", out long copyRange)
            || !Number(fields, "maxlen", out long maxLength) || !Number(fields, "paused", out long paused) || !fields.TryGetValue("tag", out string? tag))
        {
            error = "the running ctfw's offer lacks fields (a different ctfw version?)";
            return null;
        }
        var counters = new List<NfqueueKernelCounters?>();
        for (int q = first; q <= last; q++)
        {
            string[] c = fields.GetValueOrDefault(string.Create(CultureInfo.InvariantCulture, $"q{q}"), "").Split(',');
            counters.Add(c.Length == 4
                && uint.TryParse(c[0], NumberStyles.None, CultureInfo.InvariantCulture, out uint queued)
                && uint.TryParse(c[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint dropped)
                && uint.TryParse(c[2], NumberStyles.None, CultureInfo.InvariantCulture, out uint user)
                && uint.TryParse(c[3], NumberStyles.None, CultureInfo.InvariantCulture, out uint lastId)
                ? new NfqueueKernelCounters((ushort)q, 0, queued, 0, 0, dropped, user, lastId)
                : null);
        }
        // A ctfw from before --queue-full sends no such field: its queues were fail-open on a full queue.
        bool queueFullAccept = fields.GetValueOrDefault("queue_full", "accept") != "drop";
        return new HandoverOffer((int)pid, first, last, failClosed != 0, (uint)copyRange, (uint)maxLength, queueFullAccept,
            tag == "-" ? null : tag, paused, counters);
    }

    /// <summary>Why a process with <paramref name="options"/> cannot take these queues over as they are; null when it can.</summary>
    public string? Mismatch(DaemonOptions options, uint copyRange)
    {
        List<string> problems = [];
        if (options.QueueFirst != QueueFirst || options.QueueLast != QueueLast)
            problems.Add($"queues {QueueFirst}-{QueueLast} there, {options.QueueFirst}-{options.QueueLast} here");
        if (options.FailClosed != FailClosed)
            problems.Add($"--fail-closed {(FailClosed ? "on" : "off")} there, {(options.FailClosed ? "on" : "off")} here");
        if (options.QueueFullAccept != QueueFullAccept)
            problems.Add($"--queue-full {(QueueFullAccept ? "accept" : "drop")} there, {(options.QueueFullAccept ? "accept" : "drop")} here");
        if (options.QueueMaxLength != MaxLength)
            problems.Add($"--queue-maxlen {MaxLength} there, {options.QueueMaxLength} here");
        if (copyRange != CopyRange)
            problems.Add($"copy range {CopyRange} there, {copyRange} here");
        return problems.Count == 0 ? null
            : $"a takeover keeps the queues exactly as they are, and they differ ({string.Join("; ", problems)}): use the same settings, or stop the running ctfw and start anew";
    }
}

/// <summary>The running daemon's side of a takeover (answers the control socket's `takeover` request).</summary>
internal sealed class HandoverSource
{
    private readonly ConntrackEngine _engine;
    private readonly IReadOnlyList<QueueWorker> _workers;
    private readonly DaemonOptions _options;
    private readonly StateKeeper? _state;
    private readonly Func<string?> _iptablesTag;
    private readonly TextWriter _err;
    private readonly Action _handedOver;
    private int _busy;

    public HandoverSource(ConntrackEngine engine, IReadOnlyList<QueueWorker> workers, DaemonOptions options, StateKeeper? state,
        Func<string?> iptablesTag, TextWriter err, Action handedOver)
    {
        _engine = engine;
        _workers = workers;
        _options = options;
        _state = state;
        _iptablesTag = iptablesTag;
        _err = err;
        _handedOver = handedOver;
    }

    /// <summary>The pid that took over (0 while none did). Once set, the workers are abandoned and the sockets are the new process's.</summary>
    public int HandedOverTo { get; private set; }

    /// <summary>Runs the whole exchange on the control thread; on any failure before `bye` the workers resume.</summary>
    public void Serve(Socket client, IReadOnlyList<string> args)
    {
        if (args.Count != 1 || !int.TryParse(args[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid <= 0)
        {
            HandoverProtocol.WriteLine(client, "error: takeover expects the new process's pid");
            return;
        }
        if (Interlocked.Exchange(ref _busy, 1) != 0 || HandedOverTo != 0)
        {
            HandoverProtocol.WriteLine(client, "error: a takeover is already under way");
            return;
        }
        bool paused = false;
        long pausedAt = 0;
        try
        {
            _state?.SuspendCheckpoints();
            foreach (QueueWorker worker in _workers)
                worker.RequestPause();
            paused = true;
            foreach (QueueWorker worker in _workers)
            {
                if (!worker.WaitPaused(HandoverProtocol.PauseTimeout))
                {
                    HandoverProtocol.WriteLine(client, $"error: queue {worker.Queue.Queue}'s worker did not pause within {HandoverProtocol.PauseTimeout.TotalSeconds} s");
                    Resume(pid, "a worker did not pause");
                    return;
                }
                if (worker.Failure is { } failure)
                {
                    HandoverProtocol.WriteLine(client, $"error: queue {worker.Queue.Queue} failed: {failure}");
                    Resume(pid, "a worker had failed");
                    return;
                }
            }
            pausedAt = Stopwatch.GetTimestamp();
            var counters = new List<NfqueueKernelCounters?>();
            foreach (QueueWorker worker in _workers)
                counters.Add(worker.Queue.TryReadKernelCounters(out NfqueueKernelCounters c) ? c : null);
            var offer = new HandoverOffer(Environment.ProcessId, _options.QueueFirst, _options.QueueLast, _options.FailClosed,
                _workers[0].Queue.Options.EffectiveCopyRange, _options.QueueMaxLength, _options.QueueFullAccept, _iptablesTag(), pausedAt, counters);
            HandoverProtocol.WriteLine(client, offer.Encode());

            string answer = HandoverProtocol.ReadLine(client, HandoverProtocol.StepTimeout);
            if (answer != HandoverProtocol.Go)
            {
                Resume(pid, Reason(answer));
                return;
            }
            var descriptors = new SafeHandle[_workers.Count];
            for (int i = 0; i < descriptors.Length; i++)
                descriptors[i] = _workers[i].Queue.Descriptor;
            DescriptorPassing.Send(client, descriptors, HandoverProtocol.DescriptorMarker);

            using (var raw = new NetworkStream(client, ownsSocket: false))
            using (var buffered = new BufferedStream(raw, 1 << 16))
            {
                var chunks = new ChunkedWriteStream(buffered);
                StateWriteResult written = _engine.WriteState(chunks, DaemonClock.NowMs(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                chunks.Complete();
                buffered.Flush();
                _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ctfw: takeover by pid {pid}: queues paused, sockets and {written.Entries} entries ({written.Bytes} bytes) handed over"));
            }

            answer = HandoverProtocol.ReadLine(client, HandoverProtocol.StepTimeout);
            if (answer != HandoverProtocol.Done)
            {
                Resume(pid, Reason(answer));
                return;
            }
            // The point of no return: after `bye` the new process reads the queues.
            HandedOverTo = pid;
            foreach (QueueWorker worker in _workers)
                worker.Abandon();
            HandoverProtocol.WriteLine(client, HandoverProtocol.Bye);
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: handed over to pid {pid} after {Stopwatch.GetElapsedTime(pausedAt).TotalMilliseconds:F1} ms paused; stopping without removing the NFQUEUE rules (pid {pid} owns them now)"));
            _handedOver();
        }
        catch (Exception e) when (e is SocketException or IOException or ErrnoException or ObjectDisposedException)
        {
            if (HandedOverTo != 0)
            {
                // `bye` may not have arrived, but the workers are abandoned: the new process has the
                // sockets and starts when it reads bye, or gives up and closes its copies; either way
                // this process must not read the queues again.
                _handedOver();
                return;
            }
            if (paused)
                Resume(pid, e.Message);
        }
        finally
        {
            if (HandedOverTo == 0)
                Volatile.Write(ref _busy, 0);
        }
    }

    private static string Reason(string answer) =>
        answer.StartsWith(HandoverProtocol.Abort, StringComparison.Ordinal) && answer.Length > HandoverProtocol.Abort.Length + 1
            ? answer[(HandoverProtocol.Abort.Length + 1)..]
            : $"unexpected answer '{(answer.Length > 80 ? answer[..80] + "…" : answer)}'";

    private void Resume(int pid, string why)
    {
        foreach (QueueWorker worker in _workers)
            worker.Resume();
        _state?.ResumeCheckpoints();
        _err.WriteLine($"ctfw: takeover by pid {pid} did not happen ({why}); this ctfw goes on filtering");
    }
}

/// <summary>The new process's side of a takeover: the running ctfw's sockets, table and settings.</summary>
internal sealed class HandoverTarget : IDisposable
{
    private readonly Socket _connection;
    private readonly List<NfqueueSocket> _sockets;
    private bool _completed;

    private HandoverTarget(Socket connection, HandoverOffer offer, List<NfqueueSocket> sockets, string path)
    {
        _connection = connection;
        Offer = offer;
        _sockets = sockets;
        ControlPath = path;
    }

    public HandoverOffer Offer { get; }

    /// <summary>The old process's control socket.</summary>
    public string ControlPath { get; }

    /// <summary>The handed-over queues, in queue order; this process owns them once <see cref="Complete"/> returned true.</summary>
    public IReadOnlyList<NfqueueSocket> Sockets => _sockets;

    /// <summary>
    /// Asks the ctfw at <paramref name="controlPath"/> for its queues. Throws <see cref="IOException"/>
    /// with a one-line reason when it cannot (the running ctfw then goes on filtering), or when the
    /// socket or the process serving it is not to be trusted (<see cref="ControlTrust"/>).
    /// </summary>
    public static HandoverTarget Begin(string controlPath, DaemonOptions options, Func<ushort, NfqueueOptions> queueOptions)
    {
        Socket connection;
        try
        {
            connection = ControlClient.Connect(controlPath, HandoverProtocol.StepTimeout);
        }
        catch (SocketException e)
        {
            throw new IOException($"cannot reach the running ctfw at {controlPath}: {e.Message}", e);
        }
        List<NfqueueSocket> sockets = [];
        try
        {
            HandoverProtocol.WriteLine(connection, string.Create(CultureInfo.InvariantCulture, $"{HandoverProtocol.Request}\t{Environment.ProcessId}"));
            string line = HandoverProtocol.ReadLine(connection, HandoverProtocol.StepTimeout);
            HandoverOffer offer = HandoverOffer.Parse(line, out string? error)
                ?? throw new IOException($"the running ctfw at {controlPath} refused: {error}");
            NfqueueOptions first = queueOptions(options.QueueFirst);
            if (offer.Mismatch(options, first.EffectiveCopyRange) is { } mismatch)
            {
                HandoverProtocol.WriteLine(connection, $"{HandoverProtocol.Abort}\t{mismatch}");
                throw new IOException(mismatch);
            }
            HandoverProtocol.WriteLine(connection, HandoverProtocol.Go);
            List<SafeHandle> handles = DescriptorPassing.Receive(connection, offer.QueueLast - offer.QueueFirst + 1, HandoverProtocol.StepTimeout, out byte marker);
            try
            {
                if (marker != HandoverProtocol.DescriptorMarker || handles.Count != offer.QueueLast - offer.QueueFirst + 1)
                    throw new IOException($"the running ctfw sent {handles.Count} descriptors for {offer.QueueLast - offer.QueueFirst + 1} queues");
                for (int i = 0; i < handles.Count; i++)
                {
                    sockets.Add(NfqueueSocket.Adopt(handles[i], queueOptions((ushort)(offer.QueueFirst + i))));
                    handles[i] = null!; // owned by the NfqueueSocket now
                }
            }
            finally
            {
                foreach (SafeHandle? h in handles)
                    h?.Dispose();
            }
            return new HandoverTarget(connection, offer, sockets, controlPath);
        }
        catch (Exception e) when (e is SocketException or ErrnoException)
        {
            Abandon(connection, sockets);
            throw new IOException($"takeover from {controlPath} failed: {e.Message}", e);
        }
        catch
        {
            Abandon(connection, sockets);
            throw;
        }
    }

    private static void Abandon(Socket connection, List<NfqueueSocket> sockets)
    {
        // Closing our copies of the descriptors leaves the queues bound (the old process holds them).
        foreach (NfqueueSocket s in sockets)
            s.Dispose();
        connection.Dispose();
    }

    /// <summary>Restores the handed-over table into <paramref name="engine"/> (fresh, no worker yet).</summary>
    public StateRestoreResult Restore(ConntrackEngine engine)
    {
        using var raw = new NetworkStream(_connection, ownsSocket: false);
        _connection.ReceiveTimeout = (int)HandoverProtocol.StepTimeout.TotalMilliseconds;
        using var buffered = new BufferedStream(raw, 1 << 16);
        var chunks = new ChunkedReadStream(buffered);
        engine.RestoreStateStreaming(chunks, DaemonClock.NowMs(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), out StateRestoreResult result);
        // A restore that stopped early (bad state) leaves chunks unread: drain so `done`/`abort` is read cleanly.
        Span<byte> sink = stackalloc byte[4096];
        while (chunks.Read(sink) > 0)
        {
        }
        return result;
    }

    /// <summary>Says `done` and waits for `bye`: true when this process now owns the queues.</summary>
    public bool Complete(out string? error)
    {
        error = null;
        try
        {
            HandoverProtocol.WriteLine(_connection, HandoverProtocol.Done);
            string answer = HandoverProtocol.ReadLine(_connection, HandoverProtocol.StepTimeout);
            if (answer == HandoverProtocol.Bye)
            {
                _completed = true;
                return true;
            }
            error = $"the running ctfw answered '{answer}' instead of '{HandoverProtocol.Bye}'";
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            error = e.Message;
        }
        return false;
    }

    /// <summary>Gives up before <see cref="Complete"/>: the running ctfw resumes on its sockets.</summary>
    public void Abort(string why)
    {
        if (_completed)
            return;
        try
        {
            HandoverProtocol.WriteLine(_connection, $"{HandoverProtocol.Abort}\t{why.ReplaceLineEndings(" ")}");
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // The old process resumes on EOF as well.
        }
        foreach (NfqueueSocket s in _sockets)
            s.Dispose();
        _sockets.Clear();
    }

    /// <summary>Closes the connection (the sockets are the daemon's once completed).</summary>
    public void Dispose() => _connection.Dispose();
}

/// <summary>What a takeover cost, from the kernel's queue counters at the old process's pause and at this one's start.</summary>
internal sealed class TakeoverReport(HandoverOffer offer, StateRestoreResult restored, double restoreMs)
{
    public HandoverOffer Offer { get; } = offer;

    public StateRestoreResult Restored { get; } = restored;

    public double RestoreMs { get; } = restoreMs;

    /// <summary>Stopwatch timestamp (CLOCK_MONOTONIC, comparable across processes) when this run's workers started.</summary>
    public long ResumedTimestamp { get; set; }

    /// <summary>Per queue, the kernel's counters just before this run's workers started.</summary>
    public IReadOnlyList<NfqueueKernelCounters?> Counters { get; set; } = [];

    /// <summary>Milliseconds between the old process's last verdict and this one's first receive.</summary>
    public double GapMs => (ResumedTimestamp - Offer.PausedTimestamp) * 1000.0 / Stopwatch.Frequency;

    public long Waited { get; private set; }

    public long Arrived { get; private set; }

    public long Dropped { get; private set; }

    public bool QueueFilled { get; private set; }

    public string Describe(DaemonOptions options)
    {
        Waited = 0;
        Arrived = 0;
        Dropped = 0;
        QueueFilled = false;
        bool known = Counters.Count == Offer.Counters.Count && Counters.Count > 0;
        for (int i = 0; known && i < Counters.Count; i++)
        {
            if (Counters[i] is not { } now || Offer.Counters[i] is not { } then)
            {
                known = false;
                break;
            }
            Waited += now.Queued;
            Arrived += unchecked(now.LastPacketId - then.LastPacketId);
            Dropped += unchecked((now.QueueDropped - then.QueueDropped) + (now.UserDropped - then.UserDropped));
            QueueFilled |= now.Queued >= options.QueueMaxLength;
        }
        string queues = options.QueueFirst == options.QueueLast
            ? string.Create(CultureInfo.InvariantCulture, $"queue {options.QueueFirst}")
            : string.Create(CultureInfo.InvariantCulture, $"queues {options.QueueFirst}-{options.QueueLast}");
        string packets = !known
            ? "kernel queue counters unavailable"
            : QueueFilled
                ? string.Create(CultureInfo.InvariantCulture,
                    $"{Waited} packets waited in the kernel queue, which filled up (--queue-maxlen {options.QueueMaxLength}): packets beyond it were {(options.QueueFullAccept ? "passed unchecked (--queue-full accept; the kernel does not count them)" : $"dropped ({Dropped})")}")
                : string.Create(CultureInfo.InvariantCulture,
                    $"{Waited} packets waited in the kernel queue ({Arrived} of them arrived during the gap), none passed unchecked, {Dropped} dropped");
        return string.Create(CultureInfo.InvariantCulture,
            $"ctfw: took over {queues} from pid {Offer.Pid}: gap {GapMs:F1} ms (its last verdict to this run's first receive; restoring {Restored.Restored} entries took {RestoreMs:F1} ms of it); {packets}");
    }
}
