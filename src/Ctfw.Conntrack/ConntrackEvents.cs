using System.Runtime.InteropServices;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>One conntrack event as a subscriber gets it: what happened, and the entry as it was then.</summary>
/// <param name="Sequence">Order of the events across producers (a global counter taken when the event was made).</param>
/// <param name="TimestampMs">The engine clock (ms) of the packet, expiry or request that made it.</param>
/// <param name="Userspace">A DESTROY that a control request (`conntrack -D`/`-F`) caused.</param>
public readonly record struct ConntrackEvent(ConntrackEventKind Kind, FlowInfo Flow, long Sequence, long TimestampMs, bool Userspace);

/// <summary>
/// The fixed-size record a producer writes into its ring (no references, so a ring is one flat array).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct EventRecord
{
    public long Sequence;
    public long TimestampMs;
    public ConnTuple Orig;
    public long TimeoutMs;
    public FlowAcct Acct;
    /// <summary>Reported status bits (kernel bits 0–15 and Rescued).</summary>
    public uint Status;
    public uint SctpVtag0;
    public uint SctpVtag1;
    /// <summary>An expected entry's master (ORIGINAL tuple); IpVersion 0 when none.</summary>
    public ConnTuple Master;
    public CtHelper Helper;
    public TcpState TcpState;
    public SctpState SctpState;
    public ConntrackEventKind Kind;
    public bool Userspace;
    /// <summary><see cref="Acct"/> holds counters (accounting was on); otherwise it is zero and means none.</summary>
    public bool Counted;
}

/// <summary>
/// One producer's events: a <see cref="SpscRing{T}"/> of <see cref="EventRecord"/>. The producer
/// never waits: a full ring drops the event and counts it in <see cref="SpscRing{T}.Dropped"/>. "Single producer" is a role, not a thread: the
/// housekeeper's ring is written by whichever thread holds the remover flag, the control ring under
/// the engine's reader lock; both hand-offs are acquire/release, so successive writers are ordered.
/// </summary>
internal sealed class EventRing : SpscRing<EventRecord>
{
    public const int Capacity = 1024;

    public EventRing(string name)
        : base(Capacity) => Name = name;

    /// <summary>Who writes it (`worker.0`, `housekeeper`, `control`), for the per-producer drop counters.</summary>
    public string Name { get; }

    /// <summary>Consumer: forgets everything queued (the last subscriber left).</summary>
    public void Clear()
    {
        while (TryTake(out _))
        {
        }
    }
}

/// <summary>
/// Conntrack events (`conntrack -E`): NEW when an entry is confirmed, UPDATE when a packet changed its
/// TCP state, SEEN_REPLY or ASSURED (the kernel's IPCT_PROTOINFO, IPCT_REPLY, IPCT_ASSURED, delivered
/// once per packet and never for a dying entry), DESTROY when it dies (expiry, RST, reopen, early
/// drop, `conntrack -D`/`-F`).
/// <para>Every producer (each worker, the housekeeper, the control thread) writes fixed-size records
/// into its own <see cref="EventRing"/>, and only while someone listens: with no subscriber an event
/// costs one volatile read. One consumer (<see cref="TakeAll"/>) collects them, in sequence order.
/// Nothing here allocates on a producer's side.</para>
/// </summary>
public sealed class ConntrackEvents
{
    private readonly Lock _lock = new();
    private EventRing[] _rings = [];
    private int _subscribers;
    private PaddedLong _sequence;
    private readonly List<EventRecord> _pending = new(EventRing.Capacity);
    private readonly Dictionary<string, long> _dropped = new(StringComparer.Ordinal);

    internal ConntrackEvents()
    {
        Housekeeper = AddRing("housekeeper");
        Control = AddRing("control");
    }

    /// <summary>The ring of the remover role's expiries (written under the remover flag).</summary>
    internal EventRing Housekeeper { get; }

    /// <summary>The ring of control-thread kills (written under the engine's reader lock).</summary>
    internal EventRing Control { get; }

    /// <summary>
    /// True while at least one subscriber listens. Producers test it before building a record.
    /// Volatile read: a fresh value each event (a subscriber that just came may miss the events of
    /// a packet in flight, one that just left may get them queued and then discarded).
    /// </summary>
    internal bool Active
    {
        get => Volatile.Read(ref _subscribers) != 0;
    }

    internal EventRing AddRing(string name)
    {
        var ring = new EventRing(name);
        lock (_lock)
        {
            // Copy on write: the consumer reads the array without the lock.
            EventRing[] next = new EventRing[_rings.Length + 1];
            _rings.CopyTo(next, 0);
            next[^1] = ring;
            Volatile.Write(ref _rings, next); // release: the ring is constructed before the consumer can see it
        }
        return ring;
    }

    /// <summary>A subscriber starts listening: producers start writing events.</summary>
    public void Subscribe() => Interlocked.Increment(ref _subscribers);

    /// <summary>A subscriber stops. With none left, producers stop writing and what is queued is discarded.</summary>
    public void Unsubscribe()
    {
        if (Interlocked.Decrement(ref _subscribers) == 0)
        {
            foreach (EventRing ring in Volatile.Read(ref _rings))
                ring.Clear();
        }
    }

    /// <summary>Subscribers now.</summary>
    public int Subscribers => Volatile.Read(ref _subscribers);

    /// <summary>Events dropped because a producer's ring was full, per producer (`worker.N`, `housekeeper`, `control`).</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Dropped
    {
        get
        {
            EventRing[] rings = Volatile.Read(ref _rings);
            var list = new List<KeyValuePair<string, long>>(rings.Length);
            lock (_lock)
            {
                _dropped.Clear();
                foreach (EventRing ring in rings)
                {
                    // Several workers of one name over time (a worker re-created): their drops add up.
                    _dropped.TryGetValue(ring.Name, out long d);
                    _dropped[ring.Name] = d + ring.Dropped;
                }
                foreach (KeyValuePair<string, long> kv in _dropped)
                    list.Add(kv);
            }
            return list;
        }
    }

    /// <summary>All events dropped by full rings so far.</summary>
    public long DroppedTotal
    {
        get
        {
            long sum = 0;
            foreach (EventRing ring in Volatile.Read(ref _rings))
                sum += ring.Dropped;
            return sum;
        }
    }

    /// <summary>
    /// Consumer (one thread): appends every queued event to <paramref name="into"/>, in sequence order
    /// (an event whose producer had taken its number but not yet published it comes in a later call).
    /// </summary>
    public int TakeAll(List<ConntrackEvent> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        _pending.Clear();
        foreach (EventRing ring in Volatile.Read(ref _rings))
        {
            while (ring.TryTake(out EventRecord r))
                _pending.Add(r);
        }
        _pending.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        foreach (EventRecord r in _pending)
            into.Add(ToEvent(r));
        return _pending.Count;
    }

    private static ConntrackEvent ToEvent(in EventRecord r)
    {
        r.Orig.TryInvert(out ConnTuple reply);
        var flow = new FlowInfo(r.Orig, reply, (CtStatus)(r.Status & PrivateStatus.Reported), r.TcpState, r.TimeoutMs)
        {
            Rescued = (r.Status & (uint)CtStatus.Rescued) != 0,
            SctpState = r.SctpState,
            SctpVtagOriginal = r.SctpVtag0,
            SctpVtagReply = r.SctpVtag1,
            Helper = r.Helper,
            Master = r.Master.IpVersion != 0 ? r.Master : null,
            HasAccounting = r.Counted,
            PacketsOriginal = r.Acct.Packets0,
            BytesOriginal = r.Acct.Bytes0,
            PacketsReply = r.Acct.Packets1,
            BytesReply = r.Acct.Bytes1,
        };
        return new ConntrackEvent(r.Kind, flow, r.Sequence, r.TimestampMs, r.Userspace);
    }

    /// <summary>
    /// Producer side: the record of entry <paramref name="idx"/> as it is now, into <paramref name="ring"/>.
    /// Call only when <see cref="Active"/>. <paramref name="hideStatus"/> clears bits the event must
    /// not show (a reply RST's DESTROY comes before the kernel marks the reply seen).
    /// </summary>
    internal void Emit(EventRing ring, ConnTable table, int idx, ConntrackEventKind kind, long now, bool userspace = false, uint hideStatus = 0)
    {
        ref ConnEntry e = ref table.Entries[idx];
        EventRecord r;
        // One global order across producers; a padded word touched only while someone listens.
        r.Sequence = Interlocked.Increment(ref _sequence.Value);
        r.TimestampMs = now;
        r.Orig = e.Orig;
        // Benign race, as FlowInfo.From: each field one whole read, the set possibly a packet apart
        // when another worker updates the entry meanwhile (the caller may or may not hold its lock).
        r.TimeoutMs = Math.Max(0, Volatile.Read(ref e.Deadline) - now);
        // Benign race: a plain read of a reference set once and never cleared (ConnTable.EnableAccounting).
        FlowAcct[]? counted = table.Acct;
        r.Counted = counted != null;
        r.Acct = default;
        if (counted != null)
        {
            ref FlowAcct a = ref counted[idx];
            r.Acct.Packets0 = Volatile.Read(ref a.Packets0);
            r.Acct.Bytes0 = Volatile.Read(ref a.Bytes0);
            r.Acct.Packets1 = Volatile.Read(ref a.Packets1);
            r.Acct.Bytes1 = Volatile.Read(ref a.Bytes1);
        }
        r.Status = Volatile.Read(ref e.Status) & (PrivateStatus.Reported | (uint)CtStatus.Rescued) & ~hideStatus;
        r.TcpState = e.Orig.Protocol == IpProto.Tcp ? e.Tcp.State : TcpState.None;
        bool sctp = e.Orig.Protocol == IpProto.Sctp;
        r.SctpState = sctp ? e.Sctp.State : SctpState.None;
        r.SctpVtag0 = sctp ? e.Sctp.Vtag0 : 0;
        r.SctpVtag1 = sctp ? e.Sctp.Vtag1 : 0;
        // Written before the entry was published (helper, master): plain reads of settled values.
        HelperSlot[]? helpers = table.Helpers;
        r.Helper = helpers != null ? helpers[idx].Helper : CtHelper.None;
        r.Master = helpers != null ? helpers[idx].MasterOrig : default;
        r.Kind = kind;
        r.Userspace = userspace;
        ring.Add(r);
    }
}
