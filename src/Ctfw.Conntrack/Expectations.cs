using System.Runtime.CompilerServices;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>One expectation as listed by `ctfw conntrack -L expect`.</summary>
public readonly record struct ExpectationInfo(ConnTuple Tuple, ConnTuple Master, CtHelper Helper, long TimeoutMs);

/// <summary>Why a helper could not add an expectation (nf_ct_expect_related's errors); the packet is dropped.</summary>
internal enum ExpectResult : byte
{
    Added,
    /// <summary>-EBUSY: another master expects an overlapping tuple.</summary>
    Clash,
    /// <summary>-EMFILE: the table holds nf_conntrack_expect_max expectations.</summary>
    Full,
}

/// <summary>
/// The expectation table (nf_conntrack_expect.c): connections a helper announced, matched before
/// the table lookup by a packet that would start a NEW entry, which then becomes RELATED (status
/// EXPECTED) with the expectation's creator as its master.
/// <para>Every expectation ctfw's helpers create has the kernel's FTP/TFTP mask: addresses, the
/// destination port, protocol and zone exact, the source port any. Stored in a preallocated pool
/// of <see cref="Capacity"/> slots (nf_conntrack_expect_max: the kernel's 4 per 256 conntrack buckets),
/// chained by a hash of the exact part, so nothing is allocated on the packet path.</para>
/// <para>Concurrency: one spin lock (the kernel's nf_conntrack_expect_lock), held for a bucket walk;
/// packets pay for it only while <see cref="Count"/> is non-zero. Lock order: an entry lock, then
/// this one (helpers add under their master's lock; lookups hold no entry lock).</para>
/// <para>Removal: on use, on timeout, on eviction by a newer one of the same master beyond the
/// helper's max_expected, and when the master dies. The last two the kernel does eagerly; here an
/// expectation whose master is no longer live (dying, expired, or its slot reused: the
/// <see cref="HelperSlot.Generation"/> differs) is dead and is dropped when a walk meets it — the
/// same answers for every packet, without a hook in every path that kills an entry.</para>
/// </summary>
internal sealed class Expectations
{
    private struct Slot
    {
        public ConnTuple Tuple;      // SrcId is 0: the mask leaves the source port out
        public ConnTuple MasterOrig;
        public long Deadline;
        public int Master;
        public uint MasterGeneration;
        public int Next;             // bucket chain or free list: index + 1, 0 ends
        public int MasterNext;       // the master's list, newest first: index + 1, 0 ends
        public CtHelper Helper;
        public bool Used;
    }

    private readonly ConnTable _table;
    private readonly Slot[] _slots;
    private readonly int[] _buckets;   // index + 1
    // Per entry index: the newest expectation of the master there (index + 1). Valid only while that
    // slot is used by the same master and generation (HeadOf): a reused master slot starts empty.
    private readonly int[] _heads;
    private int _free;                 // free list head, index + 1
    private int _count;
    private int _lock;

    public Expectations(ConnTable table, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _table = table;
        _slots = new Slot[capacity];
        _buckets = new int[(int)Math.Max(16, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)capacity))];
        _heads = new int[table.Entries.Length];
        for (int i = 0; i < capacity; i++)
            _slots[i].Next = i + 2 <= capacity ? i + 2 : 0;
        _free = 1;
    }

    /// <summary>nf_conntrack_expect_max for a table of <paramref name="buckets"/> buckets (nf_conntrack_expect_init).</summary>
    public static int DefaultCapacity(int buckets) => Math.Max(1, buckets / 256) * 4;

    public int Capacity => _slots.Length;

    /// <summary>Expectations stored (dead ones not yet met by a walk included).</summary>
    public int Count => Volatile.Read(ref _count);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Bucket(in ConnTuple t)
    {
        ConnTuple key = t;
        key.SrcId = 0;
        return (int)(_table.Hash(key) & (ulong)(_buckets.Length - 1));
    }

    private void Lock()
    {
        // Test-and-test-and-set; held for one bucket walk, so spin, never sleep (as ConnTable.Lock).
        var spin = default(SpinWait);
        while (Volatile.Read(ref _lock) != 0 || Interlocked.CompareExchange(ref _lock, 1, 0) != 0)
            spin.SpinOnce(sleep1Threshold: -1);
    }

    // Release: the holder's writes to the pool are visible to the next CAS winner.
    private void Unlock() => Volatile.Write(ref _lock, 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Matches(in ConnTuple exp, in ConnTuple t) =>
        exp.Src == t.Src && exp.Dst == t.Dst && exp.DstId == t.DstId && exp.Protocol == t.Protocol
        && exp.IpVersion == t.IpVersion && exp.Zone == t.Zone;

    /// <summary>Whether the master of <paramref name="s"/> is still the live connection that created it.</summary>
    private bool MasterLive(in Slot s, long now, bool needConfirmed)
    {
        HelperSlot[]? helpers = _table.Helpers;
        if (helpers == null || Volatile.Read(ref helpers[s.Master].Generation) != s.MasterGeneration)
            return false;
        ref ConnEntry m = ref _table.Entries[s.Master];
        uint status = Volatile.Read(ref m.Status);
        if ((status & (uint)CtStatus.Dying) != 0 || Volatile.Read(ref m.Deadline) - now <= 0)
            return false;
        return !needConfirmed || (status & (uint)CtStatus.Confirmed) != 0;
    }

    private bool Dead(in Slot s, long now) => s.Deadline - now <= 0 || !MasterLive(s, now, needConfirmed: false);

    /// <summary>
    /// nf_ct_find_expectation: the expectation <paramref name="t"/> fulfils, removed from the table
    /// (none is permanent). False when there is none, or when its master is not confirmed yet.
    /// </summary>
    public bool TryTake(in ConnTuple t, long now, out int master, out uint masterGeneration)
    {
        master = -1;
        masterGeneration = 0;
        if (Volatile.Read(ref _count) == 0)
            return false;
        int b = Bucket(t);
        Lock();
        bool found = false;
        int cur = FindLive(b, t, now, out int prev);
        // The kernel gives up here (NULL) when the master is unconfirmed, the expectation stays.
        if (cur != 0 && MasterLive(_slots[cur - 1], now, needConfirmed: true))
        {
            master = _slots[cur - 1].Master;
            masterGeneration = _slots[cur - 1].MasterGeneration;
            Unlink(b, prev, cur);
            found = true;
        }
        Unlock();
        return found;
    }

    /// <summary>
    /// The first live expectation in bucket <paramref name="b"/> that <paramref name="t"/> matches
    /// (index + 1, and the slot before it in the chain), or 0; dead ones met on the way are unlinked. Locked.
    /// </summary>
    private int FindLive(int b, in ConnTuple t, long now, out int prev)
    {
        prev = 0;
        int cur = _buckets[b];
        while (cur != 0)
        {
            ref Slot s = ref _slots[cur - 1];
            int next = s.Next;
            if (Dead(s, now))
                Unlink(b, prev, cur);
            else if (Matches(s.Tuple, t))
                return cur;
            else
                prev = cur;
            cur = next;
        }
        return 0;
    }

    /// <summary>Removes slot <paramref name="cur"/> (index + 1) from bucket <paramref name="b"/> after <paramref name="prev"/>, and from its master's list. Locked.</summary>
    private void Unlink(int b, int prev, int cur)
    {
        ref Slot s = ref _slots[cur - 1];
        if (prev == 0)
            _buckets[b] = s.Next;
        else
            _slots[prev - 1].Next = s.Next;
        int before = 0;
        for (int m = HeadOf(s.Master, s.MasterGeneration); m != 0; before = m, m = _slots[m - 1].MasterNext)
        {
            if (m == cur)
            {
                if (before == 0)
                    _heads[s.Master] = s.MasterNext;
                else
                    _slots[before - 1].MasterNext = s.MasterNext;
                break;
            }
        }
        s.Used = false;
        s.Next = _free;
        _free = cur;
        Volatile.Write(ref _count, _count - 1); // read lock-free by TryTake's fast path
    }

    /// <summary>
    /// nf_ct_expect_related for an expectation of <paramref name="tuple"/> (source port any) by the
    /// master at <paramref name="master"/> (its entry locked by the caller): one of the same master
    /// and tuple is replaced; another master's is a clash; beyond <paramref name="maxExpected"/> of
    /// this master the oldest goes; a full table refuses.
    /// </summary>
    public ExpectResult Add(in ConnTuple tuple, int master, in ConnTuple masterOrig, CtHelper helper, int maxExpected, int timeoutSeconds, long now)
    {
        ConnTuple t = tuple;
        t.SrcId = 0;
        uint generation = _table.Helpers![master].Generation;
        int b = Bucket(t);
        Lock();
        try
        {
            for (int cur; (cur = FindLive(b, t, now, out int prev)) != 0;)
            {
                if (_slots[cur - 1].Master != master || _slots[cur - 1].MasterGeneration != generation)
                    return ExpectResult.Clash;
                Unlink(b, prev, cur); // same master, same tuple: the new one replaces it
            }
            if (maxExpected > 0)
            {
                while (CountOf(master, generation, now, out int oldest) >= maxExpected && oldest >= 0)
                    Remove(oldest);
            }
            if (_count >= _slots.Length)
                Sweep(now);
            if (_free == 0)
                return ExpectResult.Full;
            int idx = _free;
            ref Slot n = ref _slots[idx - 1];
            _free = n.Next;
            n.Tuple = t;
            n.MasterOrig = masterOrig;
            n.Deadline = now + (timeoutSeconds * 1000L);
            n.Master = master;
            n.MasterGeneration = generation;
            n.Helper = helper;
            n.Used = true;
            n.Next = _buckets[b];
            _buckets[b] = idx;
            n.MasterNext = HeadOf(master, generation);
            _heads[master] = idx;
            Volatile.Write(ref _count, _count + 1); // after the slot is linked: TryTake's fast path may now walk
            return ExpectResult.Added;
        }
        finally
        {
            Unlock();
        }
    }

    /// <summary>The newest expectation of <paramref name="master"/> at <paramref name="generation"/> (index + 1), or 0. Locked.</summary>
    private int HeadOf(int master, uint generation)
    {
        int h = _heads[master];
        if (h == 0)
            return 0;
        ref Slot s = ref _slots[h - 1];
        return s.Used && s.Master == master && s.MasterGeneration == generation ? h : 0;
    }

    /// <summary>Unexpired expectations of one master, and the oldest of them (index + 1, or −1). Locked; walks the master's own list.</summary>
    private int CountOf(int master, uint generation, long now, out int oldest)
    {
        int n = 0;
        oldest = -1;
        for (int m = HeadOf(master, generation); m != 0; m = _slots[m - 1].MasterNext)
        {
            if (_slots[m - 1].Deadline - now <= 0)
                continue;
            n++;
            oldest = m; // newest first: the last one met is the oldest
        }
        return n;
    }

    /// <summary>Removes slot <paramref name="idx"/> (index + 1) wherever it is chained. Locked.</summary>
    private void Remove(int idx)
    {
        int b = Bucket(_slots[idx - 1].Tuple);
        int prev = 0;
        for (int cur = _buckets[b]; cur != 0; prev = cur, cur = _slots[cur - 1].Next)
        {
            if (cur == idx)
            {
                Unlink(b, prev, cur);
                return;
            }
        }
    }

    /// <summary>Drops every dead expectation (the table is full: the kernel would have removed them already). Locked.</summary>
    private void Sweep(long now)
    {
        for (int b = 0; b < _buckets.Length; b++)
        {
            int prev = 0;
            int cur = _buckets[b];
            while (cur != 0)
            {
                int next = _slots[cur - 1].Next;
                if (Dead(_slots[cur - 1], now))
                    Unlink(b, prev, cur);
                else
                    prev = cur;
                cur = next;
            }
        }
    }

    /// <summary>Removes every expectation (`conntrack -F expect`) and returns how many were live. Off the packet path.</summary>
    public int Clear(long now)
    {
        int live = 0;
        Lock();
        try
        {
            for (int b = 0; b < _buckets.Length; b++)
            {
                while (_buckets[b] != 0)
                {
                    if (!Dead(_slots[_buckets[b] - 1], now))
                        live++;
                    Unlink(b, 0, _buckets[b]);
                }
            }
        }
        finally
        {
            Unlock();
        }
        return live;
    }

    /// <summary>The live expectations (for `conntrack -L expect`); off the packet path, allocates.</summary>
    public List<ExpectationInfo> Snapshot(long now)
    {
        var list = new List<ExpectationInfo>();
        Lock();
        try
        {
            for (int i = 0; i < _slots.Length; i++)
            {
                ref Slot s = ref _slots[i];
                if (s.Used && !Dead(s, now))
                    list.Add(new ExpectationInfo(s.Tuple, s.MasterOrig, s.Helper, s.Deadline - now));
            }
        }
        finally
        {
            Unlock();
        }
        return list;
    }
}
