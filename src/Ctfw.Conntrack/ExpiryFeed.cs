namespace Ctfw.Conntrack;

/// <summary>
/// A TCP entry that expired by timeout while ESTABLISHED, FIN_WAIT, CLOSE_WAIT or LAST_ACK
/// (<see cref="ConntrackEngine.CollectExpired"/>), with what a reset on expiry needs:
/// <see cref="OriginalEnd"/> is td_end of the ORIGINAL sender, the next sequence number the REPLY
/// side expects from it (its rcv_nxt when nothing is in flight); <see cref="ReplyEnd"/> likewise for
/// the REPLY sender. The max-ack values are the highest ACK each sender sent. <see cref="ExpiredAtMs"/>
/// is the entry's deadline on the engine's clock.
/// </summary>
public readonly record struct ExpiredTcpFlow(ConnTuple Original, TcpState State, uint OriginalEnd, uint ReplyEnd,
    uint OriginalMaxAck, uint ReplyMaxAck, long ExpiredAtMs);

/// <summary>
/// Bounded single-producer (the housekeeper, in <see cref="ConnTable.Maintain"/>) single-consumer
/// ring of <see cref="ExpiredTcpFlow"/>. When full, new flows are dropped and counted. Producer
/// and consumer may be different threads: each index is written by one side only and published
/// with a release store after (producer) the slot is filled or (consumer) it was read.
/// </summary>
internal sealed class ExpiryFeed
{
    public const int Capacity = 4096;

    private readonly ExpiredTcpFlow[] _ring = new ExpiredTcpFlow[Capacity];
    private PaddedLong _head; // next to take; consumer-written
    private PaddedLong _tail; // next to fill; producer-written
    private long _dropped;

    public long Dropped => Volatile.Read(ref _dropped); // statistic: fresh, whole 64-bit read; orders nothing

    public static bool Reports(TcpState s) =>
        s is TcpState.Established or TcpState.FinWait or TcpState.CloseWait or TcpState.LastAck;

    /// <summary>Producer: queues one flow, or counts it dropped when the ring is full.</summary>
    public void Add(in ExpiredTcpFlow flow)
    {
        long tail = _tail.Value;
        // Acquire: the consumer has finished reading a slot before we see it move past it.
        if (tail - Volatile.Read(ref _head.Value) >= Capacity)
        {
            // Producer is the only writer (so not Interlocked); the volatile store keeps it whole for readers.
            Volatile.Write(ref _dropped, _dropped + 1);
            return;
        }
        _ring[(int)(tail & (Capacity - 1))] = flow;
        // Release: the slot's contents are visible before the consumer can see it is filled.
        Volatile.Write(ref _tail.Value, tail + 1);
    }

    /// <summary>Consumer: takes the oldest queued flow.</summary>
    public bool TryTake(out ExpiredTcpFlow flow)
    {
        long head = _head.Value;
        // Acquire: pairs with the producer's release of the tail, so the slot is filled.
        if (head == Volatile.Read(ref _tail.Value))
        {
            flow = default;
            return false;
        }
        flow = _ring[(int)(head & (Capacity - 1))];
        // Release: the read of the slot completes before the producer may refill it.
        Volatile.Write(ref _head.Value, head + 1);
        return true;
    }

    /// <summary>Flows queued and not taken.</summary>
    // Benign race: two reads, not a snapshot; off by the flows moved in between (statistics and tests).
    public int Count => (int)(Volatile.Read(ref _tail.Value) - Volatile.Read(ref _head.Value));
}
