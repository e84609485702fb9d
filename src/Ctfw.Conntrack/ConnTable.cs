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
    /// <summary>
    /// Packets and bytes of each entry, same index (see <see cref="FlowAcct"/>); null until
    /// nf_conntrack_acct is first on (<see cref="EnableAccounting"/>), then kept for good.
    /// </summary>
    internal FlowAcct[]? Acct;
    /// <summary>
    /// Helper state of each entry, same index (see <see cref="HelperSlot"/>); null until a ruleset
    /// assigns helpers (<see cref="ConntrackEngine.EnableHelpers"/>), then kept for good.
    /// </summary>
    internal HelperSlot[]? Helpers;
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
    private PaddedLong _fullDrops;
    private PaddedLong _slotShortages;
    private PaddedLong _insertFailed;
    private PaddedLong _reclaimsOnDemand;
    private PaddedLong _gcEarlyDrops;
    // 1 from a table-full drop until the housekeeper's next pass: the kernel's conntrack_gc_work.early_drop.
    private PaddedInt _gcEarlyDropMode;
    // Where the next early-drop pass starts (the kernel's gc next_bucket). Housekeeper only, under the remover flag.
    private int _gcCursor;
    // 1 while one thread removes: unlinks, works the timer wheel and the retired ring, reclaims. The
    // housekeeper waits for it; an allocating worker only tries (it never waits on the packet path).
    private PaddedInt _remover;

    public readonly EpochManager Epochs;
    public readonly TimerWheel Wheel;
    public readonly int Max;

    /// <summary>Set only by tests that prove the reclamation stress test can fail.</summary>
    internal bool UnsafeReuseImmediately;

    /// <summary>Rescue on: expiring TCP entries leave a tombstone here. Set once, before any packet.</summary>
    internal TombstoneStore? Tombstones;

    /// <summary>When set, expiring TCP entries are reported here (reset on expiry). Set by the engine.</summary>
    internal ExpiryFeed? Feed;

    /// <summary>Conntrack events (DESTROY on kills and expiries). Set once by the engine, before any packet.</summary>
    internal ConntrackEvents? Events;

    public ConnTable(int max, int maxThreads, long now, ulong? hashSeed = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        Max = max;
        // Spare entries for those killed but not yet reusable (the kernel has the slab for that). A
        // killed entry is reused once every worker has left the batch it was in: under a flood at
        // table max each new flow kills one, so the spares must cover the flows of the longest batch
        // a worker can be stuck in, preempted on a busy machine. 1/32 of max, at least 4 096: 40 ms
        // of a 100 kpps flood (with 1 024, two queues on 2 vCPUs refused 2 % of a flood for want of
        // an entry). 4 096 × 128 B is 512 KiB; at the default max (262 144) 1/32 is more anyway.
        int capacity = checked(max + Math.Max(max / 32, 4096));
        Entries = GC.AllocateArray<ConnEntry>(capacity, pinned: true);
        Ages = GC.AllocateArray<FlowAge>(capacity, pinned: true); // pinned: PrefetchSide takes its address
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

    /// <summary>
    /// Allocates <see cref="Acct"/> if it is not there yet: at start with nf_conntrack_acct=1, or
    /// when a settings reload turns it on. Never on the packet path (32 B per slot, zeroed). Every
    /// slot starts at zero, so entries already live count from here on.
    /// </summary>
    internal void EnableAccounting()
    {
        if (Volatile.Read(ref Acct) != null)
            return;
        FlowAcct[] acct = GC.AllocateArray<FlowAcct>(Capacity, pinned: true); // pinned: the batch pass prefetches it
        // Full fence (a release at least): the zeroed array is visible before its reference. Once
        // set it is never replaced or cleared, since workers may hold it; a second caller keeps the first's.
        Interlocked.CompareExchange(ref Acct, acct, null);
    }

    /// <summary>Live entries (confirmed or being created), as nf_conntrack_count.</summary>
    // Statistics read from any thread: Volatile gives a fresh, whole (also on 32-bit) value and orders
    // nothing; the count may be a packet behind the workers' Interlocked updates (benign).
    public int Count => Volatile.Read(ref _count.Value);

    public long EarlyDrops => Volatile.Read(ref _earlyDrops.Value);

    public long AllocFailures => Volatile.Read(ref _allocFailures.Value);

    /// <summary>New flows refused because the table was full and early drop found nothing to evict
    /// near their bucket (the kernel's "table full, dropping packet"; conntrack -S <c>drop</c>).</summary>
    public long FullDrops => Volatile.Read(ref _fullDrops.Value);

    /// <summary>New flows refused with a place free in <see cref="Count"/> but no entry to hold them:
    /// every spare entry was killed too recently to reuse. Part of <see cref="AllocFailures"/>.</summary>
    public long SlotShortages => Volatile.Read(ref _slotShortages.Value);

    /// <summary>Confirms refused because a live entry already held the tuple (insert clash; the
    /// packet is then dropped for TCP/ICMP, or joins the entry for UDP and the rest).</summary>
    public long InsertFailed => Volatile.Read(ref _insertFailed.Value);

    /// <summary>Entries killed by the housekeeper's early-drop pass (<see cref="GcEarlyDrop"/>); not in <see cref="EarlyDrops"/>, as in the kernel.</summary>
    public long GcEarlyDrops => Volatile.Read(ref _gcEarlyDrops.Value);

    /// <summary>Times an allocating worker unlinked and reclaimed killed entries itself.</summary>
    public long ReclaimsOnDemand => Volatile.Read(ref _reclaimsOnDemand.Value);

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
        // Benign race: only the address is used, as a hint; a stale head costs a useless prefetch.
        int link = Volatile.Read(ref _buckets[Bucket(hash)]);
        if (link == 0)
            return;
        int idx = (link - 1) >> 1;
        byte* e = (byte*)Unsafe.AsPointer(ref Entries[idx]);
        Sse.Prefetch0(e);
        Sse.Prefetch0(e + 64);
        // The accounting slot the packet will add to, if the head is its entry (the common case).
        // Benign race: a plain read of a reference set once (EnableAccounting); null skips a hint.
        FlowAcct[]? acct = Acct;
        if (acct != null)
            Sse.Prefetch0(Unsafe.AsPointer(ref acct[idx]));
    }

    /// <summary>
    /// Prefetches the side data of a freshly allocated entry (its ages and, when counted, accounting slots), which
    /// the new-flow path writes after it has filled the entry: their misses overlap the entry's own
    /// instead of following it (a recycled index under a flood is a cold line in each array).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe void PrefetchSide(int idx)
    {
        if (!Sse.IsSupported)
            return;
        FlowAcct[]? acct = Acct; // benign race, as in PrefetchChainHead
        if (acct != null)
            Sse.Prefetch0(Unsafe.AsPointer(ref acct[idx]));
        Sse.Prefetch0(Unsafe.AsPointer(ref Ages[idx]));
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
        // Acquire, pairing with LinkAt's CAS: an entry whose link we see has its tuple, deadline and
        // next link visible. A plain read could let the reads of the entry run ahead of it and see a
        // recycled entry's old tuple half rewritten.
        int link = Volatile.Read(ref _buckets[Bucket(hash)]);
        while (link != 0)
        {
            int idx = (link - 1) >> 1;
            int d = (link - 1) & 1;
            ref ConnEntry e = ref Entries[idx];
            // Acquire read of the next link before comparing, so a chain change cannot strand us:
            // pairs with LinkAt's CAS and UnlinkAt's release store, so the node it names is visible
            // initialised; an unlink never changes the unlinked node's own link, and the epoch keeps
            // the node from being recycled while we stand on it.
            int next = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
            if (d != 0 && inverse == 0)
                inverse = t.TryInvert(out inv) ? 1 : -1;
            // Status and Deadline change under us (Kill's OR takes no lock; trackers refresh the
            // deadline): each is one fresh, whole read. Benign race: the entry may die or be refreshed
            // just after; Track re-checks both under the entry lock.
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
        // Same reads as Lookup, for the same reasons; ReviveExpired re-checks under the entry lock.
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
    /// <remarks>
    /// An early drop frees a place in <see cref="Count"/> at once, but the killed entry's memory
    /// can be reused only after a grace period. The spare entries (capacity beyond
    /// <see cref="Max"/>) bridge that; when they run out — a flood at table max kills one entry per
    /// packet — the allocating worker unlinks and reclaims the killed entries itself
    /// (<see cref="TryReclaimNow"/>) instead of refusing flows until the next housekeeping tick.
    /// Entries killed before the worker's current batch are reusable then; those killed during it
    /// are not (the worker may still hold their indexes), so the spares must cover one batch.
    /// </remarks>
    public int Allocate(ulong hash, long now, EventRing? events = null, WorkerStats? stats = null)
    {
        if (!Reserve(hash, now, events, stats))
        {
            if (stats != null)
                stats.Drop++; // the owning worker's own counter
            Interlocked.Increment(ref _fullDrops.Value); // statistics; atomic so no concurrent increment is lost
            Interlocked.Increment(ref _allocFailures.Value);
            return -1;
        }
        int idx = PopFree();
        if (idx < 0 && TryReclaimNow())
            idx = PopFree();
        if (idx >= 0 && Helpers is { } helpers) // benign race: set once off this path, never cleared
            ResetHelper(ref helpers[idx]);
        if (idx < 0)
        {
            if (stats != null)
                stats.Drop++;
            Interlocked.Decrement(ref _count.Value);
            Interlocked.Increment(ref _slotShortages.Value);
            Interlocked.Increment(ref _allocFailures.Value);
        }
        return idx;
    }

    /// <summary>A reused slot's helper state starts empty, under a new generation (expectations of the old occupant die).</summary>
    private static void ResetHelper(ref HelperSlot h)
    {
        uint generation = h.Generation + 1;
        h = default;
        // Release: an expectation walk that reads the new generation also reads the cleared state.
        Volatile.Write(ref h.Generation, generation);
    }

    /// <summary>
    /// Takes a place in <see cref="Count"/>, early-dropping when the table is full; false when nothing
    /// near <paramref name="hash"/> could be evicted. The decrement in <see cref="Free"/> or on a failed
    /// allocation gives the place back.
    /// </summary>
    /// <remarks>
    /// The kernel increments first and checks after (atomic_inc_return), so its count overshoots
    /// nf_conntrack_max by up to one per CPU for a moment. Here the place is taken by CAS only below
    /// <see cref="Max"/>: no reader (`ctfw stats`, the state file) ever sees more entries than the
    /// maximum, and two workers still never both take the last place. Early drop frees places for
    /// everyone, so another worker may take them first; a few rounds settle that under any contention
    /// a flood can produce, and a worker that loses them all refuses the flow as table-full.
    /// </remarks>
    private bool Reserve(ulong hash, long now, EventRing? events, WorkerStats? stats)
    {
        const int EarlyDropRounds = 3;
        int rounds = 0;
        while (true)
        {
            int count = Volatile.Read(ref _count.Value);
            if (count < Max)
            {
                // Full fence; fails only when another worker changed the count meanwhile: look again.
                if (Interlocked.CompareExchange(ref _count.Value, count + 1, count) == count)
                    return true;
                continue;
            }
            if (rounds++ == EarlyDropRounds)
                return RefuseFull();
            // Nothing to evict may still have freed places: expired entries met on the way are reaped.
            if (!EarlyDrop(hash, now, events, stats) && Volatile.Read(ref _count.Value) >= Max)
                return RefuseFull();
        }
    }

    /// <summary>
    /// A new flow is refused for want of room: the housekeeper's next pass early-drops (§3.3 step 3),
    /// as __nf_conntrack_alloc sets conntrack_gc_work.early_drop. Returns false for the caller.
    /// </summary>
    private bool RefuseFull()
    {
        // Read first: under a flood every refused packet gets here, and a store each time would bounce
        // the line between workers. Release store of a flag that orders nothing else; a set racing
        // the housekeeper's clear only shifts the pass by one tick (the kernel's flag is a plain bool).
        if (Volatile.Read(ref _gcEarlyDropMode.Value) == 0)
            Volatile.Write(ref _gcEarlyDropMode.Value, 1);
        return false;
    }

    /// <summary>
    /// Unlinks the killed entries and reuses those past their grace period, on the calling worker,
    /// if no other thread is removing at the moment (never waits). True when it ran.
    /// </summary>
    private bool TryReclaimNow()
    {
        // Taken by the housekeeper (or another worker), it is refilling the free stack itself: give up.
        if (!TryAcquireRemover())
            return false;
        try
        {
            RemoveKilled();
            Reclaim();
        }
        finally
        {
            ReleaseRemover();
        }
        Interlocked.Increment(ref _reclaimsOnDemand.Value);
        return true;
    }

    /// <summary>
    /// A worker's end of batch: when entries were killed since the last removal (an early drop per
    /// new flow under a flood), unlinks and reclaims them now rather than on the housekeeping tick,
    /// so the spare entries are refilled once per batch. One atomic read when nothing was killed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void ReclaimAfterBatch()
    {
        // Acquire read of the kill stack's head; a stale 0 only defers the work to the next batch or tick.
        if (Volatile.Read(ref _killHead.Value) != 0)
            TryReclaimNow();
    }

    // CAS: exactly one remover at a time (the single-remover rule of the chains, the wheel and the
    // retired ring); a full fence, so the previous remover's unlinks and pushes are visible.
    private bool TryAcquireRemover() => Interlocked.CompareExchange(ref _remover.Value, 1, 0) == 0;

    private void AcquireRemover()
    {
        // The housekeeper's side: a worker holds this for one short pass (its kills and a reclaim).
        var spin = default(SpinWait);
        while (!TryAcquireRemover())
            spin.SpinOnce();
    }

    // Release: this remover's unlinks and pushes precede the next remover's acquire.
    private void ReleaseRemover() => Volatile.Write(ref _remover.Value, 0);

    /// <summary>
    /// Arms the newly inserted entries and unlinks and retires the killed ones. Order matters: take
    /// the kill stack before the arm stack. Every killed entry was pushed to the arm stack before it
    /// became reachable, hence before its kill, so it is armed here or was armed by an earlier pass
    /// (reversed, an entry inserted and killed between the two takes would be retired and reused
    /// while still on the next arm stack: the wheel would then arm a recycled entry). Each Exchange
    /// is a full fence, so the two are not reordered, and an acquire: the pushers' links are visible.
    /// Holder of the remover flag only.
    /// </summary>
    private void RemoveKilled()
    {
        int kills = Interlocked.Exchange(ref _killHead.Value, 0);
        int arms = Interlocked.Exchange(ref _armHead.Value, 0);
        while (arms != 0)
        {
            int idx = arms - 1;
            arms = Entries[idx].TimerNext;
            Entries[idx].TimerNext = -1;
            Wheel.Arm(idx);
        }
        while (kills != 0)
        {
            int idx = kills - 1;
            kills = Entries[idx].AuxNext;
            Wheel.Remove(idx);
            Unlink(idx);
            Retire(idx);
        }
    }

    /// <summary>Returns an entry that was never published (its packet was INVALID or dropped).</summary>
    public void Free(int idx)
    {
        Interlocked.Decrement(ref _count.Value); // gives back Allocate's reservation
        PushFree(idx);
    }

    private int PopFree()
    {
        while (true)
        {
            // Treiber stack (Treiber, IBM RJ 5118, 1986) with a 32-bit version tag in the head word,
            // bumped by every push and pop. Acquire, pairing with PushFree's CAS: the top's AuxNext is visible.
            long head = Volatile.Read(ref _freeHead.Value);
            int top = (int)(head & 0xFFFF_FFFF);
            if (top == 0)
                return -1;
            // Deliberate benign race: may read a stale AuxNext if the top was popped and reused
            // meanwhile (the epoch does not cover free entries): the tag makes the CAS fail then.
            int next = Volatile.Read(ref Entries[top - 1].AuxNext);
            long newHead = (((head >>> 32) + 1) << 32) | (uint)next;
            // The tag, not the index, decides: without it a pop-push of the same top between our read
            // and this CAS (ABA) would install a stale next and hand one entry to two workers.
            if (Interlocked.CompareExchange(ref _freeHead.Value, newHead, head) == head)
                return top - 1;
        }
    }

    private void PushFree(int idx)
    {
        while (true)
        {
            long head = Volatile.Read(ref _freeHead.Value); // validated by the CAS below
            Entries[idx].AuxNext = (int)(head & 0xFFFF_FFFF);
            long newHead = (((head >>> 32) + 1) << 32) | (uint)(idx + 1);
            // Release (the CAS is a full fence): AuxNext and the entry's reset fields (Reclaim) are
            // visible before the entry becomes the top; reordered, a popper could follow a stale link.
            if (Interlocked.CompareExchange(ref _freeHead.Value, newHead, head) == head)
                return;
        }
    }

    /// <summary>
    /// Confirms a new entry unless a live entry already holds one of its tuples (another packet of
    /// the same new flow was confirmed first: the kernel's insert clash). Returns false then; the
    /// caller frees the entry. A concurrent confirm of the same tuple between the check and the
    /// link is not excluded; see the note below.
    /// </summary>
    /// <remarks>
    /// <para><b>The concurrent-confirm race.</b> Two packets of one new flow (a SYN and its
    /// retransmit, a DNS client's A and AAAA queries, two hosts opening to each other at once, whose
    /// tuples are each other's REPLY) each get their own unconfirmed entry, because neither is in the
    /// table when it is classified. Whichever confirms second meets a clash. When the two confirms
    /// run on two workers at the same moment, both checks below can pass before either entry is
    /// linked, and both are inserted: the table then holds two live entries for one tuple.</para>
    /// <para><b>Kernel.</b> <c>__nf_conntrack_confirm</c> (kernel-conntrack.md §2 step 10) takes both
    /// bucket locks (<c>nf_conntrack_double_lock</c>), looks for the ORIGINAL and REPLY tuples and
    /// inserts under those locks, so the check and the insert are one step and the second CPU always
    /// sees the first entry. It then drops the packet (<c>insert_failed</c>), or, for protocols that
    /// allow clash resolution (UDP, GRE, generic), <c>nf_ct_resolve_clash</c> attaches the packet to
    /// the entry already there. Per §14 item 9 these multi-CPU races are outside what the spec models.</para>
    /// <para><b>ctfw.</b> Confirms that do not overlap (same worker, or one after the other) behave as
    /// the kernel: the second finds the first and <see cref="ConntrackWorker.Confirm"/> drops the
    /// packet for TCP and ICMP, or accepts it onto the existing entry for UDP, GRE and generic;
    /// covered by <c>ChecksumAndClashTests.Confirm_TcpClash_SecondPacketDropped_UdpClash_Accepted</c>
    /// and <c>TableTests.Confirm_SecondPendingEntryForSameTuple_DoesNotInsertDuplicate</c>. The
    /// overlapping case is accepted rather than locked against: the window is two lookups wide and
    /// needs the flow's packets on two queues at once, which <c>--queue-balance</c> does not do (it
    /// hashes both directions of an address pair to one queue); <c>--queue-cpu-fanout</c> can. The
    /// outcome is memory-safe: each entry has its own links, <see cref="Unlink"/> removes a link by
    /// value, and the count includes both. It is a behavioural difference only: lookups find the
    /// first match in each chain, so the two directions may update different entries until the
    /// unused one times out (30 s UDP, 120 s SYN_SENT) or is early-dropped, and the second packet is
    /// accepted where the kernel would have dropped it (TCP/ICMP). No test covers the overlapping
    /// case; closing it would need the kernel's per-bucket lock around check and link.</para>
    /// </remarks>
    public bool TryInsert(int idx, long now)
    {
        ref ConnEntry e = ref Entries[idx];
        if (Lookup(e.Orig, Hash(e.Orig), now, out _) >= 0
            || (e.Orig.TryInvert(out ConnTuple reply) && Lookup(reply, Hash(reply), now, out _) >= 0))
        {
            Interlocked.Increment(ref _insertFailed.Value); // statistic
            return false;
        }
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
        // The entry is not reachable yet, so this needs no atomicity (a plain OR would do; kept as the
        // one way Status is written after creation). Published with everything else by LinkAt's CAS.
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
            int head = Volatile.Read(ref _buckets[bucket]); // validated by the CAS below
            next = head;
            // Lock-free push at the head (the kernel's hlist_nulls_add_head_rcu / rcu_assign_pointer).
            // Full fence: the entry's contents and its next link are visible before it is reachable;
            // reordered, a lookup could follow the new link into a half-written tuple or a stale next.
            if (Interlocked.CompareExchange(ref _buckets[bucket], link, head) == head)
                return;
        }
    }

    private static void PushStack(ref int head, ref int next, int idx)
    {
        while (true)
        {
            int h = Volatile.Read(ref head); // validated by the CAS below
            next = h;
            // Treiber push. Full fence: the link (AuxNext or TimerNext) is written before the index is
            // on the stack. No ABA tag needed: the only consumer takes the whole stack by Exchange
            // (Maintain) and never pops one node, so no CAS here can succeed on a stale head.
            if (Interlocked.CompareExchange(ref head, idx + 1, h) == h)
                return;
        }
    }

    /// <summary>
    /// Marks a published entry dead. Exactly one caller wins; it gets true, the entry leaves
    /// <see cref="Count"/> and goes to the housekeeper for unlinking. The winner reports the DESTROY
    /// event into <paramref name="events"/> (its producer ring) while someone listens.
    /// </summary>
    public bool Kill(int idx, EventRing? events = null, long now = 0, bool userspace = false, uint hideStatus = 0)
    {
        ref ConnEntry e = ref Entries[idx];
        // Atomic OR: exactly one of any concurrent killers (RST, reopen, early drop, flush, and
        // Maintain's own OR on expiry) sees Dying clear and wins; the others leave the entry alone.
        // A plain read-modify-write could let two win (double decrement, double push) or erase the
        // lock bit. Full fence: lookups see Dying before the entry is on the kill stack.
        uint old = Interlocked.Or(ref e.Status, (uint)CtStatus.Dying);
        if ((old & (uint)CtStatus.Dying) != 0)
            return false;
        // Before the push: until the kill stack is taken and a grace period passes, the entry is intact.
        if (events != null && Events is { Active: true } hub)
            hub.Emit(events, this, idx, ConntrackEventKind.Destroy, now, userspace, hideStatus);
        Interlocked.Decrement(ref _count.Value); // the place is free at once, as nf_conntrack_count
        PushStack(ref _killHead.Value, ref e.AuxNext, idx);
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Lock(int idx)
    {
        ref uint status = ref Entries[idx].Status;
        // Test-and-test-and-set spin lock in the Status word. The CAS is a full fence (acquire): the
        // previous holder's writes, released by its Unlock, are visible to us. It swaps the whole word,
        // so bits set concurrently by lock-free writers (Dying) are kept, not overwritten.
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
            // Volatile: a fresh read each turn (a hoisted plain read could spin forever); CAS as in Lock.
            uint s = Volatile.Read(ref status);
            if ((s & (uint)CtStatus.Locked) == 0
                && Interlocked.CompareExchange(ref status, s | (uint)CtStatus.Locked, s) == s)
                return;
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    // Atomic AND, not a store of a saved word: lock-free writers (Kill's Dying) may have set bits while
    // we held the lock, and a plain store would erase them. Full fence (release): the holder's writes
    // are visible before the next Lock's CAS sees the bit clear.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Unlock(int idx) => Interlocked.And(ref Entries[idx].Status, ~(uint)CtStatus.Locked);

    /// <summary>
    /// Early drop (§3.3): from the new tuple's bucket, scan up to 8 buckets; in the first that has
    /// any, kill every confirmed, unassured, live entry. Expired entries met on the way are reaped.
    /// </summary>
    private bool EarlyDrop(ulong hash, long now, EventRing? events, WorkerStats? stats)
    {
        int start = Bucket(hash);
        int mask = _buckets.Length - 1;
        for (int i = 0; i < 8; i++)
        {
            int drops = 0;
            // Chain walk, Status and Deadline reads as in Lookup; Kill's atomic OR decides every kill.
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
                    Kill(idx, events, now);
                    continue;
                }
                if ((s & (uint)(CtStatus.Assured | CtStatus.Confirmed)) == (uint)CtStatus.Confirmed && Kill(idx, events, now))
                {
                    drops++;
                    if (stats != null)
                        stats.EarlyDrop++;
                    Interlocked.Increment(ref _earlyDrops.Value); // statistic; several workers may early-drop at once
                }
            }
            if (drops > 0)
                return true;
        }
        return false;
    }

    /// <summary>Buckets the early-drop pass scans per hold of the remover flag (as <see cref="ExpiryChunk"/>).</summary>
    private const int GcEarlyDropBucketChunk = 4096;

    /// <summary>
    /// Most entries one early-drop pass kills: the kernel's gc_worker stops a run once it has
    /// reaped or killed more than GC_SCAN_EXPIRED_MAX (64000 / HZ; 64 at HZ = 1000) and then leaves
    /// early-drop mode.
    /// </summary>
    internal const int GcEarlyDropMax = 65;

    /// <summary>
    /// The kernel GC's early-drop mode (§3.3 step 3; gc_worker with gc_work->early_drop): after a new
    /// flow was refused for a full table, scan the buckets from where the last pass stopped and kill
    /// every confirmed, live, not offloaded entry that <see cref="CanGcEarlyDrop"/> allows, while the
    /// table holds at least 95 % of nf_conntrack_max (integer: max / 100 * 95, so never below 100).
    /// At most <see cref="GcEarlyDropMax"/> kills and one sweep of the table per pass. Housekeeper only.
    /// </summary>
    internal int GcEarlyDrop(long now)
    {
        int threshold = Max / 100 * 95;
        if (threshold == 0)
            return 0;
        int mask = _buckets.Length - 1;
        int kills = 0;
        int scanned = 0;
        while (scanned < _buckets.Length && kills < GcEarlyDropMax && Volatile.Read(ref _count.Value) >= threshold)
        {
            // Under the remover flag no chain is unlinked and no entry recycled while we walk.
            AcquireRemover();
            try
            {
                EventRing? ring = Events is { Active: true } hub ? hub.Housekeeper : null; // the remover's ring
                for (int n = 0; n < GcEarlyDropBucketChunk && scanned < _buckets.Length; n++, scanned++)
                {
                    int bucket = _gcCursor;
                    _gcCursor = (bucket + 1) & mask;
                    // Chain walk with acquire reads, as in Lookup (workers insert at heads meanwhile).
                    int link = Volatile.Read(ref _buckets[bucket]);
                    while (link != 0 && kills < GcEarlyDropMax && Volatile.Read(ref _count.Value) >= threshold)
                    {
                        int idx = (link - 1) >> 1;
                        int d = (link - 1) & 1;
                        ref ConnEntry e = ref Entries[idx];
                        link = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
                        // An entry is met once per direction; the ORIGINAL link alone visits each once.
                        if (d != 0)
                            continue;
                        uint st = Volatile.Read(ref e.Status);
                        if ((st & (uint)(CtStatus.Dying | CtStatus.Offload)) != 0 || (st & (uint)CtStatus.Confirmed) == 0
                            || IsExpired(Volatile.Read(ref e.Deadline), now))
                            continue; // expired ones are the timer wheel's
                        if (CanGcEarlyDrop(ref e, st) && Kill(idx, ring, now))
                        {
                            kills++;
                            Interlocked.Increment(ref _gcEarlyDrops.Value); // statistic, read from other threads
                        }
                    }
                }
            }
            finally
            {
                ReleaseRemover();
            }
        }
        return kills;
    }

    /// <summary>
    /// gc_worker_can_early_drop: an unassured entry, or an assured one whose protocol says it may go
    /// (tcp_can_early_drop: the closing states; sctp_can_early_drop: SHUTDOWN_SENT, SHUTDOWN_RECD,
    /// SHUTDOWN_ACK_SENT). Benign race: the state byte is read without the entry lock, as the
    /// kernel reads it; a packet moving it on just after makes the kill one state late or early.
    /// </summary>
    internal static bool CanGcEarlyDrop(ref ConnEntry e, uint status)
    {
        if ((status & (uint)CtStatus.Assured) == 0)
            return true;
        return e.Orig.Protocol switch
        {
            Packets.IpProto.Tcp => TcpTracker.CanEarlyDrop(e.Tcp.State),
            Packets.IpProto.Sctp => SctpTracker.CanEarlyDrop(e.Sctp.State),
            _ => false,
        };
    }

    /// <summary>Entries the housekeeper expires per hold of the remover flag: a worker that needs
    /// entries back waits at most this many expiries' time before it can reclaim them itself.</summary>
    private const int ExpiryChunk = 256;

    /// <summary>
    /// Housekeeping, by one thread at a time: arm new entries, unlink killed entries, fire due timers
    /// (at most <paramref name="budget"/> entries examined), and reuse entries no worker can see any
    /// more. Returns the number of entries expired. Shares the remover role with allocating workers
    /// (<see cref="TryReclaimNow"/>): it takes the flag in short holds, so they rarely find it taken.
    /// </summary>
    public int Maintain(long now, int budget = int.MaxValue)
    {
        AcquireRemover();
        try
        {
            RemoveKilled();
            Wheel.Advance(now);
        }
        finally
        {
            ReleaseRemover();
        }

        int expired = 0;
        TombstoneStore? tombstones = Tombstones;
        // May be switched on or off between calls. Acquire, pairing with the release in
        // ConntrackEngine.CollectExpired: a feed we see is fully constructed. Read once per call.
        ExpiryFeed? feed = Volatile.Read(ref Feed);
        bool more = true;
        for (int work = 0; more && work < budget;)
        {
            AcquireRemover();
            try
            {
                for (int chunk = 0; chunk < ExpiryChunk && work < budget; chunk++, work++)
                {
                    int idx = Wheel.PopDue();
                    if (idx < 0)
                    {
                        more = false;
                        break;
                    }
                    if (Expire(idx, now, tombstones, feed))
                        expired++;
                }
            }
            finally
            {
                ReleaseRemover();
            }
        }

        // A table-full drop since the last pass: one early-drop pass over the table, as the kernel's
        // GC runs one in early-drop mode and then clears the mode. Exchange: a drop that sets the flag
        // again after this reads it gets a pass of its own on the next call.
        if (Volatile.Read(ref _gcEarlyDropMode.Value) != 0 && Interlocked.Exchange(ref _gcEarlyDropMode.Value, 0) != 0)
            GcEarlyDrop(now);

        AcquireRemover();
        try
        {
            RemoveKilled(); // killed while the timers fired: no need to wait for the next tick
            tombstones?.Trim(now, budget);
            Reclaim();
        }
        finally
        {
            ReleaseRemover();
        }
        return expired;
    }

    /// <summary>One fired entry: re-armed if refreshed, else retired. True when it expired. Remover only.</summary>
    private bool Expire(int idx, long now, TombstoneStore? tombstones, ExpiryFeed? feed)
    {
        ref ConnEntry e = ref Entries[idx];
        // A fresh read of the lock-free Dying bit; only a shortcut, the OR below decides.
        if ((Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) != 0)
            return false; // on the kill stack; unlinked from there
        // The lock orders us against a worker refreshing the deadline; the atomic OR decides
        // against a concurrent Kill (which takes no lock): exactly one of us retires the entry.
        Lock(idx);
        long deadline = Volatile.Read(ref e.Deadline); // stable under the lock; Volatile for a whole 64-bit read
        bool expiredNow = IsExpired(deadline, now);
        // The tombstone is stored before Dying is set, under the lock: a rescuing worker that
        // finds the expired entry dying (or gone) is then sure to find its tombstone.
        if (expiredNow && tombstones != null && e.Orig.Protocol == Packets.IpProto.Tcp && TombstoneStore.Keeps(e.Tcp.State))
            tombstones.Add(e.Orig, Hash(e.Orig), e.Tcp, deadline, now);
        bool won = expiredNow && (Interlocked.Or(ref e.Status, (uint)CtStatus.Dying) & (uint)CtStatus.Dying) == 0;
        // The housekeeper's ring is written only by the holder of the remover flag (one at a time).
        if (won && Events is { Active: true } hub)
            hub.Emit(hub.Housekeeper, this, idx, ConntrackEventKind.Destroy, now);
        if (won && feed != null && e.Orig.Protocol == Packets.IpProto.Tcp && ExpiryFeed.Reports(e.Tcp.State))
        {
            feed.Add(new ExpiredTcpFlow(e.Orig, e.Tcp.State, e.Tcp.Seen0.TdEnd, e.Tcp.Seen1.TdEnd,
                e.Tcp.Seen0.TdMaxAck, e.Tcp.Seen1.TdMaxAck, deadline));
        }
        Unlock(idx);
        if (!expiredNow)
        {
            Wheel.Arm(idx); // refreshed since it was armed: lazy re-arm
            return false;
        }
        if (!won)
            return false; // killed meanwhile: the kill stack unlinks and retires it
        Interlocked.Decrement(ref _count.Value); // the winner of the Dying OR gives the place back, as Kill
        Unlink(idx);
        Retire(idx);
        return true;
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
        // Our own node's link: only its inserter (before publishing it) and this thread ever write it,
        // so Volatile is for uniformity with the other link reads, not needed for ordering.
        int next = Volatile.Read(ref NextOf(link));
        while (true)
        {
            // Acquire: the newest head, with the next links of nodes inserted since.
            int head = Volatile.Read(ref _buckets[bucket]);
            if (head == link)
            {
                // CAS, not a store: a worker may be pushing a new head at this instant, and a store
                // would drop its entry from the chain (unreachable yet counted and armed).
                if (Interlocked.CompareExchange(ref _buckets[bucket], next, head) == head)
                    return;
                continue; // a worker inserted at the head meanwhile; our link is now inner
            }
            // Inner node: only this thread changes inner links, so a plain release store suffices.
            int prev = head;
            while (prev != 0)
            {
                ref int prevNext = ref NextOf(prev);
                int p = Volatile.Read(ref prevNext); // acquire, as in Lookup's walk
                if (p == link)
                {
                    // Release: a reader that takes the new link sees the node it names initialised (it
                    // was published to us by acquire reads; release carries that on). Readers already
                    // on our node still reach `next` through its unchanged link.
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
            // Chain walk and Status read as in Lookup. Benign race: a listing is no snapshot; entries
            // may be inserted, refreshed or killed while we walk (the plain Deadline read is whole on
            // the 64-bit targets ctfw runs on).
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

    /// <summary>Buckets in the index; <see cref="CollectLive"/> walks one at a time.</summary>
    public int BucketCount => _buckets.Length;

    /// <summary>
    /// Adds to <paramref name="into"/> each entry of bucket <paramref name="bucket"/> that is live and
    /// whose ORIGINAL link is in this bucket (so a walk over all buckets meets every entry once). Must
    /// run inside an epoch; the caller re-checks each entry under its lock.
    /// </summary>
    public void CollectLive(int bucket, long now, List<int> into)
    {
        // Chain walk and Status/Deadline reads as in Lookup; a moving cut, as ForEachLive.
        int link = Volatile.Read(ref _buckets[bucket]);
        while (link != 0)
        {
            int idx = (link - 1) >> 1;
            int d = (link - 1) & 1;
            ref ConnEntry e = ref Entries[idx];
            link = d == 0 ? Volatile.Read(ref e.NextOrig) : Volatile.Read(ref e.NextReply);
            if (d == 0 && (Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) == 0 && !IsExpired(Volatile.Read(ref e.Deadline), now))
                into.Add(idx);
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
