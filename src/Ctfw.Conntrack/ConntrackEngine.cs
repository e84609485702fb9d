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

    public ConntrackEngine(ConntrackSettings settings, long now, int maxWorkers = 8, ulong? hashSeed = null)
    {
        Settings = settings;
        Table = new ConnTable(settings.Max, maxWorkers, now, hashSeed);
    }

    public ConntrackWorker CreateWorker()
    {
        int slot = Table.Epochs.Register();
        if (slot < 0)
            throw new InvalidOperationException("all worker slots are taken");
        return new ConntrackWorker(this, slot);
    }

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
        int slot = Table.Epochs.Register();
        Table.Epochs.Enter(slot);
        try
        {
            Table.ForEachLive(now, idx => list.Add(FlowInfo.From(Table, idx, now)));
        }
        finally
        {
            Table.Epochs.Unregister(slot);
        }
        return list;
    }

    /// <summary>Looks up the live entry of <paramref name="tuple"/> in either direction.</summary>
    public bool TryGetFlow(in ConnTuple tuple, long now, out FlowInfo flow)
    {
        int slot = Table.Epochs.Register();
        Table.Epochs.Enter(slot);
        try
        {
            int idx = Table.Lookup(tuple, Table.Hash(tuple), now, out _);
            flow = idx >= 0 ? FlowInfo.From(Table, idx, now) : default;
            return idx >= 0;
        }
        finally
        {
            Table.Epochs.Unregister(slot);
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
