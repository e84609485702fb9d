namespace Ctfw.Conntrack;

/// <summary>
/// The tracker as a whole: settings, the shared table and its housekeeping. Workers
/// (<see cref="CreateWorker"/>) classify packets concurrently; exactly one thread at a time calls
/// <see cref="Maintain"/>. Time is always passed in (milliseconds on any monotonic clock), never read.
/// </summary>
public sealed class ConntrackEngine
{
    internal readonly ConnTable Table;

    public ConntrackSettings Settings { get; }

    private readonly Lock _readerLock = new();
    private readonly int _readerSlot;

    public ConntrackEngine(ConntrackSettings settings, long now, int maxWorkers = 8, ulong? hashSeed = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWorkers, 1);
        Settings = settings;
        // One epoch slot per worker plus one for listings (Snapshot, TryGetFlow), taken here.
        Table = new ConnTable(settings.Max, maxWorkers, now, hashSeed);
        _readerSlot = Table.Epochs.Register();
    }

    /// <summary>A classifier for one thread. Throws when <c>maxWorkers</c> workers are alive already.</summary>
    public ConntrackWorker CreateWorker()
    {
        int slot = Table.Epochs.Register();
        if (slot < 0)
            throw new InvalidOperationException("all worker slots are taken (raise maxWorkers)");
        return new ConntrackWorker(this, slot);
    }

    internal void ReleaseWorker(int slot) => Table.Epochs.Unregister(slot);

    /// <summary>Entries alive (nf_conntrack_count).</summary>
    public int Count => Table.Count;

    public long EarlyDrops => Table.EarlyDrops;

    public long AllocFailures => Table.AllocFailures;

    /// <summary>Expire, unlink and recycle; see <see cref="ConnTable.Maintain"/>. Returns entries expired.</summary>
    public int Maintain(long now, int budget = int.MaxValue) => Table.Maintain(now, budget);

    /// <summary>A copy of every live entry, for listings (`ctfw conntrack -L`) and tests.</summary>
    public List<FlowInfo> Snapshot(long now)
    {
        var list = new List<FlowInfo>();
        lock (_readerLock)
        {
            Table.Epochs.Enter(_readerSlot);
            try
            {
                Table.ForEachLive(now, idx => list.Add(FlowInfo.From(Table, idx, now)));
            }
            finally
            {
                Table.Epochs.Exit(_readerSlot);
            }
        }
        return list;
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
                    if (Table.Kill(idx))
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

/// <summary>A copy of one entry's user-visible state (what ctnetlink exports, §13.3).</summary>
public readonly record struct FlowInfo(ConnTuple Original, ConnTuple Reply, CtStatus Status, TcpState TcpState, long TimeoutMs)
{
    internal static FlowInfo From(ConnTable table, int idx, long now)
    {
        ref ConnEntry e = ref table.Entries[idx];
        ConnTuple orig = e.Orig;
        orig.TryInvert(out ConnTuple reply);
        return new FlowInfo(orig, reply, (CtStatus)(Volatile.Read(ref e.Status) & 0xFFFF),
            orig.Protocol == Packets.IpProto.Tcp ? e.Tcp.State : TcpState.None,
            Math.Max(0, Volatile.Read(ref e.Deadline) - now));
    }
}
