namespace Ctfw.Conntrack;

/// <summary>
/// Expiry timers for table entries: a hierarchical, non-cascading timing wheel in the style of the
/// Linux 4.8 rewrite (9 levels × 64 slots, granularity ×8 per level, 1 ms at level 0). An entry is
/// placed in the first level whose 62 slots cover its delay and fires at most one slot granule
/// late: under 8/62 ≈ 13 % of the delay (Linux quotes 12.5 % for its variant). Varghese &amp; Lauck, "Hashed and Hierarchical Timing Wheels", SOSP 1987.
/// With the arming horizon (<see cref="HorizonMs"/>) only the lower levels are used in practice;
/// the upper ones keep arming O(1) for any horizon.
///
/// Packets never touch the wheel: they only move <see cref="ConnEntry.Deadline"/>. When a slot fires,
/// each entry's deadline is re-checked and the entry is re-armed if it was refreshed ("lazy
/// re-arm"), so an active flow costs one re-arm per timeout period, not one per packet.
///
/// Owned by one thread (the housekeeper); lists are intrusive and doubly linked through
/// <see cref="ConnEntry.TimerNext"/>/<see cref="ConnEntry.TimerPrev"/> so a killed entry leaves in O(1).
/// TimerPrev encodes membership: ≥ 0 previous entry; −1 not in the wheel; −(list + 2) list head.
/// </summary>
internal sealed class TimerWheel
{
    private const int Levels = 9;
    private const int SlotBits = 6;
    private const int Slots = 1 << SlotBits;
    private const int LevelShift = 3;
    /// <summary>The extra list after the slots: fired entries not processed yet (work is budgeted).</summary>
    private const int DueList = Levels * Slots;
    /// <summary>How far ahead an entry is armed at most (≈ the kernel GC's worst-case reap delay is larger).</summary>
    public const long HorizonMs = 8192;

    private readonly ConnEntry[] _entries;
    private readonly int[] _heads = new int[(Levels * Slots) + 1];
    private long _now;
    private int _count;

    public TimerWheel(ConnEntry[] entries, long now)
    {
        _entries = entries;
        _now = now;
        Array.Fill(_heads, -1);
    }

    /// <summary>Entries in the wheel, including fired ones not yet processed.</summary>
    public int Count => _count;

    public long Now => _now;

    public static bool IsArmed(in ConnEntry e) => e.TimerPrev != -1;

    /// <summary>Arms entry <paramref name="idx"/> for its current deadline. O(1).</summary>
    public void Arm(int idx)
    {
        // Arm no further than the horizon: a deadline that a later packet shortens (ESTABLISHED
        // 5 days → TIME_WAIT 2 min) is then noticed within the horizon without the packet path
        // ever touching the wheel. Costs one re-arm per horizon per long-lived entry.
        // Deliberate benign race: workers move the deadline under the entry lock, which we do not hold.
        // Volatile gives one whole read; a value that changes right after only arms early (re-checked
        // and re-armed when the slot fires) or late by at most the horizon.
        long deadline = Math.Min(Volatile.Read(ref _entries[idx].Deadline), _now + HorizonMs);
        long delta = deadline - _now;
        int list;
        if (delta <= 0)
        {
            list = (int)((_now + 1) & (Slots - 1));
        }
        else
        {
            int level = 0;
            while (level < Levels - 1 && delta >= (62L << (level * LevelShift)))
                level++;
            int shift = level * LevelShift;
            long granule = 1L << shift;
            long maxDelta = 62L << shift;
            long target = delta < maxDelta ? deadline : _now + maxDelta;
            long abs = (target + granule - 1) >> shift;
            list = (level * Slots) + (int)(abs & (Slots - 1));
        }
        Push(list, idx);
    }

    private void Push(int list, int idx)
    {
        ref ConnEntry e = ref _entries[idx];
        int head = _heads[list];
        e.TimerNext = head;
        e.TimerPrev = -(list + 2);
        if (head >= 0)
            _entries[head].TimerPrev = idx;
        _heads[list] = idx;
        _count++;
    }

    /// <summary>Removes an armed entry. O(1). No-op if it is not in the wheel.</summary>
    public void Remove(int idx)
    {
        ref ConnEntry e = ref _entries[idx];
        int prev = e.TimerPrev;
        if (prev == -1)
            return;
        int next = e.TimerNext;
        if (prev >= 0)
            _entries[prev].TimerNext = next;
        else
            _heads[-prev - 2] = next;
        if (next >= 0)
            _entries[next].TimerPrev = prev;
        e.TimerPrev = -1;
        e.TimerNext = -1;
        _count--;
    }

    /// <summary>
    /// Moves every slot whose time has come (up to <paramref name="now"/>) onto the due list.
    /// At most 64 slots per level are visited, however far time jumped.
    /// </summary>
    public void Advance(long now)
    {
        if (now <= _now)
            return;
        for (int level = 0; level < Levels; level++)
        {
            int shift = level * LevelShift;
            long from = (_now >> shift) + 1;
            long to = now >> shift;
            if (to < from)
                break; // higher levels turn slower still
            if (to - from >= Slots)
                from = to - Slots + 1;
            for (long s = from; s <= to; s++)
                Splice((level * Slots) + (int)(s & (Slots - 1)));
        }
        _now = now;
    }

    private void Splice(int list)
    {
        int idx = _heads[list];
        if (idx < 0)
            return;
        // Find the tail, relabel the head, and prepend the whole list to the due list.
        int tail = idx;
        while (_entries[tail].TimerNext >= 0)
            tail = _entries[tail].TimerNext;
        int dueHead = _heads[DueList];
        _entries[tail].TimerNext = dueHead;
        if (dueHead >= 0)
            _entries[dueHead].TimerPrev = tail;
        _entries[idx].TimerPrev = -(DueList + 2);
        _heads[DueList] = idx;
        _heads[list] = -1;
    }

    /// <summary>Takes one fired entry off the due list, or −1 when none is left.</summary>
    public int PopDue()
    {
        int idx = _heads[DueList];
        if (idx >= 0)
            Remove(idx);
        return idx;
    }
}
