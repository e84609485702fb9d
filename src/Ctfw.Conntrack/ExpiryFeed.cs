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
/// The expired flows, from the housekeeper (<see cref="ConnTable.Maintain"/>) to the resetter: a
/// <see cref="SpscRing{T}"/> of <see cref="ExpiredTcpFlow"/>; when full, new flows are dropped and counted.
/// </summary>
internal sealed class ExpiryFeed : SpscRing<ExpiredTcpFlow>
{
    public const int Capacity = 4096;

    public ExpiryFeed()
        : base(Capacity)
    {
    }

    public static bool Reports(TcpState s) =>
        s is TcpState.Established or TcpState.FinWait or TcpState.CloseWait or TcpState.LastAck;
}
