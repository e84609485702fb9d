namespace Ctfw.Conntrack;

/// <summary>
/// The tracker as a whole: settings, the shared table and its housekeeping. Workers
/// (<see cref="CreateWorker"/>) classify packets concurrently; exactly one thread at a time calls
/// <see cref="Maintain"/>. Time is always passed in (milliseconds on any monotonic clock), never read.
/// </summary>
public sealed partial class ConntrackEngine
{
    internal readonly ConnTable Table;

    public ConntrackSettings Settings { get; }

    /// <summary>Late FIN/RST rescue (docs/RESCUE.md); <see cref="RescueMode.Off"/> unless given.</summary>
    public RescueOptions Rescue { get; }

    private readonly Lock _readerLock = new();
    private readonly int _readerSlot;
    private readonly Lock _feedLock = new();
    internal readonly RescueTally RescueTally = new();

    /// <param name="rescue">Rescue of late FIN/RST after expiry; null or <see cref="RescueMode.Off"/> = the kernel's behaviour.</param>
    public ConntrackEngine(ConntrackSettings settings, long now, int maxWorkers = 8, ulong? hashSeed = null, RescueOptions? rescue = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWorkers, 1);
        rescue ??= new RescueOptions();
        rescue.Validate();
        Settings = settings;
        Rescue = rescue;
        // One epoch slot per worker plus one for listings (Snapshot, TryGetFlow), taken here.
        Table = new ConnTable(settings.Max, maxWorkers, now, hashSeed);
        // Allocated only when used: the store costs 128 B per tombstone slot whether or not it fills.
        if (rescue.Mode != RescueMode.Off)
            Table.Tombstones = new TombstoneStore(rescue.MaxTombstones, rescue.WindowSeconds * 1000L);
        // As the kernel's acct extension: only with nf_conntrack_acct=1 (32 B per slot otherwise saved).
        if (settings.Acct)
            Table.EnableAccounting();
        _readerSlot = Table.Epochs.Register();
        Events = new ConntrackEvents();
        Table.Events = Events;
    }

    /// <summary>
    /// A sysctl reload (SIGHUP, `ctfw reload`, `reload-sysctls`): copies every value but
    /// nf_conntrack_max into <see cref="Settings"/> (<see cref="ConntrackSettings.CopyRuntimeValuesFrom"/>)
    /// and returns the names that changed. nf_conntrack_acct turned on allocates the accounting array
    /// here, before the setting shows, so a listing that sees the knob on finds the array; from then
    /// on every packet is counted, live entries from zero (the kernel gives those no counters at all).
    /// Turned off, the array stays (workers may hold it) and counting goes on; listings hide the
    /// counters while it is off, and `-o json` still shows them (as the kernel's dumps show the
    /// counters of entries that have the extension).
    /// </summary>
    public List<string> ReloadSettings(ConntrackSettings fresh)
    {
        ArgumentNullException.ThrowIfNull(fresh);
        if (fresh.Acct)
            Table.EnableAccounting();
        return Settings.CopyRuntimeValuesFrom(fresh);
    }

    /// <summary>
    /// Turns conntrack helpers on (a ruleset with `CT --helper`): allocates the per-entry helper state
    /// and the expectation table once; later calls do nothing. Until then <see cref="PacketContext.Helper"/>
    /// is ignored. Not on the packet path.
    /// </summary>
    public void EnableHelpers()
    {
        lock (_readerLock)
        {
            if (Volatile.Read(ref Table.Helpers) != null)
                return;
            // The expectation table first: a worker that sees Helpers non-null finds it.
            Volatile.Write(ref _expectations, new Expectations(Table, Expectations.DefaultCapacity(Table.BucketCount)));
            Volatile.Write(ref Table.Helpers, new HelperSlot[Table.Entries.Length]);
        }
    }

    private Expectations? _expectations;

    /// <summary>The expectation table, once <see cref="EnableHelpers"/> ran.</summary>
    internal Expectations? Expectations => Volatile.Read(ref _expectations);

    /// <summary>The live expectations (`conntrack -L expect`); empty without helpers.</summary>
    public List<ExpectationInfo> ListExpectations(long now) => Expectations?.Snapshot(now) ?? [];

    /// <summary>Removes every expectation (`conntrack -F expect`); returns how many were live. Their masters keep their helpers.</summary>
    public int FlushExpectations(long now) => Expectations?.Clear(now) ?? 0;

    /// <summary>Whether packets are being counted (the accounting array exists: nf_conntrack_acct has been on).</summary>
    public bool Accounting => Volatile.Read(ref Table.Acct) != null; // fresh read of what EnableAccounting published

    /// <summary>Conntrack events for `conntrack -E` subscribers (written only while one listens).</summary>
    public ConntrackEvents Events { get; }

    private readonly List<WorkerStats> _workerStats = [];

    /// <summary>Every worker's `conntrack -S` counters, in creation order (workers that ended included).</summary>
    public IReadOnlyList<WorkerCounters> WorkerStatistics()
    {
        lock (_workerStats)
        {
            var list = new List<WorkerCounters>(_workerStats.Count);
            foreach (WorkerStats w in _workerStats)
                list.Add(w.Read());
            return list;
        }
    }

    /// <summary>A snapshot of the rescue counters (all zero with rescue off).</summary>
    public RescueCounters RescueStats
    {
        get
        {
            TombstoneStore? t = Table.Tombstones;
            RescueTally r = RescueTally;
            return new RescueCounters(t?.Live ?? 0, t?.Stored ?? 0, t?.Evicted ?? 0, t?.Expired ?? 0,
                r.Fin, r.Rst, r.Loose, r.OutOfWindow);
        }
    }

    /// <summary>
    /// When true, <see cref="Maintain"/> queues every TCP entry that expires by timeout in
    /// ESTABLISHED, FIN_WAIT, CLOSE_WAIT or LAST_ACK for <see cref="TryTakeExpired"/> (at most
    /// <see cref="ExpiryFeed.Capacity"/> waiting; more are dropped and counted in <see cref="ExpiredDropped"/>).
    /// </summary>
    public bool CollectExpired
    {
        get => Volatile.Read(ref Table.Feed) != null; // fresh read of what the setter published
        set
        {
            lock (_feedLock)
            {
                if (value)
                    _feed ??= new ExpiryFeed();
                // Release: the feed is constructed before Maintain can see it.
                Volatile.Write(ref Table.Feed, value ? _feed : null);
            }
        }
    }

    private ExpiryFeed? _feed;

    /// <summary>Takes the oldest expired flow queued by <see cref="Maintain"/>. One consumer thread only.</summary>
    public bool TryTakeExpired(out ExpiredTcpFlow flow)
    {
        // Lock-free read of a field the setter writes under _feedLock, once, and never resets: null
        // (nothing queued yet) or the feed; .NET publishes a new object's constructor writes with its
        // reference, and Table.Feed's release store is what Maintain relies on.
        ExpiryFeed? feed = Volatile.Read(ref _feed);
        if (feed == null)
        {
            flow = default;
            return false;
        }
        return feed.TryTake(out flow);
    }

    /// <summary>Expired flows not queued because <see cref="TryTakeExpired"/> had fallen <see cref="ExpiryFeed.Capacity"/> behind.</summary>
    public long ExpiredDropped => Volatile.Read(ref _feed)?.Dropped ?? 0; // as in TryTakeExpired

    /// <summary>A classifier for one thread. Throws when <c>maxWorkers</c> workers are alive already.</summary>
    public ConntrackWorker CreateWorker()
    {
        int slot = Table.Epochs.Register();
        if (slot < 0)
            throw new InvalidOperationException("all worker slots are taken (raise maxWorkers)");
        WorkerStats stats;
        lock (_workerStats)
        {
            stats = new WorkerStats(_workerStats.Count);
            _workerStats.Add(stats);
        }
        return new ConntrackWorker(this, slot, stats, Events.AddRing($"worker.{stats.Id}"));
    }

    internal void ReleaseWorker(int slot) => Table.Epochs.Unregister(slot);

    /// <summary>Entries alive (nf_conntrack_count).</summary>
    public int Count => Table.Count;

    public long EarlyDrops => Table.EarlyDrops;

    /// <summary>Entries killed by the housekeeper's early-drop pass after a table-full drop (§3.3 step 3).</summary>
    public long GcEarlyDrops => Table.GcEarlyDrops;

    public long AllocFailures => Table.AllocFailures;

    /// <summary>New flows refused because the table was full and nothing near their bucket could be early-dropped.</summary>
    public long FullDrops => Table.FullDrops;

    /// <summary>New flows refused for want of a reusable entry while places were free (part of <see cref="AllocFailures"/>).</summary>
    public long SlotShortages => Table.SlotShortages;

    /// <summary>Confirms refused because the tuple was already in the table (insert clash).</summary>
    public long InsertFailed => Table.InsertFailed;

    /// <summary>Times a worker reclaimed killed entries itself because none were free.</summary>
    public long ReclaimsOnDemand => Table.ReclaimsOnDemand;

    /// <summary>Expire, unlink and recycle; see <see cref="ConnTable.Maintain"/>. Returns entries expired.</summary>
    public int Maintain(long now, int budget = int.MaxValue) => Table.Maintain(now, budget);

    /// <summary>A copy of every live entry, for listings (`ctfw conntrack -L`) and tests.</summary>
    public List<FlowInfo> Snapshot(long now)
    {
        var list = new List<FlowInfo>();
        ForEachFlow(now, list.Add);
        return list;
    }

    /// <summary>
    /// Calls <paramref name="visit"/> with a copy of every live entry, without collecting them: for
    /// counts over a table of any size (a 1 M-entry <see cref="Snapshot"/> is a 150 MB list). The
    /// callback runs under the reader lock and inside an epoch; it must be quick and must not call back
    /// into the engine.
    /// </summary>
    public void ForEachFlow(long now, Action<FlowInfo> visit)
    {
        ArgumentNullException.ThrowIfNull(visit);
        lock (_readerLock)
        {
            Table.Epochs.Enter(_readerSlot);
            try
            {
                Table.ForEachLive(now, idx => visit(FlowInfo.From(Table, idx, now)));
            }
            finally
            {
                Table.Epochs.Exit(_readerSlot);
            }
        }
    }

    /// <summary>
    /// Kills every live entry (`conntrack -F`) and returns how many. Safe while workers classify:
    /// each entry dies through the same path as a RST's kill; the housekeeper unlinks them.
    /// </summary>
    public int Flush(long now)
    {
        int killed = 0;
        lock (_readerLock)
        {
            Table.Epochs.Enter(_readerSlot);
            try
            {
                Table.ForEachLive(now, idx =>
                {
                    if (Table.Kill(idx, Events.Control, now, userspace: true))
                        killed++;
                });
            }
            finally
            {
                Table.Epochs.Exit(_readerSlot);
            }
        }
        return killed;
    }

    /// <summary>
    /// Kills every live entry <paramref name="match"/> accepts (`conntrack -D` with filters) and
    /// returns copies of those it killed, as they were. Safe while workers classify, as <see cref="Flush"/>.
    /// </summary>
    public List<FlowInfo> Kill(long now, Func<FlowInfo, bool> match)
    {
        ArgumentNullException.ThrowIfNull(match);
        var killed = new List<FlowInfo>();
        lock (_readerLock)
        {
            Table.Epochs.Enter(_readerSlot);
            try
            {
                Table.ForEachLive(now, idx =>
                {
                    FlowInfo flow = FlowInfo.From(Table, idx, now);
                    if (match(flow) && Table.Kill(idx, Events.Control, now, userspace: true))
                        killed.Add(flow);
                });
            }
            finally
            {
                Table.Epochs.Exit(_readerSlot);
            }
        }
        return killed;
    }

    /// <summary>Looks up the live entry of <paramref name="tuple"/> in either direction.</summary>
    public bool TryGetFlow(in ConnTuple tuple, long now, out FlowInfo flow)
    {
        lock (_readerLock)
        {
            Table.Epochs.Enter(_readerSlot);
            try
            {
                int idx = Table.Lookup(tuple, Table.Hash(tuple), now, out _);
                flow = idx >= 0 ? FlowInfo.From(Table, idx, now) : default;
                return idx >= 0;
            }
            finally
            {
                Table.Epochs.Exit(_readerSlot);
            }
        }
    }
}

/// <summary>
/// A copy of one entry's user-visible state (what ctnetlink exports, §13.3), plus ctfw's ages of the
/// flow (for half-closed and stalled listings) and whether it was rescued.
/// </summary>
public readonly record struct FlowInfo(ConnTuple Original, ConnTuple Reply, CtStatus Status, TcpState TcpState, long TimeoutMs)
{
    /// <summary>When the TCP state last changed, on the engine's clock (ms); for other protocols when the entry was created.</summary>
    public long StateSinceMs { get; init; }

    /// <summary>When the entry was created, on the engine's clock (ms); see <c>FlowAge.CreatedMs</c> for restored, adopted and rescued entries.</summary>
    public long CreatedMs { get; init; }

    /// <summary>Since when the ORIGINAL sender has advertised a zero receive window (ms); <see cref="long.MinValue"/> when it does not.</summary>
    public long ZeroWindowSinceOriginal { get; init; } = long.MinValue;

    /// <summary>Since when the REPLY sender has advertised a zero receive window (ms); <see cref="long.MinValue"/> when it does not.</summary>
    public long ZeroWindowSinceReply { get; init; } = long.MinValue;

    /// <summary>The ORIGINAL sender has sent a FIN that conntrack accepted.</summary>
    public bool FinSeenOriginal { get; init; }

    /// <summary>The REPLY sender has sent a FIN that conntrack accepted.</summary>
    public bool FinSeenReply { get; init; }

    /// <summary>The SCTP state (`conntrack -L` prints it after the timeout); <see cref="SctpState.None"/> for other protocols.</summary>
    public SctpState SctpState { get; init; }

    /// <summary>SCTP: the verification tag ORIGINAL's packets carry (CTA_PROTOINFO_SCTP_VTAG_ORIGINAL); 0 for other protocols.</summary>
    public uint SctpVtagOriginal { get; init; }

    /// <summary>SCTP: the verification tag REPLY's packets carry.</summary>
    public uint SctpVtagReply { get; init; }

    /// <summary>The conntrack helper attached to the entry (`helper=ftp` in listings, CTA_HELP); <see cref="CtHelper.None"/> for most.</summary>
    public CtHelper Helper { get; init; }

    /// <summary>An expected (RELATED) entry's master: its ORIGINAL tuple (CTA_TUPLE_MASTER); null for others.</summary>
    public ConnTuple? Master { get; init; }

    /// <summary>Brought back by a late FIN/RST after expiry, or opened by loose rescue (`[RESCUED]` in listings).</summary>
    public bool Rescued { get; init; }

    /// <summary>Packets of the ORIGINAL direction the tracker accepted (nf_conntrack_acct's `packets=`).</summary>
    public long PacketsOriginal { get; init; }

    /// <summary>Bytes (IP total length) of those packets.</summary>
    public long BytesOriginal { get; init; }

    /// <summary>Packets of the REPLY direction the tracker accepted.</summary>
    public long PacketsReply { get; init; }

    /// <summary>Bytes (IP total length) of those packets.</summary>
    public long BytesReply { get; init; }

    /// <summary>
    /// Whether the four counters above were kept (accounting was on: the entry had the kernel's acct
    /// extension); false means no counters, not zero ones, and `-o json` leaves them out.
    /// </summary>
    public bool HasAccounting { get; init; }

    internal static FlowInfo From(ConnTable table, int idx, long now)
    {
        ref ConnEntry e = ref table.Entries[idx];
        ConnTuple orig = e.Orig;
        orig.TryInvert(out ConnTuple reply);
        // Benign race: a listing reads without the entry lock, so the fields below may be a packet
        // apart (as `conntrack -L`, which does not take ct->lock either). Status, Deadline and the ages
        // are each one fresh, whole read; the tuple does not change while the entry is live.
        uint status = Volatile.Read(ref e.Status);
        ref FlowAge age = ref table.Ages[idx];
        // Benign race: a plain read of a reference set once and never cleared (ConnTable.EnableAccounting).
        FlowAcct[]? counted = table.Acct;
        FlowAcct acct = default;
        if (counted != null)
        {
            // Benign race: each counter is one whole aligned 64-bit read (x64/arm64); the four may be a packet apart.
            ref FlowAcct a = ref counted[idx];
            acct.Packets0 = Volatile.Read(ref a.Packets0);
            acct.Bytes0 = Volatile.Read(ref a.Bytes0);
            acct.Packets1 = Volatile.Read(ref a.Packets1);
            acct.Bytes1 = Volatile.Read(ref a.Bytes1);
        }
        bool tcp = orig.Protocol == Packets.IpProto.Tcp;
        bool sctp = orig.Protocol == Packets.IpProto.Sctp;
        // Benign race: written before the entry was published and only then (helper, master), or a
        // byte and two words the tracker rewrites under the entry lock (SCTP), read without it.
        HelperSlot[]? helpers = Volatile.Read(ref table.Helpers);
        CtHelper helper = helpers != null ? helpers[idx].Helper : CtHelper.None;
        ConnTuple? master = helpers != null && helpers[idx].MasterOrig.IpVersion != 0 ? helpers[idx].MasterOrig : null;
        return new FlowInfo(orig, reply, (CtStatus)(status & PrivateStatus.Reported),
            tcp ? e.Tcp.State : TcpState.None,
            Math.Max(0, Volatile.Read(ref e.Deadline) - now))
        {
            StateSinceMs = Volatile.Read(ref age.StateSinceMs),
            CreatedMs = Volatile.Read(ref age.CreatedMs),
            // Benign race: a bit and its time may be one packet apart; the time is written before the bit is set.
            // (TrackAges: time store, then the bit's fenced OR; the Status read above is an acquire, so a
            // set bit we saw comes with a time at least as new.)
            ZeroWindowSinceOriginal = tcp && (status & PrivateStatus.ZeroWindow0) != 0 ? Volatile.Read(ref age.ZeroWindowSince0) : long.MinValue,
            ZeroWindowSinceReply = tcp && (status & (PrivateStatus.ZeroWindow0 << 1)) != 0 ? Volatile.Read(ref age.ZeroWindowSince1) : long.MinValue,
            FinSeenOriginal = tcp && (status & PrivateStatus.FinSeen0) != 0,
            FinSeenReply = tcp && (status & (PrivateStatus.FinSeen0 << 1)) != 0,
            Rescued = (status & (uint)CtStatus.Rescued) != 0,
            // Benign race: one byte read without the entry lock, as the TCP state above.
            SctpState = sctp ? e.Sctp.State : SctpState.None,
            SctpVtagOriginal = sctp ? Volatile.Read(ref e.Sctp.Vtag0) : 0,
            SctpVtagReply = sctp ? Volatile.Read(ref e.Sctp.Vtag1) : 0,
            Helper = helper,
            Master = master,
            // Benign race: each counter is one whole aligned 64-bit read (x64/arm64); the four may be a packet apart.
            HasAccounting = counted != null,
            PacketsOriginal = Volatile.Read(ref acct.Packets0),
            BytesOriginal = Volatile.Read(ref acct.Bytes0),
            PacketsReply = Volatile.Read(ref acct.Packets1),
            BytesReply = Volatile.Read(ref acct.Bytes1),
        };
    }
}

/// <summary>Rescue counters written by workers (rare path; one padded word each).</summary>
internal sealed class RescueTally
{
    private PaddedLong _fin;
    private PaddedLong _rst;
    private PaddedLong _loose;
    private PaddedLong _outOfWindow;

    // Counters added by workers concurrently (Interlocked, so none is lost) and read by stats as whole
    // 64-bit values that order nothing.
    public long Fin => Volatile.Read(ref _fin.Value);
    public long Rst => Volatile.Read(ref _rst.Value);
    public long Loose => Volatile.Read(ref _loose.Value);
    public long OutOfWindow => Volatile.Read(ref _outOfWindow.Value);

    public void CountRescued(bool rst) => Interlocked.Increment(ref (rst ? ref _rst.Value : ref _fin.Value));
    public void CountLoose() => Interlocked.Increment(ref _loose.Value);
    public void CountOutOfWindow() => Interlocked.Increment(ref _outOfWindow.Value);
}
