using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Ctfw.Conntrack;

namespace Ctfw.Cli.Control;

/// <summary>`-o`/`--output` of `conntrack -L/-D/-E`: how lines are laid out.</summary>
internal enum OutputFormat
{
    /// <summary>conntrack-tools' default line.</summary>
    Plain,
    /// <summary>`-o extended`: the layer-3 name and number first.</summary>
    Extended,
    /// <summary>`-o json`: one JSON object per line (docs/OPERATIONS.md).</summary>
    Json,
}

/// <summary>Which events a subscriber wants (`-e`/`--event-mask`).</summary>
[Flags]
internal enum EventMask
{
    None = 0,
    New = 1,
    Update = 2,
    Destroy = 4,
    All = New | Update | Destroy,
}

/// <summary>
/// The request words besides the entry filters that `list`, `delete` and `events` take:
/// `--output FORMAT` and (events only) `--event-mask MASK`. They are taken out of the words before
/// the rest goes to <see cref="ConntrackFilter.Parse"/>.
/// </summary>
internal static class OutputOptions
{
    public const string Output = "--output";
    public const string EventMaskOption = "--event-mask";

    /// <summary>Parses `-o`'s value: conntrack-tools takes a comma list; ctfw knows extended and json (not both).</summary>
    public static string? ParseFormat(string value, out OutputFormat format)
    {
        format = OutputFormat.Plain;
        foreach (string part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            OutputFormat f = part.ToLowerInvariant() switch
            {
                "extended" => OutputFormat.Extended,
                "json" => OutputFormat.Json,
                _ => (OutputFormat)(-1),
            };
            if ((int)f < 0)
                return $"-o: unknown output format '{part}' (expected extended or json)";
            if (format != OutputFormat.Plain && format != f)
                return "-o: extended and json do not combine";
            format = f;
        }
        return null;
    }

    /// <summary>Parses `-e`'s value: NEW, UPDATE, DESTROY or ALL, comma-separated, any case.</summary>
    public static string? ParseMask(string value, out EventMask mask)
    {
        mask = EventMask.None;
        foreach (string part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            EventMask m = part.ToUpperInvariant() switch
            {
                "NEW" => EventMask.New,
                "UPDATE" => EventMask.Update,
                "DESTROY" => EventMask.Destroy,
                "ALL" => EventMask.All,
                _ => EventMask.None,
            };
            if (m == EventMask.None)
                return $"-e: unknown event '{part}' (expected NEW, UPDATE, DESTROY or ALL)";
            mask |= m;
        }
        return mask == EventMask.None ? "-e: no event given (expected NEW, UPDATE, DESTROY or ALL)" : null;
    }

    /// <summary>
    /// Splits request words into the output options and the filter words. Null on success, else the
    /// error. <paramref name="allowMask"/> is false for `list` and `delete`.
    /// </summary>
    public static string? Split(IReadOnlyList<string> words, bool allowMask, out OutputFormat format, out EventMask mask, out string[] filterWords)
    {
        format = OutputFormat.Plain;
        mask = EventMask.All;
        var rest = new List<string>(words.Count);
        bool formatGiven = false, maskGiven = false;
        for (int i = 0; i < words.Count; i++)
        {
            string w = words[i];
            bool isOutput = w is Output or "-o";
            bool isMask = w is EventMaskOption or "-e";
            if (!isOutput && !isMask)
            {
                rest.Add(w);
                continue;
            }
            if (isMask && !allowMask)
            {
                filterWords = [];
                return $"{w} is an option of conntrack -E only";
            }
            if (i + 1 >= words.Count)
            {
                filterWords = [];
                return $"{w} needs a value";
            }
            string value = words[++i];
            string? error;
            if (isOutput)
            {
                error = formatGiven ? $"{w} given twice" : ParseFormat(value, out format);
                formatGiven = true;
            }
            else
            {
                error = maskGiven ? $"{w} given twice" : ParseMask(value, out mask);
                maskGiven = true;
            }
            if (error != null)
            {
                filterWords = [];
                return error;
            }
        }
        filterWords = rest.ToArray();
        return null;
    }

    /// <summary>One listing line in <paramref name="format"/> (`-L`, `-D`).</summary>
    public static string FormatEntry(in FlowInfo flow, OutputFormat format, ListingOptions acct, long nowMs) => format switch
    {
        OutputFormat.Json => ConntrackListing.FormatJson(flow, nowMs: nowMs),
        OutputFormat.Extended => ConntrackListing.Format(flow, acct | ListingOptions.Extended),
        _ => ConntrackListing.Format(flow, acct),
    };

    /// <summary>One event line in <paramref name="format"/> (`-E`).</summary>
    public static string FormatEvent(in ConntrackEvent e, OutputFormat format, ListingOptions acct) => format switch
    {
        OutputFormat.Json => ConntrackListing.FormatJson(e.Flow, e.Kind, e.Userspace),
        OutputFormat.Extended => ConntrackListing.FormatEvent(e.Kind, e.Flow, acct | ListingOptions.Extended, e.Userspace),
        _ => ConntrackListing.FormatEvent(e.Kind, e.Flow, acct, e.Userspace),
    };

    public static bool Wants(EventMask mask, ConntrackEventKind kind) => kind switch
    {
        ConntrackEventKind.New => (mask & EventMask.New) != 0,
        ConntrackEventKind.Update => (mask & EventMask.Update) != 0,
        _ => (mask & EventMask.Destroy) != 0,
    };
}

/// <summary>A permanent listener of the event stream (the state sync), called on the stream's thread.</summary>
internal interface IConntrackEventSink
{
    /// <summary>
    /// The events drained this round, in order, and how many the producers dropped since the last
    /// call (full rings): a listener that must not miss any repairs itself when that is not 0. Must
    /// not block: it runs on the thread that feeds `conntrack -E`.
    /// </summary>
    void Deliver(List<ConntrackEvent> batch, long droppedSinceLast);
}

/// <summary>
/// Streams conntrack events to `ctfw conntrack -E` subscribers (the `events` request) and to the
/// state sync's sink (<see cref="AttachSink"/>). One thread, started with the first subscriber or the
/// sink and ended with the last subscriber when there is no sink, drains the engine's producer rings
/// (<see cref="ConntrackEvents.TakeAll"/>) every <see cref="DrainIntervalMs"/> ms, formats each event
/// for each subscriber that wants it, and writes with non-blocking sends: a subscriber that does
/// not read fills its own bounded backlog (<see cref="BacklogBytes"/>) and then loses events,
/// counted; when it has room again it first gets a line `lost N` (the client turns it into
/// conntrack's ENOBUFS warning). Events the producers dropped because this thread fell behind are
/// reported the same way to every subscriber. Nothing here is on the packet path, and nothing
/// here waits for a subscriber.
/// </summary>
internal sealed class ConntrackEventStream : IDisposable
{
    public const int DrainIntervalMs = 10;
    public const int BacklogBytes = 256 * 1024;
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private readonly ConntrackEvents _events;
    private readonly Func<ListingOptions> _acct;
    private readonly Lock _lock = new();
    private readonly List<Subscriber> _subscribers = [];
    private IConntrackEventSink? _sink;
    private Thread? _thread;
    private bool _disposed;
    private long _lost;

    public ConntrackEventStream(ConntrackEvents events, Func<ListingOptions> acct)
    {
        _events = events;
        _acct = acct;
    }

    /// <summary>Events subscribers lost because their own backlog was full (all subscribers, since start).</summary>
    public long Lost => Interlocked.Read(ref _lost);

    public int Subscribers
    {
        get
        {
            lock (_lock)
                return _subscribers.Count;
        }
    }

    /// <summary>
    /// Takes <paramref name="client"/> as a subscriber (after answering `ok`): true when it now owns
    /// the socket. On bad arguments it answers `error: …` and returns false (the caller closes).
    /// </summary>
    public bool Subscribe(Socket client, IReadOnlyList<string> words)
    {
        string? error = OutputOptions.Split(words, allowMask: true, out OutputFormat format, out EventMask mask, out string[] filterWords);
        ConntrackFilter? filter = null;
        if (error == null)
        {
            filter = ConntrackFilter.Parse(filterWords, out error);
            if (filter != null && filter.Annotates)
                error = "--half-closed and --stalled are listing filters, not event filters";
        }
        if (error != null)
        {
            Send(client, $"error: {error.ReplaceLineEndings(" ")}\n");
            return false;
        }
        lock (_lock)
        {
            if (_disposed)
            {
                Send(client, "error: the daemon is stopping\n");
                return false;
            }
            Send(client, "ok\n");
            client.Blocking = false;
            _subscribers.Add(new Subscriber(client, filter!, format, mask));
            _events.Subscribe();
            StartThread();
        }
        return true;
    }

    /// <summary>
    /// Makes <paramref name="sink"/> (the state sync) a permanent listener: from now on the engine
    /// writes events, and this thread drains them every <see cref="DrainIntervalMs"/> ms whether or
    /// not a `conntrack -E` client listens. One sink at most.
    /// </summary>
    public void AttachSink(IConntrackEventSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        lock (_lock)
        {
            if (_sink != null)
                throw new InvalidOperationException("an event sink is attached already");
            ObjectDisposedException.ThrowIf(_disposed, this);
            _sink = sink;
            _events.Subscribe();
            StartThread();
        }
    }

    private void StartThread()
    {
        if (_thread == null)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "ctfw events" };
            _thread.Start();
        }
    }

    private static void Send(Socket client, string text)
    {
        byte[] bytes = s_utf8.GetBytes(text);
        client.Send(bytes);
    }

    private void Run()
    {
        var batch = new List<ConntrackEvent>(4096);
        long droppedSeen = _events.DroppedTotal;
        while (true)
        {
            Subscriber[] subs;
            IConntrackEventSink? sink;
            lock (_lock)
            {
                if (_disposed || (_subscribers.Count == 0 && _sink == null))
                {
                    _thread = null;
                    return;
                }
                subs = _subscribers.ToArray();
                sink = _sink;
            }
            batch.Clear();
            _events.TakeAll(batch);
            long dropped = _events.DroppedTotal;
            long droppedNow = dropped - droppedSeen;
            if (dropped != droppedSeen)
            {
                foreach (Subscriber s in subs)
                    s.Lost += dropped - droppedSeen;
                droppedSeen = dropped;
            }
            sink?.Deliver(batch, droppedNow);
            ListingOptions acct = _acct();
            foreach (Subscriber s in subs)
            {
                foreach (ConntrackEvent e in batch)
                {
                    if (OutputOptions.Wants(s.Mask, e.Kind) && s.Filter.Matches(e.Flow, e.TimestampMs))
                    {
                        if (!s.Enqueue(OutputOptions.FormatEvent(e, s.Format, acct)))
                            Interlocked.Increment(ref _lost);
                    }
                }
                if (!s.Pump())
                    Remove(s);
            }
            Thread.Sleep(DrainIntervalMs);
        }
    }

    private void Remove(Subscriber s)
    {
        lock (_lock)
        {
            if (!_subscribers.Remove(s))
                return;
        }
        _events.Unsubscribe();
        s.Socket.Dispose();
    }

    /// <summary>Ends every subscription (the daemon stops): the clients see end of stream.</summary>
    public void Dispose()
    {
        Subscriber[] subs;
        Thread? thread;
        lock (_lock)
        {
            _disposed = true;
            subs = _subscribers.ToArray();
            _subscribers.Clear();
            thread = _thread;
        }
        thread?.Join();
        foreach (Subscriber s in subs)
        {
            _events.Unsubscribe();
            s.Socket.Dispose();
        }
    }

    /// <summary>One `events` connection: its filter, format and bounded backlog. Used by the stream's thread only.</summary>
    private sealed class Subscriber(Socket socket, ConntrackFilter filter, OutputFormat format, EventMask mask)
    {
        private readonly byte[] _backlog = new byte[BacklogBytes];
        private int _start, _end;

        public Socket Socket { get; } = socket;
        public ConntrackFilter Filter { get; } = filter;
        public OutputFormat Format { get; } = format;
        public EventMask Mask { get; } = mask;

        /// <summary>Events lost and not yet reported to this subscriber.</summary>
        public long Lost;

        /// <summary>Appends one line (after a `lost N` line if some are owed); false when it did not fit (counted in <see cref="Lost"/>).</summary>
        public bool Enqueue(string line)
        {
            ReportLoss();
            if (Lost == 0 && Append(line))
                return true;
            Lost++;
            return false;
        }

        /// <summary>Queues the `lost N` line owed, if there is room for it.</summary>
        public void ReportLoss()
        {
            if (Lost > 0 && Append(string.Create(CultureInfo.InvariantCulture, $"lost {Lost}")))
                Lost = 0;
        }

        private bool Append(string line)
        {
            int need = s_utf8.GetByteCount(line) + 1;
            if (_end + need > _backlog.Length && _start > 0)
            {
                Buffer.BlockCopy(_backlog, _start, _backlog, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end + need > _backlog.Length)
                return false;
            _end += s_utf8.GetBytes(line, 0, line.Length, _backlog, _end);
            _backlog[_end++] = (byte)'\n';
            return true;
        }

        /// <summary>Sends what the socket takes without waiting; false when the client is gone.</summary>
        public bool Pump()
        {
            ReportLoss(); // losses with no event after them yet (a producer ring overflowed)
            while (_end > _start)
            {
                int n;
                try
                {
                    n = Socket.Send(_backlog, _start, _end - _start, SocketFlags.None, out SocketError err);
                    if (err == SocketError.WouldBlock)
                        break;
                    if (err != SocketError.Success)
                        return false;
                }
                catch (ObjectDisposedException)
                {
                    return false;
                }
                _start += n;
            }
            if (_start == _end)
                _start = _end = 0;
            return !Closed();
        }

        /// <summary>The client closed its end (it never sends anything after the request).</summary>
        private bool Closed()
        {
            try
            {
                return Socket.Poll(0, SelectMode.SelectRead) && Socket.Available == 0;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return true;
            }
        }
    }
}
