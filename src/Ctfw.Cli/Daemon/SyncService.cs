using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Packets;

namespace Ctfw.Cli.Daemon;

/// <summary>What `--sync ftfw` was given: where to listen, the one peer, the interface, commit at start.</summary>
internal sealed record SyncOptions(IPEndPoint Local, IPEndPoint Peer)
{
    /// <summary><c>--sync-interface</c>: the socket is bound to this device (SO_BINDTODEVICE); null: any.</summary>
    public string? Interface { get; init; }

    /// <summary><c>--sync-commit-on-start</c>: ask the peer for its table at start and make it live once the peer goes quiet.</summary>
    public bool CommitOnStart { get; init; }

    /// <summary>Datagram size limit: the link MTU (datagrams are at most MTU − 28 bytes, as conntrackd's).</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>Parses `ADDR:PORT` (an IPv4 address, port 1..65535); null with a message when it is not one.</summary>
    public static IPEndPoint? ParseEndpoint(string text, string option, out string? error)
    {
        error = null;
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !IPAddress.TryParse(text.AsSpan(0, colon), out IPAddress? address) || address.AddressFamily != AddressFamily.InterNetwork
            || !ushort.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) || port == 0)
        {
            error = $"{option} '{text}': expected an IPv4 ADDR:PORT, e.g. 192.168.100.1:3780";
            return null;
        }
        return new IPEndPoint(address, port);
    }
}

/// <summary>
/// State sync with a peer gateway in conntrackd's FTFW protocol (docs/HA.md). One thread, off the
/// packet path: it takes the engine's conntrack events (NEW, UPDATE, DESTROY) from the event stream
/// through a bounded queue, sends them to the peer as CT_NEW / CT_UPD / CT_DEL over UDP with FTFW's
/// reliability (<see cref="FtfwSession"/>), and keeps what the peer sends in an external cache that
/// <see cref="Commit"/> makes live. Nothing here can hold a worker up: a full queue drops the event,
/// counts it and schedules a bulk send of the whole table, which repairs the peer's copy (as
/// conntrackd's resync does). Datagrams from any address but the peer's are dropped and counted.
/// </summary>
internal sealed class SyncService : IDisposable, IConntrackEventSink, ISyncReceiver, IDatagramSink
{
    /// <summary>Events waiting for the sync thread; beyond this they are dropped and a bulk send repairs.</summary>
    public const int QueueLimit = 65_536;

    /// <summary>Messages handed to the session per round (~5 ms): paces a bulk send to what a peer's socket buffer takes.</summary>
    private const int MessagesPerRound = 1024;

    /// <summary>HELLOs within this long of the last bulk they caused are one restart of the peer.</summary>
    private const long HelloBulkIntervalMs = 5_000;

    /// <summary>How long the thread waits for a datagram before it looks at its queue and timers again.</summary>
    private const int PollMicroseconds = 5_000;

    /// <summary>With --sync-commit-on-start: the peer counts as done once it sent nothing for this long…</summary>
    private const long StartQuietMs = 1_000;

    /// <summary>…or once this long has passed since the resync request.</summary>
    private const long StartLimitMs = 10_000;

    /// <summary>The status bits that travel: what the peer's table can take (no offload, NAT or helper bits).</summary>
    private const CtStatus SyncedStatus = CtStatus.Expected | CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed;

    private readonly ConntrackEngine _engine;
    private readonly SyncOptions _options;
    private readonly Socket _socket;
    private readonly SocketAddress _peerAddress;
    private readonly SocketAddress _from;
    private readonly FtfwSession _session;
    private readonly TextWriter _err;
    private readonly ConcurrentQueue<Outgoing> _queue = new();
    private readonly byte[] _receiveBuffer = new byte[65_536];
    private readonly Lock _cacheLock = new();
    private readonly Dictionary<ConnTuple, External> _external = [];
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _stop = new();
    private int _queued;
    private long _queueOverflows;
    private long _eventsLost;
    private long _fromStrangers;
    private long _sendErrors;
    private long _bulkSends;
    private long _bulkEntries;
    private long _commits;
    private long _committed;
    private int _bulkRequested;
    private int _resyncRequested;
    private List<KernelConnection>? _bulk;
    private readonly HashSet<ConnTuple> _changedDuringBulk = [];
    private int _queuedBeforeBulk;
    private int _bulkIndex;
    private long _startResyncAtMs = -1;
    // What the notify script last said: 1 after `sync commit` (a gateway becoming the active one), 0 after
    // `sync resync` (becoming the backup), -1 before either.
    private int _active = -1;
    private int _disposed;
    private long _hellosSeen;
    private long _lastHelloBulkMs = long.MinValue / 2;
    private long _peerRestarts;
    private long _externalFull;
    private long _coalesced;
    // Deliver's (the event stream thread's): per connection, its last event in the batch and whether the first was NEW.
    private readonly Dictionary<ConnTuple, (int Last, bool FirstNew)> _batchIndex = [];

    private SyncService(ConntrackEngine engine, SyncOptions options, Socket socket, TextWriter err)
    {
        _engine = engine;
        _options = options;
        _socket = socket;
        _err = err;
        _peerAddress = options.Peer.Serialize();
        _from = new SocketAddress(AddressFamily.InterNetwork);
        _session = new FtfwSession(new FtfwOptions { Mtu = options.Mtu });
        _thread = new Thread(Run) { IsBackground = true, Name = "ctfw sync" };
    }

    /// <summary>Opens the UDP socket (bound to the local address, and to the interface when given); throws <see cref="IOException"/> with the reason.</summary>
    public static SyncService Open(ConntrackEngine engine, SyncOptions options, TextWriter err)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            // SO_REUSEPORT (15): an upgrade (`--takeover`) binds the same address while the old
            // process still holds it, for the moment until that one exits.
            socket.SetRawSocketOption(1, 15, BitConverter.GetBytes(1));
            if (options.Interface is { } device)
            {
                // SO_BINDTODEVICE (25) at SOL_SOCKET (1): the name, NUL-terminated.
                byte[] name = new byte[Encoding.ASCII.GetByteCount(device) + 1];
                Encoding.ASCII.GetBytes(device, name);
                socket.SetRawSocketOption(1, 25, name);
            }
            socket.Bind(options.Local);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            string where = options.Interface is null ? options.Local.ToString() : $"{options.Local} on {options.Interface}";
            throw new IOException($"--sync-local {where}: {e.Message}", e);
        }
        if (options.Interface is { } dev && ReadMtu(dev) is int mtu && mtu != options.Mtu)
            options = options with { Mtu = mtu };
        return new SyncService(engine, options, socket, err);
    }

    /// <summary>The interface's MTU from sysfs (the namespace's own), or null when it cannot be read.</summary>
    private static int? ReadMtu(string device)
    {
        try
        {
            string text = File.ReadAllText($"/sys/class/net/{device}/mtu").Trim();
            return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int mtu) && mtu >= 576 ? mtu : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The clock (ms) of the engine's entries; the daemon's, or a test's.</summary>
    internal Func<long> Clock { get; set; } = DaemonClock.NowMs;

    /// <summary>Where the socket is bound (the port the kernel chose when the options gave 0).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Starts the thread; with <see cref="SyncOptions.CommitOnStart"/> it first asks the peer for its table.</summary>
    public void Start()
    {
        if (_options.CommitOnStart)
        {
            Interlocked.Exchange(ref _resyncRequested, 1);
            _startResyncAtMs = Clock();
        }
        _thread.Start();
    }

    // ---- event intake (the event stream's thread) ----

    public void Deliver(List<ConntrackEvent> batch, long droppedSinceLast)
    {
        if (droppedSinceLast > 0)
        {
            // The engine's rings overflowed: some changes never reached us. Repair by a bulk send.
            Interlocked.Add(ref _eventsLost, droppedSinceLast);
            Interlocked.Exchange(ref _bulkRequested, 1);
        }
        // Several changes of one connection in one drain (10 ms) travel as one message with the last
        // state, as conntrackd sends a queued entry's state at the time it sends; a connection born and
        // dead in the same drain is not sent at all.
        _batchIndex.Clear();
        for (int i = 0; i < batch.Count; i++)
        {
            ref (int Last, bool FirstNew) slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_batchIndex, batch[i].Flow.Original, out bool seen);
            if (!seen)
                slot.FirstNew = batch[i].Kind == ConntrackEventKind.New;
            slot.Last = i;
        }
        int sent = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            ConntrackEvent e = batch[i];
            (int last, bool firstNew) = _batchIndex[e.Flow.Original];
            if (last != i || (firstNew && e.Kind == ConntrackEventKind.Destroy))
                continue;
            if (Volatile.Read(ref _queued) >= QueueLimit)
            {
                Interlocked.Increment(ref _queueOverflows);
                Interlocked.Exchange(ref _bulkRequested, 1);
                continue;
            }
            SyncMessageType type = e.Kind switch
            {
                ConntrackEventKind.Destroy => SyncMessageType.Delete,
                _ when firstNew => SyncMessageType.New,
                ConntrackEventKind.New => SyncMessageType.New,
                _ => SyncMessageType.Update,
            };
            _queue.Enqueue(new Outgoing(type, ToConnection(e.Flow)));
            Interlocked.Increment(ref _queued);
            sent++;
        }
        Interlocked.Add(ref _coalesced, batch.Count - sent);
        _batchIndex.Clear();
    }

    /// <summary>What the peer gets for one of our flows: tuples, the status bits it can use, state, time left (rounded up).</summary>
    internal static KernelConnection ToConnection(in FlowInfo f) => new()
    {
        Original = f.Original,
        Reply = f.Reply,
        Status = f.Status & SyncedStatus,
        TcpState = f.Original.Protocol == IpProto.Tcp ? f.TcpState : TcpState.None,
        TimeoutSeconds = (uint)Math.Clamp((f.TimeoutMs + 999) / 1000, 1, uint.MaxValue),
        SctpState = f.SctpState,
        SctpVtagOriginal = f.SctpVtagOriginal,
        SctpVtagReply = f.SctpVtagReply,
        Helper = CtHelpers.Name(f.Helper),
        Master = f.Master,
    };

    // ---- the sync thread ----

    private void Run()
    {
        _err.WriteLine($"ctfw: sync: ftfw from {_options.Local} to {_options.Peer}{(_options.Interface is { } i ? $" on {i}" : "")}");
        while (!_stop.IsSet)
        {
            try
            {
                Round(PollMicroseconds);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stop.IsSet)
                    break;
                Interlocked.Increment(ref _sendErrors);
                _stop.Wait(100);
            }
        }
    }

    /// <summary>
    /// One round of the sync thread: wait up to <paramref name="pollMicroseconds"/> for datagrams and
    /// take them, act on requests, move queued and bulk messages into the session, send, run its
    /// timers. Tests call it directly instead of <see cref="Start"/> to pace a bulk send.
    /// </summary>
    internal void Round(int pollMicroseconds)
    {
        if (_socket.Poll(pollMicroseconds, SelectMode.SelectRead))
            ReceiveAll();
        long now = Clock();
        if (Interlocked.Exchange(ref _resyncRequested, 0) != 0)
            _session.RequestResync(this);
        if (_session.TakeNeedsBulk())
            Interlocked.Exchange(ref _bulkRequested, 1);
        if (_session.Counters.PeerHellos != _hellosSeen)
        {
            // The peer (re)started: its external cache is empty and it dropped our unacknowledged
            // messages. Send it the whole table (conntrackd leaves this to the notify script's
            // RESYNC; one bulk per restart, however many HELLOs it repeats until our HELLO_BACK).
            _hellosSeen = _session.Counters.PeerHellos;
            if (now - _lastHelloBulkMs >= HelloBulkIntervalMs)
            {
                _lastHelloBulkMs = now;
                Interlocked.Increment(ref _peerRestarts);
                Interlocked.Exchange(ref _bulkRequested, 1);
            }
        }
        if (Interlocked.Exchange(ref _bulkRequested, 0) != 0)
            BeginBulk(now);
        ContinueBulk(TakeQueue(MessagesPerRound));
        _session.Flush(now, this);
        _session.Tick(now, this);
        if (_startResyncAtMs >= 0)
            MaybeCommitAtStart(now);
    }

    private void ReceiveAll()
    {
        while (_socket.Available > 0)
        {
            int n = _socket.ReceiveFrom(_receiveBuffer, SocketFlags.None, _from);
            if (!SameHost(_from, _peerAddress))
            {
                Interlocked.Increment(ref _fromStrangers);
                continue;
            }
            _session.Receive(_receiveBuffer.AsSpan(0, n), Clock(), this, this);
        }
    }

    /// <summary>The same IPv4 address (the port is not compared: conntrackd sends from an ephemeral or its own port).</summary>
    private static bool SameHost(SocketAddress a, SocketAddress b)
    {
        // sockaddr_in: family (2), port (2), address (4).
        if (a.Size < 8 || b.Size < 8)
            return false;
        ReadOnlySpan<byte> x = a.Buffer.Span, y = b.Buffer.Span;
        return x[4] == y[4] && x[5] == y[5] && x[6] == y[6] && x[7] == y[7];
    }

    /// <summary>
    /// Moves queued events into the session, at most <see cref="MessagesPerRound"/> a round and never
    /// more than the session has room for (so it never refuses for want of room: a refusal then means
    /// an entry conntrackd's terms cannot express, counted by the session and skipped).
    /// </summary>
    private int TakeQueue(int budget)
    {
        while (budget > 0 && _session.Pending < _session.Options.QueueLimit && _queue.TryDequeue(out Outgoing item))
        {
            Interlocked.Decrement(ref _queued);
            _session.Enqueue(item.Type, item.Connection);
            // A change queued after the bulk's snapshot is newer than the snapshot's copy of the same
            // connection; one queued before it is older (the snapshot's copy goes after it).
            if (_bulk is not null && --_queuedBeforeBulk < 0)
                _changedDuringBulk.Add(item.Connection.Original);
            budget--;
        }
        return budget;
    }

    private void BeginBulk(long now)
    {
        _queuedBeforeBulk = Volatile.Read(ref _queued);
        _bulk = _engine.ExportConnections(now);
        _bulkIndex = 0;
        _changedDuringBulk.Clear();
        Interlocked.Increment(ref _bulkSends);
    }

    /// <summary>The bulk send goes on, within the round's budget (live changes first, so they are never held behind a bulk).</summary>
    private void ContinueBulk(int budget)
    {
        if (_bulk is null)
            return;
        while (_bulkIndex < _bulk.Count)
        {
            if (budget-- <= 0 || _session.Pending >= _session.Options.QueueLimit)
                return;
            KernelConnection c = _bulk[_bulkIndex++];
            if (_changedDuringBulk.Contains(c.Original))
                continue; // sent already, as it is now (a DESTROY must not be followed by the snapshot's copy)
            _session.Enqueue(SyncMessageType.New, c with { Status = c.Status & SyncedStatus });
            Interlocked.Increment(ref _bulkEntries);
        }
        _bulk = null;
        _changedDuringBulk.Clear();
    }

    private void MaybeCommitAtStart(long now)
    {
        // The session's own record of the peer (this thread's): a connection came, and nothing for a while.
        FtfwCounters peer = _session.Counters;
        bool quiet = peer.ConnectionsReceived > 0 && now - peer.LastReceiveMs >= StartQuietMs;
        if (!quiet && now - _startResyncAtMs < StartLimitMs)
            return;
        _startResyncAtMs = -1;
        _err.WriteLine($"ctfw: sync: at start, {Commit()}");
    }

    // ---- IDatagramSink / ISyncReceiver (the sync thread) ----

    public void Send(ReadOnlySpan<byte> datagram)
    {
        try
        {
            _socket.SendTo(datagram, SocketFlags.None, _peerAddress);
        }
        catch (SocketException)
        {
            // ECONNREFUSED from an earlier datagram's ICMP, no route while the link is down: counted;
            // FTFW's NACK/resend and the next bulk repair what the peer missed.
            Interlocked.Increment(ref _sendErrors);
        }
    }

    public void OnConnection(SyncMessageType type, in KernelConnection c)
    {
        long now = Clock();
        lock (_cacheLock)
        {
            if (type == SyncMessageType.Delete)
            {
                _external.Remove(c.Original);
            }
            else if (_external.Count < ExternalLimit || _external.ContainsKey(c.Original))
            {
                _external[c.Original] = new External(c, now);
            }
            else
            {
                // A peer that sends more than a table can hold: the rest is counted, not kept.
                Interlocked.Increment(ref _externalFull);
            }
        }
    }

    public void OnResyncRequest() => Interlocked.Exchange(ref _bulkRequested, 1);

    // ---- control requests (the control thread) ----

    /// <summary>`ctfw sync bulk` (conntrackd -B): send the whole table to the peer.</summary>
    public string RequestBulk()
    {
        Interlocked.Exchange(ref _bulkRequested, 1);
        return $"bulk send of {_engine.Count} entries to {_options.Peer} requested";
    }

    /// <summary>`ctfw sync resync` (conntrackd -n): ask the peer for its whole table.</summary>
    public string RequestResync()
    {
        Interlocked.Exchange(ref _resyncRequested, 1);
        Volatile.Write(ref _active, 0);
        return $"resync requested from {_options.Peer}";
    }

    /// <summary>`ctfw sync flush` (conntrackd -f): forget the external cache.</summary>
    public string Flush()
    {
        int n;
        lock (_cacheLock)
        {
            n = _external.Count;
            _external.Clear();
        }
        return string.Create(CultureInfo.InvariantCulture, $"{n} external entries flushed");
    }

    /// <summary>
    /// `ctfw sync commit` (conntrackd -c): every external entry with time left becomes a live entry,
    /// adopted as a picked-up connection (<see cref="ConntrackEngine.Adopt"/>): the protocol carries no
    /// sequence windows, so a TCP entry is made BE_LIBERAL in both directions, as conntrackd makes the
    /// kernel's. Each keeps the time its last message gave minus the time since. The external cache
    /// is kept (`sync flush` empties it, as the notify script does after a commit).
    /// </summary>
    public string Commit()
    {
        long now = Clock();
        List<KernelConnection> live = [];
        int expired = 0, total;
        lock (_cacheLock)
        {
            total = _external.Count;
            foreach (External x in _external.Values)
            {
                long leftMs = (TimeoutOf(x.Connection) * 1000L) - (now - x.ReceivedMs);
                if (leftMs <= 0)
                {
                    expired++;
                    continue;
                }
                KernelConnection c = x.Connection with { TimeoutSeconds = (uint)((leftMs + 999) / 1000) };
                if (c.Original.Protocol == IpProto.Tcp)
                    c = c with { TcpFlagsOriginal = (byte)(c.TcpFlagsOriginal | KernelConnection.TcpFlagBeLiberal), TcpFlagsReply = (byte)(c.TcpFlagsReply | KernelConnection.TcpFlagBeLiberal) };
                live.Add(c);
            }
        }
        AdoptResult r = _engine.Adopt(live, now);
        Volatile.Write(ref _active, 1);
        Interlocked.Increment(ref _commits);
        Interlocked.Add(ref _committed, r.Adopted);
        var text = new StringBuilder(string.Create(CultureInfo.InvariantCulture, $"committed {r.Adopted} of {total}"));
        if (expired > 0)
            text.Append(CultureInfo.InvariantCulture, $"; {expired} had no time left");
        if (r.Duplicates > 0)
            text.Append(CultureInfo.InvariantCulture, $"; {r.Duplicates} live already");
        if (r.Nat > 0)
            text.Append(CultureInfo.InvariantCulture, $"; {r.Nat} NAT'ed (ctfw does no NAT)");
        if (r.UnsupportedProtocol > 0)
            text.Append(CultureInfo.InvariantCulture, $"; {r.UnsupportedProtocol} of protocols ctfw does not track as the kernel does");
        if (r.Unrepresentable > 0)
            text.Append(CultureInfo.InvariantCulture, $"; {r.Unrepresentable} unrepresentable");
        if (r.OverLimit > 0)
            text.Append(CultureInfo.InvariantCulture, $"; {r.OverLimit} over nf_conntrack_max");
        return text.ToString();
    }

    /// <summary>
    /// The seconds an external entry had when it came: its TIMEOUT attribute, or when the peer sent
    /// none, what this engine's settings give its protocol and state (as the kernel would set it).
    /// </summary>
    private long TimeoutOf(in KernelConnection c)
    {
        if (c.TimeoutSeconds > 0)
            return c.TimeoutSeconds;
        ConntrackSettings s = _engine.Settings;
        return c.Original.Protocol switch
        {
            IpProto.Tcp => s.TcpTimeout(c.TcpState == TcpState.None ? TcpState.Established : c.TcpState),
            IpProto.Udp => (c.Status & CtStatus.Assured) != 0 ? s.UdpTimeoutStream : s.UdpTimeout,
            IpProto.Icmp => s.IcmpTimeout,
            IpProto.Icmpv6 => s.Icmpv6Timeout,
            _ => s.GenericTimeout,
        };
    }

    /// <summary>`ctfw sync external` (conntrackd -e): the external cache as `conntrack -L` lines, time left as of now.</summary>
    public List<string> ListExternal()
    {
        long now = Clock();
        List<string> lines = [];
        lock (_cacheLock)
        {
            foreach (External x in _external.Values)
            {
                KernelConnection c = x.Connection;
                long leftMs = Math.Max(0, (TimeoutOf(c) * 1000L) - (now - x.ReceivedMs));
                var flow = new FlowInfo(c.Original, c.Reply, c.Status, c.TcpState, leftMs)
                {
                    SctpState = c.SctpState,
                    SctpVtagOriginal = c.SctpVtagOriginal,
                    SctpVtagReply = c.SctpVtagReply,
                    Helper = c.Helper is { } name && CtHelpers.TryParse(name, out CtHelper helper, out _) ? helper : CtHelper.None,
                    Master = c.Master,
                };
                lines.Add(ConntrackListing.Format(flow));
            }
        }
        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    /// <summary>The external cache holds at most what the table may (nf_conntrack_max): more could never be committed.</summary>
    private int ExternalLimit => Math.Max(1, _engine.Settings.Max);

    /// <summary>Entries in the external cache now.</summary>
    public int ExternalCount
    {
        get
        {
            lock (_cacheLock)
                return _external.Count;
        }
    }

    /// <summary>Counters as `sync.*` stats (also served as metrics); each a whole 64-bit read, together a moment apart.</summary>
    public IEnumerable<KeyValuePair<string, long>> Stats()
    {
        FtfwCounters c = _session.Counters;
        yield return new("sync.external", ExternalCount);
        yield return new("sync.queue", Volatile.Read(ref _queued));
        yield return new("sync.queue.overflows", Interlocked.Read(ref _queueOverflows));
        yield return new("sync.events_lost", Interlocked.Read(ref _eventsLost));
        yield return new("sync.coalesced", Interlocked.Read(ref _coalesced));
        yield return new("sync.received_connections", c.ConnectionsReceived);
        yield return new("sync.external_full", Interlocked.Read(ref _externalFull));
        yield return new("sync.from_strangers", Interlocked.Read(ref _fromStrangers));
        yield return new("sync.send_errors", Interlocked.Read(ref _sendErrors));
        yield return new("sync.bulk_sends", Interlocked.Read(ref _bulkSends));
        yield return new("sync.peer_starts", Interlocked.Read(ref _peerRestarts));
        yield return new("sync.bulk_entries", Interlocked.Read(ref _bulkEntries));
        yield return new("sync.commits", Interlocked.Read(ref _commits));
        yield return new("sync.committed", Interlocked.Read(ref _committed));
        yield return new("sync.peer_up", c.PeerUp ? 1 : 0);
        yield return new("sync.sent.datagrams", c.DatagramsSent);
        yield return new("sync.sent.messages", c.MessagesSent);
        yield return new("sync.sent.bytes", c.BytesSent);
        yield return new("sync.sent.acks", c.AcksSent);
        yield return new("sync.sent.nacks", c.NacksSent);
        yield return new("sync.sent.alives", c.AlivesSent);
        yield return new("sync.sent.resyncs", c.ResyncsSent);
        yield return new("sync.resent", c.Resent);
        yield return new("sync.superseded", c.Superseded);
        yield return new("sync.resend_purged", c.ResendPurged);
        yield return new("sync.pending", _session.Pending);
        yield return new("sync.unacknowledged", _session.Unacknowledged);
        yield return new("sync.session_overflows", c.QueueOverflows);
        yield return new("sync.unrepresentable", c.Unrepresentable);
        yield return new("sync.received.datagrams", c.DatagramsReceived);
        yield return new("sync.received.messages", c.MessagesReceived);
        yield return new("sync.received.bytes", c.BytesReceived);
        yield return new("sync.received.acks", c.AcksReceived);
        yield return new("sync.received.nacks", c.NacksReceived);
        yield return new("sync.received.alives", c.AlivesReceived);
        yield return new("sync.received.resyncs", c.ResyncsReceived);
        yield return new("sync.received.hellos", c.PeerHellos);
        yield return new("sync.received.lost", c.SequenceLost);
        yield return new("sync.received.delayed", c.SequenceDelayed);
        yield return new("sync.received.malformed", c.Malformed);
        yield return new("sync.received.unsupported", c.Unsupported);
    }

    /// <summary>`ctfw sync status`: role-free facts first, then every counter.</summary>
    public List<string> Status()
    {
        List<string> lines =
        [
            "mode: ftfw",
            $"role: {Volatile.Read(ref _active) switch { 1 => "active (committed)", 0 => "backup (resync asked)", _ => "not set (no commit or resync yet)" }}",
            $"local: {_options.Local}{(_options.Interface is { } i ? " on " + i : "")}",
            $"peer: {_options.Peer} ({(_session.Counters.PeerUp ? "up" : "not heard from")})",
        ];
        foreach (KeyValuePair<string, long> kv in Stats())
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{kv.Key["sync.".Length..]}: {kv.Value}"));
        return lines;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stop.Set();
        if (_thread.IsAlive)
            _thread.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
        _stop.Dispose();
    }

    private readonly record struct Outgoing(SyncMessageType Type, KernelConnection Connection);

    private readonly record struct External(KernelConnection Connection, long ReceivedMs);
}
