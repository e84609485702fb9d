using Ctfw.Packets;

namespace Ctfw.Conntrack;

//  Offload (issue 15, docs/OFFLOAD.md): established flows handed to the kernel's nftables sets so
//  their data packets skip the queue. The engine's part is small and has no Linux in it:
//   * workers nominate flows (ConntrackWorker.Nominate, after an ACCEPT verdict) and report flows
//     that leave ESTABLISHED, each into a single-producer ring of its own (OffloadRing);
//   * CtStatus.Offload (the kernel's IPS_OFFLOAD bit, which conntrack -L prints as [OFFLOAD]) means
//     "elements of this flow may be in the kernel's sets": set by the nominating worker, cleared by
//     the offload manager once the elements are gone (or were never added);
//   * PrivateStatus.Bypassed stays set once a flow was nominated: ctfw may have missed data, so a
//     segment that fails the window check only because it is ahead of what ctfw saw re-learns the
//     windows instead (ConntrackWorker.Existing);
//   * the manager (one thread, the daemon's OffloadManager) reads the element counters and time left
//     and calls Observe, which keeps the entry alive while the kernel forwards it, adds the bypassed
//     packets to the flow's accounting, and expires it once both ctfw and the kernel have been idle
//     for the timeout.

/// <summary>What a worker asks of the offload manager.</summary>
public enum OffloadRequestKind : byte
{
    /// <summary>The flow is ESTABLISHED (TCP) or ASSURED (UDP) and was accepted: put it in the sets.</summary>
    Add,
    /// <summary>The flow left ESTABLISHED (FIN, RST) or died: take its elements out.</summary>
    Remove,
}

/// <summary>One request from a worker; <see cref="Generation"/> is the ruleset generation that accepted it (Add).</summary>
public readonly record struct OffloadRequest(OffloadRequestKind Kind, int Entry, ConnTuple Orig, int Generation);

/// <summary>A worker's ring of offload requests (one producer: the worker; one consumer: the manager).</summary>
internal sealed class OffloadRing() : SpscRing<OffloadRequest>(Capacity)
{
    public const int Capacity = 4096;
}

/// <summary>Offload settings the engine needs (the daemon's <c>--offload</c> options).</summary>
public sealed record OffloadPolicy
{
    /// <summary>A TCP flow is nominated only once it has been ESTABLISHED this long (ms): short connections stay in ctfw.</summary>
    public long DelayMs { get; init; } = 100;
}

/// <summary>The result of <see cref="ConntrackEngine.ObserveOffloaded"/>.</summary>
public enum OffloadObservation
{
    /// <summary>Still ESTABLISHED/ASSURED and alive: keep the elements.</summary>
    Alive,
    /// <summary>The entry died, was replaced or left ESTABLISHED: take the elements out, then call <see cref="ConntrackEngine.EndOffload"/>.</summary>
    Ended,
    /// <summary>Idle for the timeout on both sides: take the elements out, then <see cref="ConntrackEngine.EndOffload"/> expires it.</summary>
    Idle,
}

/// <summary>Per-flow bookkeeping the manager keeps between observations (its own, never shared).</summary>
public sealed class OffloadedFlow(int entry, ConnTuple orig, long addedMs)
{
    public int Entry { get; } = entry;
    public ConnTuple Orig { get; } = orig;
    public long AddedMs { get; } = addedMs;
    /// <summary>The deadline the manager last wrote into the entry; a different value means a worker refreshed it.</summary>
    public long WrittenDeadline { get; set; } = long.MinValue;
    /// <summary>The entry's deadline from the packets ctfw saw (its own refreshes).</summary>
    public long OwnDeadline { get; set; } = long.MinValue;
    /// <summary>Element counters (already halved: lookup and update both count) at the last observation, per direction.</summary>
    public long Packets0 { get; set; }
    public long Bytes0 { get; set; }
    public long Packets1 { get; set; }
    public long Bytes1 { get; set; }
    /// <summary>The kernel's last packet of the flow (engine ms), from the elements' time left.</summary>
    public long LastKernelPacketMs { get; set; } = long.MinValue;
}

/// <summary>The engine's side of offload: the workers' request rings and counters.</summary>
public sealed class EngineOffload
{
    private readonly Lock _ringsLock = new();
    private OffloadRing[] _ringArray = []; // copy-on-write under _ringsLock: Drain reads it without allocating
    private PaddedLong _relearned;

    internal EngineOffload(OffloadPolicy policy) => Policy = policy;

    public OffloadPolicy Policy { get; }

    internal OffloadRing NewRing()
    {
        var ring = new OffloadRing();
        lock (_ringsLock)
            Volatile.Write(ref _ringArray, [.. _ringArray, ring]); // release: the ring is constructed before Drain sees it
        return ring;
    }

    /// <summary>Takes every queued request (manager thread only: the rings' one consumer).</summary>
    public int Drain(List<OffloadRequest> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        OffloadRing[] rings = Volatile.Read(ref _ringArray); // acquire: pairs with NewRing's release
        int n = 0;
        foreach (OffloadRing ring in rings)
        {
            while (ring.TryTake(out OffloadRequest r))
            {
                into.Add(r);
                n++;
            }
        }
        return n;
    }

    /// <summary>Requests dropped because a worker's ring was full (the flow is nominated again by a later packet).</summary>
    public long Dropped => Volatile.Read(ref _ringArray).Sum(r => r.Dropped); // acquire, as in Drain

    /// <summary>Segments of once-offloaded flows whose windows were re-learned (they were ahead of what ctfw had seen).</summary>
    public long Relearned => Volatile.Read(ref _relearned.Value); // statistic: fresh whole read

    internal void CountRelearned() => Interlocked.Increment(ref _relearned.Value);
}

public sealed partial class ConntrackEngine
{
    /// <summary>Offload's rings and counters; null unless <see cref="EnableOffload"/> was called.</summary>
    public EngineOffload? Offload { get; private set; }

    /// <summary>Turns nomination on. Call before the first <see cref="CreateWorker"/>.</summary>
    public EngineOffload EnableOffload(OffloadPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (_workerStats.Count > 0)
            throw new InvalidOperationException("EnableOffload must come before the workers are created");
        Offload = new EngineOffload(policy);
        return Offload;
    }

    /// <summary>The timeout (ms) an offloaded flow of <paramref name="protocol"/> lives after its last packet, from the current sysctls.</summary>
    public long OffloadTimeoutMs(byte protocol) =>
        protocol == IpProto.Tcp ? Settings.TcpTimeout(TcpState.Established) * 1000L : Settings.UdpTimeoutStream * 1000L;

    /// <summary>
    /// Locks entry <paramref name="entry"/> when it still holds the flow of <paramref name="orig"/> and
    /// returns true (the caller unlocks); false, unlocked, when the slot holds another flow by now.
    /// The manager's calls hold no epoch: a slot may be reused under them, never freed.
    /// </summary>
    private bool LockFlow(int entry, in ConnTuple orig)
    {
        if ((uint)entry >= (uint)Table.Entries.Length)
            return false;
        Table.Lock(entry);
        if (Table.Entries[entry].Orig == orig)
            return true;
        Table.Unlock(entry);
        return false;
    }

    /// <summary>Status bits changed under the entry lock; atomic, since Dying is ORed in without it.</summary>
    private void SetBits(int entry, uint set, uint clear)
    {
        ref uint status = ref Table.Entries[entry].Status;
        if (set != 0)
            Interlocked.Or(ref status, set);
        if (clear != 0)
            Interlocked.And(ref status, ~clear);
    }

    /// <summary>
    /// Manager: is the entry of a nominated flow still the flow, live and offloadable? Records its deadline
    /// in <paramref name="flow"/>. False clears the Offload bit when the entry is still the flow's.
    /// </summary>
    public bool BeginOffload(OffloadedFlow flow, long now)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (!LockFlow(flow.Entry, flow.Orig))
            return false;
        ref ConnEntry e = ref Table.Entries[flow.Entry];
        bool ok = e.Deadline - now > 0 && Offloadable(ref e);
        if (ok)
        {
            flow.OwnDeadline = e.Deadline;
            flow.WrittenDeadline = long.MinValue;
        }
        else
        {
            SetBits(flow.Entry, 0, (uint)CtStatus.Offload);
        }
        Table.Unlock(flow.Entry);
        return ok;
    }

    /// <summary>Manager: a nominated flow whose elements were never added: clears its Offload bit.</summary>
    public void AbandonOffload(int entry, in ConnTuple orig)
    {
        if (!LockFlow(entry, orig))
            return;
        SetBits(entry, 0, (uint)CtStatus.Offload);
        Table.Unlock(entry);
    }

    /// <summary>
    /// Manager: the kernel would not take the flow's elements. Clears its Offload bit and sets
    /// OffloadRefused, so its packets (judged by ctfw as usual) do not nominate it again until
    /// <see cref="ReleaseRefusedOffload"/>.
    /// </summary>
    public void RefuseOffload(OffloadedFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (!LockFlow(flow.Entry, flow.Orig))
            return;
        SetBits(flow.Entry, PrivateStatus.OffloadRefused, (uint)CtStatus.Offload);
        Table.Unlock(flow.Entry);
    }

    /// <summary>Manager: a refused flow may be nominated again.</summary>
    public void ReleaseRefusedOffload(OffloadedFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (!LockFlow(flow.Entry, flow.Orig))
            return;
        SetBits(flow.Entry, 0, PrivateStatus.OffloadRefused);
        Table.Unlock(flow.Entry);
    }

    /// <summary>Live, ASSURED and (TCP) ESTABLISHED; UDP otherwise. Entry locked.</summary>
    private static bool Offloadable(ref ConnEntry e)
    {
        uint status = Volatile.Read(ref e.Status); // fresh: Dying is set without the lock
        if ((status & ((uint)CtStatus.Dying | (uint)CtStatus.Assured)) != (uint)CtStatus.Assured)
            return false;
        return e.Orig.Protocol switch
        {
            IpProto.Tcp => e.Tcp.State == TcpState.Established,
            IpProto.Udp => true,
            _ => false,
        };
    }

    /// <summary>
    /// Manager, after reading the flow's elements: <paramref name="packets0"/>… are the element counters
    /// (halved) per direction, <paramref name="lastKernelPacketMs"/> when the kernel last forwarded a
    /// packet of the flow (long.MinValue: never). Adds what the kernel forwarded since the last call to
    /// the flow's accounting, and keeps the entry's deadline at the later of its own and the kernel's
    /// last packet plus the timeout, and at least <paramref name="holdUntil"/> — so ctfw never forgets a
    /// flow the kernel still forwards, even between two observations.
    /// </summary>
    public OffloadObservation ObserveOffloaded(OffloadedFlow flow, long packets0, long bytes0, long packets1, long bytes1,
        long lastKernelPacketMs, long holdUntil, long now)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (!LockFlow(flow.Entry, flow.Orig))
            return OffloadObservation.Ended;
        ref ConnEntry e = ref Table.Entries[flow.Entry];
        try
        {
            long current = e.Deadline;
            if (current != flow.WrittenDeadline)
                flow.OwnDeadline = current; // a worker refreshed it from a packet ctfw saw
            // The deadline is not looked at: the manager holds it while the elements exist.
            if (!Offloadable(ref e))
                return OffloadObservation.Ended;

            AddCounts(flow, packets0, bytes0, packets1, bytes1);
            if (lastKernelPacketMs > flow.LastKernelPacketMs)
                flow.LastKernelPacketMs = lastKernelPacketMs;

            long truth = TrueDeadline(flow);
            // Held past its true deadline even when idle: the entry must outlive its elements, which
            // the manager removes next; EndOffload then puts the true (past) deadline back.
            long deadline = Math.Max(truth, holdUntil);
            Volatile.Write(ref e.Deadline, deadline); // whole store for the lock-free readers
            flow.WrittenDeadline = deadline;
            return truth - now <= 0 ? OffloadObservation.Idle : OffloadObservation.Alive;
        }
        finally
        {
            Table.Unlock(flow.Entry);
        }
    }

    /// <summary>
    /// Manager, right before the flow's elements are removed: the counters read last (halved), so what
    /// the kernel forwarded since the last observation is counted too. Only while the entry is still
    /// the flow's (a dead flow's slot may hold another flow by now).
    /// </summary>
    public void CountOffloaded(OffloadedFlow flow, long packets0, long bytes0, long packets1, long bytes1)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (!LockFlow(flow.Entry, flow.Orig))
            return;
        AddCounts(flow, packets0, bytes0, packets1, bytes1);
        Table.Unlock(flow.Entry);
    }

    /// <summary>Adds what the counters grew by since the last call to the flow's accounting. Entry locked.</summary>
    private void AddCounts(OffloadedFlow flow, long packets0, long bytes0, long packets1, long bytes1)
    {
        FlowAcct[]? acct = Volatile.Read(ref Table.Acct); // published once, never replaced
        if (acct != null)
        {
            ref FlowAcct a = ref acct[flow.Entry];
            a.Packets0 += Math.Max(0, packets0 - flow.Packets0);
            a.Bytes0 += Math.Max(0, bytes0 - flow.Bytes0);
            a.Packets1 += Math.Max(0, packets1 - flow.Packets1);
            a.Bytes1 += Math.Max(0, bytes1 - flow.Bytes1);
        }
        flow.Packets0 = Math.Max(flow.Packets0, packets0);
        flow.Bytes0 = Math.Max(flow.Bytes0, bytes0);
        flow.Packets1 = Math.Max(flow.Packets1, packets1);
        flow.Bytes1 = Math.Max(flow.Bytes1, bytes1);
    }

    private long TrueDeadline(OffloadedFlow flow)
    {
        long kernel = flow.LastKernelPacketMs == long.MinValue ? long.MinValue : flow.LastKernelPacketMs + OffloadTimeoutMs(flow.Orig.Protocol);
        return Math.Max(flow.OwnDeadline, kernel);
    }

    /// <summary>
    /// Manager, once the flow's elements are out of the kernel's sets: clears the Offload bit and, when
    /// the deadline is still the one the manager held it at, puts back the true one (the later of
    /// ctfw's own and the kernel's last packet plus the timeout). An idle flow's true deadline has
    /// passed, so it expires now — through the timer wheel, with its tombstone for rescue and its
    /// DESTROY event, as any expiry.
    /// </summary>
    public void EndOffload(OffloadedFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (!LockFlow(flow.Entry, flow.Orig))
            return;
        ref ConnEntry e = ref Table.Entries[flow.Entry];
        if (flow.WrittenDeadline != long.MinValue && e.Deadline == flow.WrittenDeadline)
            Volatile.Write(ref e.Deadline, TrueDeadline(flow)); // whole store for the lock-free readers
        SetBits(flow.Entry, 0, (uint)CtStatus.Offload);
        Table.Unlock(flow.Entry);
    }
}
