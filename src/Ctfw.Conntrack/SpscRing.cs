namespace Ctfw.Conntrack;

/// <summary>
/// A bounded single-producer single-consumer ring of fixed-size records: the producer never waits (a
/// full ring drops the record and counts it in <see cref="Dropped"/>) and never allocates. Producer
/// and consumer may be different threads: each index is written by one side only and published with
/// a release store after (producer) the slot is filled or (consumer) it was read. "Single producer"
/// is a role, not a thread: successive producers must hand the role over with acquire/release (a
/// lock, the remover flag), which orders their writes.
/// </summary>
internal class SpscRing<T>
    where T : struct
{
    private readonly T[] _ring;
    private readonly int _mask;
    private PaddedLong _head; // next to take; consumer-written
    private PaddedLong _tail; // next to fill; producer-written
    private long _dropped;

    /// <param name="capacity">A power of two.</param>
    protected SpscRing(int capacity)
    {
        if (capacity <= 0 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "a power of two");
        _ring = new T[capacity];
        _mask = capacity - 1;
    }

    /// <summary>Records dropped because the ring was full.</summary>
    public long Dropped => Volatile.Read(ref _dropped); // statistic: fresh, whole 64-bit read; orders nothing

    /// <summary>Records queued and not taken.</summary>
    // Benign race: two reads, not a snapshot; off by the records moved in between (statistics and tests).
    public int Count => (int)(Volatile.Read(ref _tail.Value) - Volatile.Read(ref _head.Value));

    /// <summary>Producer: queues one record, or counts it dropped when the ring is full (false).</summary>
    public bool Add(in T record)
    {
        long tail = _tail.Value;
        // Acquire: the consumer has finished reading a slot before we see the head move past it.
        if (tail - Volatile.Read(ref _head.Value) > _mask)
        {
            // The producer role is the only writer (so not Interlocked); the volatile store keeps it whole for readers.
            Volatile.Write(ref _dropped, _dropped + 1);
            return false;
        }
        _ring[(int)(tail & _mask)] = record;
        // Release: the slot's contents are visible before the consumer can see it is filled.
        Volatile.Write(ref _tail.Value, tail + 1);
        return true;
    }

    /// <summary>Consumer: takes the oldest queued record.</summary>
    public bool TryTake(out T record)
    {
        long head = _head.Value;
        // Acquire: pairs with the producer's release of the tail, so the slot is filled.
        if (head == Volatile.Read(ref _tail.Value))
        {
            record = default;
            return false;
        }
        record = _ring[(int)(head & _mask)];
        // Release: the read of the slot completes before the producer may refill it.
        Volatile.Write(ref _head.Value, head + 1);
        return true;
    }
}
