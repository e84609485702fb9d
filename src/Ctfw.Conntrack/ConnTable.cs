using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Ctfw.Conntrack;

/// <summary>
/// The connection table: a fixed array of <see cref="ConnEntry"/> values plus a chained hash index
/// in which every entry is linked twice, once per direction (as the kernel's tuplehash[2]).
///
/// <para><b>Concurrency.</b> Lookups are lock-free: they walk chains with acquire reads and never
/// write. Inserting links a new entry at a bucket head with CAS (many workers at once). Updating an
/// entry takes that entry's spin lock (bit 31 of Status; the kernel's ct->lock), held for the few
/// dozen instructions of one tracker step. Unlinking is done by exactly one thread, the housekeeper
/// (<see cref="Maintain"/>): with a single remover, unlinking an inner node is a plain store because
/// inserters only ever modify bucket heads, so no Harris-style marking is needed.</para>
///
/// <para><b>Removal and reuse.</b> Any thread may <em>kill</em> an entry: it sets Dying (once, by
/// CAS), which makes the entry invisible to lookups and frees its place in <see cref="Count"/>, and
/// pushes it on the kill stack. The housekeeper unlinks it from both chains and from the timer
/// wheel, stamps it with the current epoch, and returns it to the free stack only when
/// <see cref="EpochManager"/> shows no worker can still be looking at it.</para>
///
/// <para><b>Links.</b> A chain link is <c>(index &lt;&lt; 1 | direction) + 1</c>; 0 ends a chain.
/// Stack links (<c>AuxNext</c>, and <c>TimerNext</c> for the arm stack) are <c>index + 1</c>.</para>
/// </summary>
internal sealed class ConnTable
{
    internal readonly ConnEntry[] Entries;
    /// <summary>Ages of each entry, same index (see <see cref="FlowAge"/>); outside the entry to keep it 128 bytes.</summary>
    internal readonly FlowAge[] Ages;
    private readonly int[] _buckets;
    private readonly int _bucketShift;
    private readonly TupleHasher _hasher;
    // The epoch's low 32 bits: compared by wrapping difference (a grace period is a few epochs).
    private readonly (int Index, uint Epoch)[] _retired;
    private int _retiredHead;
    private int _retiredCount;

    // Shared words written by many threads: each on its own cache line.
    private PaddedLong _freeHead;   // (tag << 32) | (index + 1): tagged against ABA
    private PaddedInt _count;
    private PaddedInt _killHead;
    private PaddedInt _armHead;
    private PaddedLong _earlyDrops;
    private PaddedLong _allocFailures;

    public readonly EpochManager Epochs;
    public readonly TimerWheel Wheel;
    public readonly int Max;

    /// <summary>Set only by tests that prove the reclamation stress test can fail.</summary>
    internal bool UnsafeReuseImmediately;

    /// <summary>Rescue on: expiring TCP entries leave a tombstone here. Set once, before any packet.</summary>
    internal TombstoneStore? Tombstones;

    /// <summary>When set, expiring TCP entries are reported here (reset on expiry). Set by the engine.</summary>
    internal ExpiryFeed? Feed;

    public ConnTable(int max, int maxThreads, long now, ulong? hashSeed = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        Max = max;
        // Slack for entries that are dead but not yet reclaimed (one grace period, a housekeeping tick
        // or two); the kernel has the slab for that. 1/32 of max holds 3 M retirements a second.
        int capacity = checked(max + Math.Max(max / 32, 1024));
        Entries = GC.AllocateArray<ConnEntry>(capacity, pinned: true);
        Ages = new FlowAge[capacity];
        int buckets = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1024, max * 2));
        _buckets = GC.AllocateArray<int>(buckets, pinned: true); // pinned: prefetch takes its address
        _bucketShift = 64 - BitOperations.Log2((uint)buckets);
        _hasher = new TupleHasher(hashSeed);
        _retired = new (int, uint)[capacity];
        Epochs = new EpochManager(maxThreads + 1);
        Wheel = new TimerWheel(Entries, now);
        for (int i = capacity - 1; i >= 0; i--)
        {
            Entries[i].TimerPrev = -1;
            Entries[i].TimerNext = -1;
            Entries[i].AuxNext = (int)(_freeHead.Value & 0xFFFF_FFFF);
            _freeHead.Value = i + 1;
        }
    }

    public int Capacity => Entries.Length;

    /// <summary>Live entries (confirmed or being created), as nf_conntrack_count.</summary>
    public int Count => Volatile.Read(ref _count.Value);

    public long EarlyDrops => Volatile.Read(ref _earlyDrops.Value);

    public long AllocFailures => Volatile.Read(ref _allocFailures.Value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Hash(in ConnTuple t) => _hasher.Hash(t);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bucket(ulong hash) => (int)(hash >> _bucketShift);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsExpired(long deadline, long now) => deadline - now <= 0;

    /// <summary>Starts loading the bucket head of <paramref name="hash"/> into the cache (a hint; no effect on results).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe void PrefetchBucket(ulong hash)
    {
        if (Sse.IsSupported)
            Sse.Prefetch0(Unsafe.AsPointer(ref _buckets[Bucket(hash)]));
    }

    /// <summary>Starts loading the first entry of the chain of <paramref name="hash"/> (both of its cache lines).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe void PrefetchChainHead(ulong hash)
    {
        if (!Sse.IsSupported)
            return;
        int link = Volatile.Read(ref _buckets[Bucket(hash)]);
        if (link == 0)
            return;
        byte* e = (byte*)Unsafe.AsPointer(ref Entries[(link - 1) >> 1]);
        Sse.Prefetch0(e);
        Sse.Prefetch0(e + 64);
    }

    /// <summary>
    /// <see cref="Lookup"/> for a batch of keys with their hashes, results in <paramref name="indexes"/>
    /// (-1 for none) and <paramref name="directions"/>. The batch is walked three times so that its
    /// cache misses overlap instead of queueing one after another: prefetch every bucket, then read
    /// every chain head and prefetch its entry, then look up. At a table larger than the caches this
    /// turns two dependent memory round trips per key into a handful per batch. Must run inside an epoch.
    /// </summary>
    public void LookupBatch(ReadOnlySpan<ConnTuple> keys, ReadOnlySpan<ulong> hashes, long now, Span<int> indexes, Span<int> directions)
    {
        int n = keys.Length;
        if (hashes.Length < n || indexes.Length < n || directions.Length < n)
            throw new ArgumentException("hashes, indexes and directions must be at least as long as keys");
        for (int i = 0; i < n; i++)
            PrefetchBucket(hashes[i]);
        for (int i = 0; i < n; i++)
            PrefetchChainHead(hashes[i]);
        for (int i = 0; i < n; i++)
        {
            indexes[i] = Lookup(keys[i], hashes[i], now, out int dir);
            directions[i] = dir;
        }
    }

    /// <summary>
    /// Finds the live entry whose ORIGINAL or REPLY tuple is <paramref name="t"/>. Dying and expired
    /// entries are invisible, as in the kernel. Must run inside an epoch.
    /// </summary>
    public int Lookup(in ConnTuple t, ulong hash, long now, out int dir)
    {
        // The inverse is needed only when a REPLY link shows up; most first links are ORIGINAL.
        int inverse = 0; // 0 not computed, 1 computed, -1 none
        ConnTuple inv = default;
        int link = Volatile.Read(ref _buckets[Bucket(hash)]);
        while (link != 0)
        {
            int idx = (link - 1) >> 1;
            int d = (link - 1) & 1;
            ref ConnEntry e = ref Entries[idx];
            // Acquire read of the next link before comparing, so a chain change cannot strand us.
            int next = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
            if (d != 0 && inverse == 0)
                inverse = t.TryInvert(out inv) ? 1 : -1;
            if ((d == 0 ? e.Orig.Equals(t) : inverse > 0 && e.Orig.Equals(inv))
                && (Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) == 0
                && !IsExpired(Volatile.Read(ref e.Deadline), now))
            {
                dir = d;
                return idx;
            }
            link = next;
        }
        dir = 0;
        return -1;
    }

    /// <summary>
    /// As <see cref="Lookup"/>, but finds an entry that has expired and is not yet reaped (not dying):
    /// the rescue path's view of "the entry the housekeeper has not retired yet". The newest one
    /// when there are several. Must run inside an epoch.
    /// </summary>
    public int LookupExpired(in ConnTuple t, ulong hash, long now, out int dir)
    {
        int inverse = 0;
        ConnTuple inv = default;
        int link = Volatile.Read(ref _buckets[Bucket(hash)]);
        while (link != 0)
        {
            int idx = (link - 1) >> 1;
            int d = (link - 1) & 1;
            ref ConnEntry e = ref Entries[idx];
            int next = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
            if (d != 0 && inverse == 0)
                inverse = t.TryInvert(out inv) ? 1 : -1;
            if ((d == 0 ? e.Orig.Equals(t) : inverse > 0 && e.Orig.Equals(inv))
                && (Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) == 0
                && IsExpired(Volatile.Read(ref e.Deadline), now))
            {
                dir = d;
                return idx;
            }
            link = next;
        }
        dir = 0;
        return -1;
    }

    /// <summary>
    /// Takes a free entry for a new flow whose ORIGINAL tuple hashes to <paramref name="hash"/>.
    /// When the table is full, early-drops unassured entries near that bucket (§3.3). Returns −1
    /// when nothing could be evicted (the kernel then drops the packet).
    /// </summary>
    public int Allocate(ulong hash, long now)
    {
        if (Interlocked.Increment(ref _count.Value) > Max && !EarlyDrop(hash, now))
        {
            Interlocked.Decrement(ref _count.Value);
            Interlocked.Increment(ref _allocFailures.Value);
            return -1;
        }
        int idx = PopFree();
        if (idx < 0)
        {
            Interlocked.Decrement(ref _count.Value);
            Interlocked.Increment(ref _allocFailures.Value);
        }
        return idx;
    }

    /// <summary>Returns an entry that was never published (its packet was INVALID or dropped).</summary>
    public void Free(int idx)
    {
        Interlocked.Decrement(ref _count.Value);
        PushFree(idx);
    }

    private int PopFree()
    {
        while (true)
        {
            long head = Volatile.Read(ref _freeHead.Value);
            int top = (int)(head & 0xFFFF_FFFF);
            if (top == 0)
                return -1;
            // May read a stale AuxNext if the top was popped and reused meanwhile: the tag makes the CAS fail then.
            int next = Volatile.Read(ref Entries[top - 1].AuxNext);
            long newHead = (((head >>> 32) + 1) << 32) | (uint)next;
            if (Interlocked.CompareExchange(ref _freeHead.Value, newHead, head) == head)
                return top - 1;
        }
    }

    private void PushFree(int idx)
    {
        while (true)
        {
            long head = Volatile.Read(ref _freeHead.Value);
            Entries[idx].AuxNext = (int)(head & 0xFFFF_FFFF);
            long newHead = (((head >>> 32) + 1) << 32) | (uint)(idx + 1);
            // Release: AuxNext is visible before the entry becomes the top.
            if (Interlocked.CompareExchange(ref _freeHead.Value, newHead, head) == head)
                return;
        }
    }

    /// <summary>
    /// Confirms a new entry unless a live entry already holds one of its tuples (another packet of
    /// the same new flow was confirmed first: the kernel's insert clash). Returns false then; the
    /// caller frees the entry. A concurrent confirm of the same tuple between the check and the
    /// link is not excluded (multi-CPU clash races are not modelled; see ARCHITECTURE.md).
    /// </summary>
    public bool TryInsert(int idx, long now)
    {
        ref ConnEntry e = ref Entries[idx];
        if (Lookup(e.Orig, Hash(e.Orig), now, out _) >= 0)
            return false;
        if (e.Orig.TryInvert(out ConnTuple reply) && Lookup(reply, Hash(reply), now, out _) >= 0)
            return false;
        Insert(idx);
        return true;
    }

    /// <summary>
    /// Publishes a fully initialised entry: queues it for the timer wheel, then links both directions.
    /// The arm push comes first so that any later kill finds it queued or armed (see Maintain).
    /// </summary>
    public void Insert(int idx)
    {
        ref ConnEntry e = ref Entries[idx];
        Interlocked.Or(ref e.Status, (uint)CtStatus.Confirmed);
        PushStack(ref _armHead.Value, ref e.TimerNext, idx);
        int origLink = (idx << 1) + 1;
        LinkAt(Bucket(Hash(e.Orig)), origLink, ref e.NextOrig);
        e.Orig.TryInvert(out ConnTuple reply);
        LinkAt(Bucket(Hash(reply)), origLink + 1, ref e.NextReply);
    }

    private void LinkAt(int bucket, int link, ref int next)
    {
        while (true)
        {
            int head = Volatile.Read(ref _buckets[bucket]);
            next = head;
            // Full fence: the entry's contents and its next link are visible before it is reachable.
            if (Interlocked.CompareExchange(ref _buckets[bucket], link, head) == head)
                return;
        }
    }

    private static void PushStack(ref int head, ref int next, int idx)
    {
        while (true)
        {
            int h = Volatile.Read(ref head);
            next = h;
            if (Interlocked.CompareExchange(ref head, idx + 1, h) == h)
                return;
        }
    }

    /// <summary>
    /// Marks a published entry dead. Exactly one caller wins; it gets true, the entry leaves
    /// <see cref="Count"/> and goes to the housekeeper for unlinking.
    /// </summary>
    public bool Kill(int idx)
    {
        ref ConnEntry e = ref Entries[idx];
        uint old = Interlocked.Or(ref e.Status, (uint)CtStatus.Dying);
        if ((old & (uint)CtStatus.Dying) != 0)
            return false;
        Interlocked.Decrement(ref _count.Value);
        PushStack(ref _killHead.Value, ref e.AuxNext, idx);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Lock(int idx)
    {
        ref uint status = ref Entries[idx].Status;
        uint s = Volatile.Read(ref status);
        if ((s & (uint)CtStatus.Locked) == 0
            && Interlocked.CompareExchange(ref status, s | (uint)CtStatus.Locked, s) == s)
            return;
        LockSlow(ref status);
    }

    private static void LockSlow(ref uint status)
    {
        // Held for one tracker step (~100 ns), so spin; never sleep on the packet path.
        var spin = default(SpinWait);
        while (true)
        {
            uint s = Volatile.Read(ref status);
            if ((s & (uint)CtStatus.Locked) == 0
                && Interlocked.CompareExchange(ref status, s | (uint)CtStatus.Locked, s) == s)
                return;
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Unlock(int idx) => Interlocked.And(ref Entries[idx].Status, ~(uint)CtStatus.Locked);

    /// <summary>
    /// Early drop (§3.3): from the new tuple's bucket, scan up to 8 buckets; in the first that has
    /// any, kill every confirmed, unassured, live entry. Expired entries met on the way are reaped.
    /// </summary>
    private bool EarlyDrop(ulong hash, long now)
    {
        int start = Bucket(hash);
        int mask = _buckets.Length - 1;
        for (int i = 0; i < 8; i++)
        {
            int drops = 0;
            int link = Volatile.Read(ref _buckets[(start + i) & mask]);
            while (link != 0)
            {
                int idx = (link - 1) >> 1;
                int d = (link - 1) & 1;
                ref ConnEntry e = ref Entries[idx];
                link = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
                // Both directions' links are candidates, as in the kernel's early_drop_list; Kill's
                // atomic OR makes sure an entry met twice is dropped once.
                uint s = Volatile.Read(ref e.Status);
                if ((s & (uint)CtStatus.Dying) != 0)
                    continue;
                if (IsExpired(Volatile.Read(ref e.Deadline), now))
                {
                    Kill(idx);
                    continue;
                }
                if ((s & (uint)(CtStatus.Assured | CtStatus.Confirmed)) == (uint)CtStatus.Confirmed && Kill(idx))
                {
                    drops++;
                    Interlocked.Increment(ref _earlyDrops.Value);
                }
            }
            if (drops > 0)
                return true;
        }
        return false;
    }

    /// <summary>
    /// Housekeeping, by one thread at a time: arm new entries, fire due timers (at most
    /// <paramref name="budget"/> entries examined), unlink killed entries, and reuse entries no
    /// worker can see any more. Returns the number of entries expired.
    /// </summary>
    public int Maintain(long now, int budget = int.MaxValue)
    {
        // Order matters: take the kill stack before the arm stack. Every killed entry was pushed to
        // the arm stack before it became reachable, hence before its kill, so it is armed below.
        int kills = Interlocked.Exchange(ref _killHead.Value, 0);
        int arms = Interlocked.Exchange(ref _armHead.Value, 0);
        while (arms != 0)
        {
            int idx = arms - 1;
            arms = Entries[idx].TimerNext;
            Entries[idx].TimerNext = -1;
            Wheel.Arm(idx);
        }

        Wheel.Advance(now);
        int expired = 0;
        TombstoneStore? tombstones = Tombstones;
        ExpiryFeed? feed = Volatile.Read(ref Feed); // may be switched on or off between calls
        for (int work = 0; work < budget; work++)
        {
            int idx = Wheel.PopDue();
            if (idx < 0)
                break;
            ref ConnEntry e = ref Entries[idx];
            if ((Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) != 0)
                continue; // on the kill stack; unlinked from there
            // The lock orders us against a worker refreshing the deadline; the atomic OR decides
            // against a concurrent Kill (which takes no lock): exactly one of us retires the entry.
            Lock(idx);
            long deadline = Volatile.Read(ref e.Deadline);
            bool expiredNow = IsExpired(deadline, now);
            // The tombstone is stored before Dying is set, under the lock: a rescuing worker that
            // finds the expired entry dying (or gone) is then sure to find its tombstone.
            if (expiredNow && tombstones != null && e.Orig.Protocol == Packets.IpProto.Tcp && TombstoneStore.Keeps(e.Tcp.State))
                tombstones.Add(e.Orig, Hash(e.Orig), e.Tcp, deadline, now);
            bool won = expiredNow && (Interlocked.Or(ref e.Status, (uint)CtStatus.Dying) & (uint)CtStatus.Dying) == 0;
            if (won && feed != null && e.Orig.Protocol == Packets.IpProto.Tcp && ExpiryFeed.Reports(e.Tcp.State))
            {
                feed.Add(new ExpiredTcpFlow(e.Orig, e.Tcp.State, e.Tcp.Seen0.TdEnd, e.Tcp.Seen1.TdEnd,
                    e.Tcp.Seen0.TdMaxAck, e.Tcp.Seen1.TdMaxAck, deadline));
            }
            Unlock(idx);
            if (!expiredNow)
            {
                Wheel.Arm(idx); // refreshed since it was armed: lazy re-arm
                continue;
            }
            if (!won)
                continue; // killed meanwhile: the kill stack unlinks and retires it
            Interlocked.Decrement(ref _count.Value);
            Unlink(idx);
            Retire(idx);
            expired++;
        }

        while (kills != 0)
        {
            int idx = kills - 1;
            kills = Entries[idx].AuxNext;
            Wheel.Remove(idx);
            Unlink(idx);
            Retire(idx);
        }

        tombstones?.Trim(now, budget);
        Reclaim();
        return expired;
    }

    private void Unlink(int idx)
    {
        ref ConnEntry e = ref Entries[idx];
        int origLink = (idx << 1) + 1;
        UnlinkAt(Bucket(Hash(e.Orig)), origLink);
        e.Orig.TryInvert(out ConnTuple reply);
        UnlinkAt(Bucket(Hash(reply)), origLink + 1);
    }

    private ref int NextOf(int link)
    {
        ref ConnEntry e = ref Entries[(link - 1) >> 1];
        return ref ((link - 1) & 1) == 0 ? ref e.NextOrig : ref e.NextReply;
    }

    private void UnlinkAt(int bucket, int link)
    {
        int next = Volatile.Read(ref NextOf(link));
        while (true)
        {
            int head = Volatile.Read(ref _buckets[bucket]);
            if (head == link)
            {
                if (Interlocked.CompareExchange(ref _buckets[bucket], next, head) == head)
                    return;
                continue; // a worker inserted at the head meanwhile; our link is now inner
            }
            // Inner node: only this thread changes inner links, so a plain release store suffices.
            int prev = head;
            while (prev != 0)
            {
                ref int prevNext = ref NextOf(prev);
                int p = Volatile.Read(ref prevNext);
                if (p == link)
                {
                    Volatile.Write(ref prevNext, next);
                    return;
                }
                prev = p;
            }
            return; // not linked (cannot happen for a published entry)
        }
    }

    private void Retire(int idx)
    {
        if (UnsafeReuseImmediately)
        {
            PushFree(idx);
            return;
        }
        int slot = (_retiredHead + _retiredCount) % _retired.Length;
        _retired[slot] = (idx, unchecked((uint)Epochs.Current));
        _retiredCount++;
    }

    private void Reclaim()
    {
        if (_retiredCount == 0)
            return;
        Epochs.Advance();
        // SafeBelow is "idle" (long.MaxValue) when no reader is inside an epoch; every stamp is below
        // the epoch just advanced to, so that is the bound then (and the truncation stays meaningful).
        uint safe = unchecked((uint)Math.Min(Epochs.SafeBelow(), Epochs.Current));
        while (_retiredCount > 0)
        {
            (int idx, uint epoch) = _retired[_retiredHead];
            if (unchecked((int)(epoch - safe)) >= 0)
                break; // FIFO: later ones are stamped no earlier
            ref ConnEntry e = ref Entries[idx];
            e.Status = 0;
            e.NextOrig = 0;
            e.NextReply = 0;
            PushFree(idx);
            _retiredHead = (_retiredHead + 1) % _retired.Length;
            _retiredCount--;
        }
    }

    /// <summary>Entries waiting for a grace period before reuse.</summary>
    public int RetiredCount => _retiredCount;

    /// <summary>Calls <paramref name="visit"/> for each live entry (not for the packet path).</summary>
    public void ForEachLive(long now, Action<int> visit)
    {
        for (int b = 0; b < _buckets.Length; b++)
        {
            int link = Volatile.Read(ref _buckets[b]);
            while (link != 0)
            {
                int idx = (link - 1) >> 1;
                int d = (link - 1) & 1;
                ref ConnEntry e = ref Entries[idx];
                link = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
                if (d == 0 && (Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) == 0 && !IsExpired(e.Deadline, now))
                    visit(idx);
            }
        }
    }
}

[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [FieldOffset(64)] public long Value;
}

[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct PaddedInt
{
    [FieldOffset(64)] public int Value;
}
