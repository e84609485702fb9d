using Ctfw.Conntrack;

namespace Ctfw.Linux.Sync;

/// <summary>Where <see cref="FtfwSession"/> puts its datagrams (a UDP socket in the daemon, a list in tests).</summary>
public interface IDatagramSink
{
    void Send(ReadOnlySpan<byte> datagram);
}

/// <summary>What <see cref="FtfwSession.Receive"/> hands over from the peer.</summary>
public interface ISyncReceiver
{
    /// <summary>A CT_NEW/CT_UPD/CT_DEL message that was well formed and in sequence.</summary>
    void OnConnection(SyncMessageType type, in KernelConnection connection);

    /// <summary>The peer sent RESYNC (conntrackd -n): it asks for a bulk send of the whole table.</summary>
    void OnResyncRequest();
}

/// <summary>FTFW settings; the defaults are conntrackd's.</summary>
public sealed record FtfwOptions
{
    /// <summary>Link MTU; a datagram carries at most Mtu − 28 bytes (IPv4 + UDP headers).</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>First sequence number sent; conntrackd uses time(NULL). Null: the wall clock's seconds at construction.</summary>
    public uint? InitialSequence { get; init; }

    /// <summary>
    /// Messages held at once, waiting to be sent or to be acknowledged (conntrackd's ResendQueueSize,
    /// which counts objects). 192 bytes each, allocated up front.
    /// </summary>
    public int QueueLimit { get; init; } = 8192;

    /// <summary>ACKWindowSize: the receiver acknowledges every this many messages.</summary>
    public int AckWindow { get; init; } = 300;

    /// <summary>With nothing sent for this long, an ACK of what was received, or else an ALIVE, goes out.</summary>
    public int AliveIntervalMs { get; init; } = 1000;
}

/// <summary>
/// Counters of one <see cref="FtfwSession"/>. Written only by the session's thread; read by others
/// (status) without a lock — a deliberate benign race: 64-bit reads are atomic on the platforms we run on
/// and a reader only wants a recent value.
/// </summary>
public sealed class FtfwCounters
{
    private readonly long[] _drops = new long[SyncWire.ErrorCount];

    public long DatagramsSent { get; internal set; }
    public long DatagramsReceived { get; internal set; }
    public long MessagesSent { get; internal set; }
    public long MessagesReceived { get; internal set; }
    public long BytesSent { get; internal set; }
    public long BytesReceived { get; internal set; }

    /// <summary>CT messages handed to the receiver.</summary>
    public long ConnectionsReceived { get; internal set; }

    public long AcksSent { get; internal set; }
    public long AcksReceived { get; internal set; }
    public long NacksSent { get; internal set; }
    public long NacksReceived { get; internal set; }

    /// <summary>Messages sent again (with new sequence numbers) because the peer NACKed them.</summary>
    public long Resent { get; internal set; }

    public long AlivesSent { get; internal set; }
    public long AlivesReceived { get; internal set; }
    public long ResyncsSent { get; internal set; }
    public long ResyncsReceived { get; internal set; }

    /// <summary>HELLO flags received (the peer started or restarted).</summary>
    public long PeerHellos { get; internal set; }

    /// <summary>Enqueue refused: every slot holds a message not yet sent.</summary>
    public long QueueOverflows { get; internal set; }

    /// <summary>Enqueue refused: the entry cannot be said in conntrackd's terms (see <see cref="SyncCodec.WriteConnection"/>).</summary>
    public long Unrepresentable { get; internal set; }

    /// <summary>NACKed messages not sent again because a later message about the same connection had been sent.</summary>
    public long Superseded { get; internal set; }

    /// <summary>Unacknowledged messages dropped from the resend queue to make room.</summary>
    public long ResendPurged { get; internal set; }

    /// <summary>Messages the peer sent that never arrived (gaps in its sequence, NACKed).</summary>
    public long SequenceLost { get; internal set; }

    /// <summary>Messages older than the last one received (delayed or replayed): dropped, as conntrackd does.</summary>
    public long SequenceDelayed { get; internal set; }

    /// <summary>Datagrams and messages dropped as malformed (sum over the reasons).</summary>
    public long Malformed { get; internal set; }

    /// <summary>Well-formed messages ctfw does not take (expectations, ICMP types with no inverse).</summary>
    public long Unsupported { get; internal set; }

    /// <summary>A valid message from the peer has arrived.</summary>
    public bool PeerSeen { get; internal set; }

    /// <summary>The peer answered our HELLO (HELLO_BACK): it tracks our sequence.</summary>
    public bool PeerUp { get; internal set; }

    /// <summary>Time (the session's clock, ms) of the last valid message from the peer.</summary>
    public long LastReceiveMs { get; internal set; }

    /// <summary>
    /// The peer may miss state the session can no longer resend (a NACK for purged messages, or an
    /// outgoing-queue overflow): the owner should do a bulk send. Cleared by <see cref="FtfwSession.TakeNeedsBulk"/>.
    /// </summary>
    public bool NeedsBulk { get; internal set; }

    /// <summary>Drops for one reason (malformed or unsupported).</summary>
    public long Dropped(SyncError reason) => (uint)reason < (uint)_drops.Length ? _drops[(int)reason] : 0;

    /// <summary>The non-zero drop counters by name (<see cref="SyncWire.Reason"/>), for status output; allocates.</summary>
    public IReadOnlyList<(string Reason, long Count)> DropsByReason()
    {
        var list = new List<(string, long)>();
        for (int i = 1; i < _drops.Length; i++)
        {
            if (_drops[i] != 0)
                list.Add((SyncWire.Reason((SyncError)i), _drops[i]));
        }
        return list;
    }

    internal void Drop(SyncError reason, bool malformed)
    {
        _drops[(int)reason]++;
        if (malformed)
            Malformed++;
        else
            Unsupported++;
    }
}
