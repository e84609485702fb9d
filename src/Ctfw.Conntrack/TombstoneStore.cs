using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>
/// What is left of a TCP entry that expired (rescue, docs/RESCUE.md): its tuple, both directions'
/// window state and its state, for a late FIN or RST to be checked against. 128 bytes.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct Tombstone
{
    /// <summary>(version &lt;&lt; 2) | <see cref="TombstoneStore"/> slot state; see the store's protocol.</summary>
    [FieldOffset(0)] public long Tag;
    [FieldOffset(8)] public ulong Hash;
    [FieldOffset(16)] public ConnTuple Orig;
    /// <summary>The entry's deadline: when it expired (ms).</summary>
    [FieldOffset(56)] public long ExpiredAtMs;
    /// <summary>Next slot + 1 in the bucket chain; 0 ends it.</summary>
    [FieldOffset(64)] public int Next;
    [FieldOffset(72)] public TcpConn Tcp;
}

/// <summary>
/// A bounded store of tombstones, apart from the table: tombstones take no table slot, so they can
/// never make a new flow's packet be dropped when the table is full.
///
/// <para><b>Layout.</b> A ring of <c>capacity</c> slots in the order they were stored (oldest at the
/// head), and a chained hash index over the ORIGINAL tuples (<c>≥ 2 × capacity</c> buckets, the
/// table's keyed hash). A full ring evicts its head; the housekeeper also drops the head while it is
/// older than the window. Slots consumed by a rescue stay in the ring as holes until they reach
/// the head, so while holes exist a little fewer than <c>capacity</c> tombstones are live. "Stored"
/// order is the order the housekeeper retired the entries: expiry order up to the timer wheel's
/// granularity (entries reaped by one <see cref="ConnTable.Maintain"/> call come in slot order).
/// A tombstone's age counts from its entry's deadline and readers check it themselves, so a
/// slightly out-of-order ring only delays a slot's reuse; an old tombstone never matches.</para>
///
/// <para><b>Concurrency.</b> One writer, the housekeeper (<see cref="ConnTable.Maintain"/>): it alone
/// stores, links, unlinks and frees slots, so bucket heads and chain links are plain release stores.
/// Workers only read, lock-free, and take a tombstone by one CAS on its tag. Each slot's tag is a
/// version plus a state (Free, Writing, Live, Consumed) — a seqlock (Lameter, "Effective
/// synchronization on Linux/NUMA systems", 2005) whose version the housekeeper bumps, by CAS, before
/// it changes anything else in the slot (data or chain link). A reader reads the tag, then the
/// slot, then (after a full fence) the tag again: equal tags mean the copy is whole and, for a
/// chain walk, that the next link it read belonged to this chain. A changed tag makes it restart
/// (a few times) and then give up — a miss, i.e. the kernel's answer (INVALID), never a wrong
/// tombstone. Taking a tombstone is <c>CAS(tag: Live v → Consumed v)</c>; it fails if the
/// housekeeper evicted or rewrote the slot (version bumped) or another worker took it first.
/// Unlinking a node only ever skips it, so a reader standing on its predecessor still reaches the
/// rest of the chain. No epochs are needed: slots are never freed to the GC, only reused, and reuse
/// is detected by the version.</para>
/// </summary>
internal sealed class TombstoneStore
{
    private const long SlotFree = 0, SlotWriting = 1, SlotLive = 2, SlotConsumed = 3, StateMask = 3;
    private const int MaxChainSteps = 256;
    private const int MaxRestarts = 4;

    private readonly Tombstone[] _slots;
    private readonly int[] _buckets;
    private readonly int _bucketShift;
    private readonly long _windowMs;
    private int _head;
    private int _count;

    // Housekeeper-written; read by anyone (whole 64-bit values).
    private long _stored;
    private long _evicted;
    private long _expired;
    private PaddedLong _live; // also decremented by workers that take a tombstone

    public TombstoneStore(int capacity, long windowMs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _slots = new Tombstone[capacity];
        int buckets = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(64, capacity * 2));
        _buckets = new int[buckets];
        _bucketShift = 64 - System.Numerics.BitOperations.Log2((uint)buckets);
        _windowMs = windowMs;
    }

    public int Capacity => _slots.Length;

    /// <summary>Slots in the ring (live tombstones and holes), housekeeper's view.</summary>
    public int Occupied => _count;

    // Statistics: fresh, whole 64-bit reads that order nothing. The plain counters are written by the
    // housekeeper alone (++ on a long is a whole store on 64-bit targets; benign race with readers).
    public long Live => Volatile.Read(ref _live.Value);
    public long Stored => Volatile.Read(ref _stored);
    public long Evicted => Volatile.Read(ref _evicted);
    public long Expired => Volatile.Read(ref _expired);

    public long WindowMs => _windowMs;

    /// <summary>The states whose expiry leaves a tombstone (where a FIN or RST is still to come).</summary>
    public static bool Keeps(TcpState s) =>
        s is TcpState.Established or TcpState.FinWait or TcpState.CloseWait or TcpState.LastAck or TcpState.SynRecv;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bucket(ulong hash) => (int)(hash >> _bucketShift);

    // ---- housekeeper ----

    /// <summary>
    /// Stores the tombstone of an entry that expired at <paramref name="expiredAtMs"/>, evicting the
    /// oldest when the ring is full. One that is past the window already is not stored.
    /// </summary>
    public void Add(in ConnTuple orig, ulong hash, in TcpConn tcp, long expiredAtMs, long now)
    {
        if (now - expiredAtMs > _windowMs)
            return;
        if (_count == _slots.Length)
            FreeHead(ref _evicted);
        int slot = _head + _count;
        if (slot >= _slots.Length)
            slot -= _slots.Length;
        ref Tombstone s = ref _slots[slot];
        long version = (BumpVersion(ref s.Tag, SlotWriting) >> 2) + 1;
        // The CAS in BumpVersion is a full fence: no reader can see these stores without seeing the
        // new tag first, so a reader that copied the old contents fails its tag re-check.
        s.Hash = hash;
        s.Orig = orig;
        s.ExpiredAtMs = expiredAtMs;
        s.Tcp = tcp;
        int bucket = Bucket(hash);
        s.Next = _buckets[bucket];
        // Release: the slot's contents and tag are visible before the slot is reachable from its bucket
        // (seqlock write end: data before the Live tag; a reader that sees Live v sees the data).
        Volatile.Write(ref s.Tag, (version << 2) | SlotLive);
        // Release: a reader that takes the new bucket head sees the Live tag and the data above.
        Volatile.Write(ref _buckets[bucket], slot + 1);
        _count++;
        _stored++;
        Interlocked.Increment(ref _live.Value); // atomic: workers decrement it concurrently (TryTake)
    }

    /// <summary>Drops tombstones older than the window, and consumed holes, from the head; at most <paramref name="budget"/>.</summary>
    public void Trim(long now, int budget)
    {
        for (int i = 0; i < budget && _count > 0; i++)
        {
            ref Tombstone s = ref _slots[_head];
            // Benign race: a worker may consume the slot right after this read; FreeHead's CAS then
            // sees the truth and counts it right. Volatile for a fresh read of the worker-written tag.
            if ((Volatile.Read(ref s.Tag) & StateMask) == SlotLive && now - s.ExpiredAtMs <= _windowMs)
                return;
            FreeHead(ref _expired);
        }
    }

    /// <summary>Frees the head slot; if it was still live, counts it in <paramref name="counter"/>.</summary>
    private void FreeHead(ref long counter)
    {
        int slot = _head;
        ref Tombstone s = ref _slots[slot];
        long old = BumpVersion(ref s.Tag, SlotFree);
        if ((old & StateMask) == SlotLive)
        {
            counter++;
            Interlocked.Decrement(ref _live.Value); // workers decrement it too
        }
        Unlink(slot, s.Hash);
        _head = slot + 1 == _slots.Length ? 0 : slot + 1;
        _count--;
    }

    /// <summary>Sets a slot's state with a new version, by CAS against a worker taking it; returns the old tag.</summary>
    private static long BumpVersion(ref long tag, long state)
    {
        while (true)
        {
            long old = Volatile.Read(ref tag); // validated by the CAS below
            long next = (((old >> 2) + 1) << 2) | state;
            // CAS, not a store: a worker's TryTake may turn Live into Consumed at the same time, and the
            // old state says whether the tombstone was still live. Full fence (seqlock write begin):
            // the new version is visible before any store to the slot's data or link that follows.
            if (Interlocked.CompareExchange(ref tag, next, old) == old)
                return old;
        }
    }

    private void Unlink(int slot, ulong hash)
    {
        int link = slot + 1;
        ref int prev = ref _buckets[Bucket(hash)];
        int steps = 0;
        while (prev != 0 && steps++ <= _slots.Length)
        {
            if (prev == link)
            {
                // Skips the node: a reader on the predecessor reaches the rest of the chain either way.
                // Release: the slots it now leads to are visible initialised to a reader taking the link.
                Volatile.Write(ref prev, _slots[slot].Next);
                return;
            }
            prev = ref _slots[prev - 1].Next;
        }
    }

    // ---- state file (any thread) ----

    /// <summary>The ring's oldest slot, read racily: where a walk in stored order starts (a hint).</summary>
    public int HeadHint => Volatile.Read(ref _head); // benign race: a stale head only shifts the walk's order

    /// <summary>A whole copy of slot <paramref name="slot"/> if it holds a live tombstone (seqlock read, as <see cref="TryFind"/>).</summary>
    public bool TryCopyLive(int slot, out Tombstone copy)
    {
        for (int restart = 0; restart < MaxRestarts; restart++)
        {
            ref Tombstone s = ref _slots[slot];
            long t1 = Volatile.Read(ref s.Tag); // seqlock read begin (acquire)
            if ((t1 & StateMask) != SlotLive)
                break;
            copy = s;
            // Full fence: the copy completes before the tag is read again (seqlock read side).
            Interlocked.MemoryBarrier();
            if (Volatile.Read(ref s.Tag) == t1)
                return true;
        }
        copy = default;
        return false;
    }

    // ---- workers ----

    /// <summary>
    /// Finds the live tombstone whose ORIGINAL tuple is <paramref name="orig"/>, expired within the
    /// window, and returns a consistent copy with the tag that <see cref="TryTake"/> needs. Lock-free;
    /// false on a miss or when the slot kept changing under us.
    /// </summary>
    public bool TryFind(in ConnTuple orig, ulong hash, long now, out int slot, out long tag, out Tombstone copy)
    {
        for (int restart = 0; restart < MaxRestarts; restart++)
        {
            // Acquire, pairing with Add's release of the bucket head.
            int link = Volatile.Read(ref _buckets[Bucket(hash)]);
            bool changed = false;
            for (int steps = 0; link != 0 && steps < MaxChainSteps; steps++)
            {
                ref Tombstone s = ref _slots[link - 1];
                long t1 = Volatile.Read(ref s.Tag); // seqlock read begin (acquire): the data below is no older
                bool match = (t1 & StateMask) == SlotLive && s.Hash == hash && s.Orig.Equals(orig);
                Tombstone local = match ? s : default;
                int next = Volatile.Read(ref s.Next); // validated with the data by the tag re-check
                // Full fence: the reads above complete before the tag is read again (seqlock read side).
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref s.Tag) != t1) // seqlock read end: unchanged tag = whole copy, valid link
                {
                    changed = true;
                    break;
                }
                if (match)
                {
                    if (now - local.ExpiredAtMs > _windowMs)
                        break; // the newest tombstone of this tuple is too old; older ones are older
                    slot = link - 1;
                    tag = t1;
                    copy = local;
                    return true;
                }
                link = next;
            }
            if (!changed)
                break;
        }
        slot = -1;
        tag = 0;
        copy = default;
        return false;
    }

    /// <summary>Takes the tombstone <see cref="TryFind"/> returned; false if it was evicted, expired or taken meanwhile.</summary>
    public bool TryTake(int slot, long tag)
    {
        // Full fence; on success the tombstone is this caller's alone, and the housekeeper, which
        // bumps the version with a CAS of its own, will free the slot without counting it.
        if (Interlocked.CompareExchange(ref _slots[slot].Tag, (tag & ~StateMask) | SlotConsumed, tag) != tag)
            return false;
        Interlocked.Decrement(ref _live.Value); // the housekeeper increments and decrements it too
        return true;
    }
}
