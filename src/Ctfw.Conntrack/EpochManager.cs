namespace Ctfw.Conntrack;

/// <summary>
/// Epoch-based reclamation (Fraser, "Practical lock-freedom", 2004, §5.2.3; the scheme of Garnet's
/// LightEpoch): a removed entry is reused only after every thread that might still hold an index
/// to it has left the critical section it was in when the entry was unlinked.
///
/// Workers publish the global epoch in their slot on entering a batch (<see cref="Enter"/>) and
/// publish <see cref="Idle"/> on leaving. The housekeeper stamps unlinked entries with the epoch at
/// unlink time, bumps the epoch, and frees an entry once its stamp is below every active slot.
/// </summary>
internal sealed class EpochManager
{
    public const long Idle = long.MaxValue;
    private const int Stride = 16; // 128 bytes per slot: no false sharing between workers

    private readonly long[] _slots;
    private readonly int[] _claimed;
    private long _global = 1;

    public EpochManager(int maxThreads)
    {
        _slots = new long[maxThreads * Stride];
        _claimed = new int[maxThreads];
        for (int i = 0; i < maxThreads; i++)
            _slots[i * Stride] = Idle;
    }

    // Fresh read of the epoch Advance bumps; the housekeeper reads it to stamp, workers via Enter.
    public long Current => Volatile.Read(ref _global);

    /// <summary>Claims a slot for one thread; -1 when all are taken.</summary>
    public int Register()
    {
        for (int i = 0; i < _claimed.Length; i++)
        {
            // CAS: two workers created at once cannot claim the same slot.
            if (Interlocked.CompareExchange(ref _claimed[i], 1, 0) == 0)
                return i;
        }
        return -1;
    }

    public void Unregister(int slot)
    {
        // Idle first, then release the claim (release store): reordered, the next owner's Enter could
        // be overwritten by this late Idle, and the reclaimer would free entries under that worker.
        Volatile.Write(ref _slots[slot * Stride], Idle);
        Volatile.Write(ref _claimed[slot], 0);
    }

    public void Enter(int slot)
    {
        // Announce the epoch (Fraser's "local epoch"). Reading an epoch that is already stale is safe:
        // a lower announced value only holds back more reclamation.
        Volatile.Write(ref _slots[slot * Stride], Volatile.Read(ref _global));
        // Store-load fence: the slot must be visible to the reclaimer before this thread reads any
        // bucket or link (a Volatile write does not stop a later load passing it, even on x64).
        // Without it the reclaimer could see Idle, free an entry, and this thread could still walk
        // into it. Pairs with the fence in SafeBelow (Dekker): either the reclaimer
        // sees this slot, or this thread sees every unlink made before the reclaimer's fence.
        Interlocked.MemoryBarrier();
    }

    // Release: every table read of the batch completes before the slot says Idle; reordered, the
    // reclaimer could reuse an entry this worker is still reading.
    public void Exit(int slot) => Volatile.Write(ref _slots[slot * Stride], Idle);

    // The fence orders the unlinks before the bump: a worker that announces an epoch above an
    // entry's stamp read the epoch after the bump, so it sees the unlinks and cannot reach the entry.
    /// <summary>Bumps the global epoch (full fence) and returns the new value.</summary>
    public long Advance() => Interlocked.Increment(ref _global);

    /// <summary>Entries stamped with an epoch strictly below this value can be reused.</summary>
    public long SafeBelow()
    {
        // Read the slots after the unlinks and the Advance that precede this call; pairs with Enter's
        // fence. Without it a slot read could pass the unlinks and see Idle from a worker already in.
        Interlocked.MemoryBarrier();
        long min = Idle;
        for (int i = 0; i < _claimed.Length; i++)
        {
            long v = Volatile.Read(ref _slots[i * Stride]); // fresh, whole (also on 32-bit)
            if (v < min)
                min = v;
        }
        return min;
    }
}
