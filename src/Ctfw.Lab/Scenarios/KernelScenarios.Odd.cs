using Ctfw.Packets;
using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.TcpStates;
using static Ctfw.Lab.Scenarios.Expect;

namespace Ctfw.Lab.Scenarios;

// Odd TCP as public captures show it (issue 11): overlapping segments, RST carrying data, a flow
// seen in one direction only. Mid-stream starts, SYN floods and ICMP errors are in the other files.
// Ports 43000-43099.
public static partial class KernelScenarios
{
    private static KernelScenario TcpOverlappingSegments() => Scenario("tcp_overlapping_segments",
        "After the handshake the client sends 1000 bytes, then a 1000-byte segment starting 500 bytes " +
        "back (half resent, half new: a repacketised retransmission), the server acks all 1500, and " +
        "the client resends the last 200 acked bytes. Spec §4.7: every segment ends above the lower " +
        "bound and starts below the upper one, so all are ESTABLISHED and the overlap extends td_end.",
        s =>
        {
            var f = new TcpFlow(false, 43000, 80, 0x3A51_7C02, 0x6E08_D1F3);
            s.Handshake(f)
                .Send(f.Data(Client, 1000), EstOrig(Established));
            uint end = f.Nxt(Client);
            s.Send(f.Segment(Client, TcpFlags.Psh | TcpFlags.Ack, end - 500, f.Nxt(Server), length: 1000), EstOrig(Established))
                .Send(f.Ack(Server, ack: end + 500), EstReply(Established))
                .Send(f.Segment(Client, TcpFlags.Psh | TcpFlags.Ack, end + 300, f.Nxt(Server), length: 200), EstOrig(Established));
        });

    private static KernelScenario TcpRstWithData() => Scenario("tcp_rst_with_data",
        "The client aborts with an RST/ACK that carries 24 bytes of diagnostic text (RFC 9293 §3.5.3 " +
        "allows it; some stacks and middleboxes send it), at exactly the sequence number the server " +
        "acknowledged; the server's late data follows. Spec §4.6: the RST seq equals the receiver's max " +
        "ack → CLOSE, ESTABLISHED (the payload changes nothing); the server's data in CLOSE stays CLOSE.",
        s =>
        {
            var f = new TcpFlow(false, 43010, 80, 0x1D7E_4A90, 0x5C23_08B6);
            s.Handshake(f)
                .Send(f.Data(Client, 120), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Segment(Client, TcpFlags.Rst | TcpFlags.Ack, f.Nxt(Client), f.Nxt(Server), length: 24, window: 0), EstOrig(Close))
                .Send(f.Data(Server, 200), EstReply(Close));
        });

    private static KernelScenario TcpOneSidedMidstream() => Scenario("tcp_one_sided_midstream",
        "Asymmetric routing: the gateway sees only the server's half of a connection that began before " +
        "it (no handshake): four data segments and a FIN, never a reply. Spec §4.5 (loose = 1): the first " +
        "segment picks the flow up mid-stream in a fresh ESTABLISHED entry (BE_LIBERAL both ways); with no " +
        "reply ever seen every packet is still NEW (ctinfo stays IP_CT_NEW until SEEN_REPLY); the FIN → FIN_WAIT.",
        s =>
        {
            var f = new TcpFlow(false, 43020, 80, 0x48C1_93E5, 0x0B9F_2D74);
            s.Send(f.Data(Server, 1448), NewOrig(Established))
                .Send(f.Data(Server, 1448), NewOrig(Established))
                .Send(f.Data(Server, 1448), NewOrig(Established))
                .Send(f.Data(Server, 600), NewOrig(Established))
                .Send(f.Fin(Server), NewOrig(FinWait));
        });
}
