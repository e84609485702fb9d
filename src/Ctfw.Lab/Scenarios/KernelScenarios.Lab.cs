using Ctfw.Packets;
using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.TcpStates;
using static Ctfw.Lab.Scenarios.Expect;

namespace Ctfw.Lab.Scenarios;

// Lab corpus (issue 4): many flows at once, retransmitted FINs, zero windows, challenge ACKs,
// IPv6 options and the ICMP errors the first corpus lacked. Ports 42000-42699, one block per scenario.
public static partial class KernelScenarios
{
    private const byte IcmpFragNeeded = 4;
    private const byte IcmpHostUnreachable = 1;
    private const byte Icmpv6TimeExceeded = 3;

    /// <summary>Deterministic, well-spread ISNs (Knuth's LCG) for scenarios with many connections.</summary>
    private static uint NextIsn(ref uint state) => state = unchecked((state * 1_664_525u) + 1_013_904_223u);

    /// <summary>A SYN-flood tool's bare SYN: no options, a small fixed window.</summary>
    private static readonly TcpEndpoint s_floodClient = new()
    {
        SynWindow = 1024, Window = 1024, Mss = 0, WindowScale = -1, SackPermitted = false, Timestamps = false,
    };

    private static KernelScenario TcpSynFloodClosedPort() => Scenario("tcp_syn_flood_closed_port",
        "40 bare SYNs from distinct client ports to a port nobody listens on, in bursts of 5; the server " +
        "answers each burst with RST/ACK (seq 0, ack ISN+1, win 0) as Linux does, except for 4 SYNs that " +
        "get no answer. Spec §4.14 #1 and #17: every SYN is NEW in its own SYN_SENT entry; every RST is " +
        "ESTABLISHED (reply) and, SEEN_REPLY being clear, deletes its entry (§4.6 step 7); the unanswered " +
        "entries stay SYN_SENT, unaffected by their neighbours.",
        s =>
        {
            const int Count = 40, Burst = 5;
            uint isn = 0x5EED_0001;
            var flows = new TcpFlow[Count];
            for (int i = 0; i < Count; i++)
                flows[i] = new TcpFlow(false, (ushort)(42000 + i), 8081, NextIsn(ref isn), 0, s_floodClient);
            for (int burst = 0; burst < Count; burst += Burst)
            {
                for (int i = burst; i < burst + Burst; i++)
                    s.Send(flows[i].Syn(), NewOrig(SynSent));
                for (int i = burst; i < burst + Burst; i++)
                {
                    if (i % 11 == 6) // 6, 17, 28, 39: lost between the gateway and the server
                        continue;
                    TcpFlow f = flows[i];
                    s.Send(f.Rst(Server, seq: 0, ack: f.Nxt(Client)), EstReply(None));
                }
            }
        });

    private static KernelScenario TcpParallelHandshakes() => Scenario("tcp_parallel_handshakes",
        "20 connections to one server whose handshakes interleave: all SYNs, then all SYN/ACKs in another " +
        "order, then the ACKs in that order; a request and a response on each (responses in a third order); " +
        "then the even ones close with FIN (client FIN, server FIN/ACK, last ACK, interleaved across " +
        "connections) and the odd ones abort with an RST/ACK at the client's next sequence number. Spec §4.4 " +
        "and §4.14 #1-#4, #7, #10, #22, per entry and independent of the others: SYN_SENT, SYN_RECV, " +
        "ESTABLISHED; data ESTABLISHED; FIN_WAIT, the server's FIN/ACK (REPLY FIN in FIN_WAIT) LAST_ACK, " +
        "TIME_WAIT; the RST seq equals the server's max ack (exact) → CLOSE.",
        s =>
        {
            const int Count = 20;
            uint isn = 0x0BAD_CAFE;
            var flows = new TcpFlow[Count];
            for (int i = 0; i < Count; i++)
                flows[i] = new TcpFlow(false, (ushort)(42100 + i), 443, NextIsn(ref isn), NextIsn(ref isn));
            // 7 and 13 are coprime with 20, so these are permutations.
            static int AnswerOrder(int k) => ((7 * k) + 3) % Count;
            static int ResponseOrder(int k) => ((13 * k) + 5) % Count;

            for (int i = 0; i < Count; i++)
                s.Send(flows[i].Syn(), NewOrig(SynSent));
            for (int k = 0; k < Count; k++)
                s.Send(flows[AnswerOrder(k)].SynAck(), EstReply(SynRecv));
            for (int k = 0; k < Count; k++)
                s.Send(flows[AnswerOrder(k)].Ack(Client), EstOrig(Established));
            for (int i = 0; i < Count; i++)
                s.Send(flows[i].Data(Client, 200 + i), EstOrig(Established));
            for (int k = 0; k < Count; k++)
                s.Send(flows[ResponseOrder(k)].Data(Server, 1000 + (10 * k)), EstReply(Established));
            for (int k = Count - 1; k >= 0; k--)
            {
                TcpFlow f = flows[k];
                if (k % 2 == 0)
                    s.Send(f.Fin(Client), EstOrig(FinWait));
                else
                    s.Send(f.Rst(Client, ack: f.Nxt(Server)), EstOrig(Close));
            }
            // The servers' FINs, and the clients' last ACKs, in yet another order of the even connections.
            int[] closers = [6, 0, 14, 2, 10, 18, 4, 12, 8, 16];
            foreach (int i in closers)
                s.Send(flows[i].Fin(Server), EstReply(LastAck));
            foreach (int i in closers)
                s.Send(flows[i].Ack(Client), EstOrig(TimeWait));
        });

    private static KernelScenario TcpRetransmittedFin() => Scenario("tcp_retransmitted_fin",
        "Retransmitted FINs (same seq) on three connections: (a) the client's FIN resent before the " +
        "server's ACK and again after it; (b) resent only after the server's ACK (the ACK was lost behind " +
        "the gateway); (c) the server's FIN resent while it is in LAST_ACK and again when the client is in " +
        "TIME_WAIT. Spec §4.4: the table does not look at sequence numbers, so a resent ORIGINAL FIN is " +
        "'FIN seen in both directions': FIN_WAIT → LAST_ACK (a) and CLOSE_WAIT → LAST_ACK (b), after which " +
        "the server's ACK moves the entry to TIME_WAIT although the server has not closed; resent FINs and " +
        "ACKs in LAST_ACK/TIME_WAIT keep the state (c). All ESTABLISHED, the window check passes (end = td_end).",
        s =>
        {
            var a = new TcpFlow(false, 42200, 80, 0x2F1E_0A93, 0x61C4_7B20);
            s.Handshake(a)
                .Send(a.Data(Client, 300), EstOrig(Established))
                .Send(a.Ack(Server), EstReply(Established));
            uint aFin = a.Nxt(Client);
            s.Send(a.Fin(Client), EstOrig(FinWait))
                .Send(a.Segment(Client, TcpFlags.Fin | TcpFlags.Ack, aFin, a.Nxt(Server)), EstOrig(LastAck))
                .Send(a.Ack(Server), EstReply(TimeWait))
                .Send(a.Segment(Client, TcpFlags.Fin | TcpFlags.Ack, aFin, a.Nxt(Server)), EstOrig(TimeWait))
                .Send(a.Ack(Server), EstReply(TimeWait))
                .Send(a.Fin(Server), EstReply(TimeWait))
                .Send(a.Ack(Client), EstOrig(TimeWait));

            var b = new TcpFlow(false, 42201, 80, 0x7730_D51C, 0x0E92_AF47);
            s.Handshake(b)
                .Send(b.Data(Client, 300), EstOrig(Established))
                .Send(b.Ack(Server), EstReply(Established));
            uint bFin = b.Nxt(Client);
            s.Send(b.Fin(Client), EstOrig(FinWait))
                .Send(b.Ack(Server), EstReply(CloseWait))
                .Send(b.Segment(Client, TcpFlags.Fin | TcpFlags.Ack, bFin, b.Nxt(Server)), EstOrig(LastAck))
                .Send(b.Ack(Server), EstReply(TimeWait))
                .Send(b.Fin(Server), EstReply(TimeWait))
                .Send(b.Ack(Client), EstOrig(TimeWait));

            var c = new TcpFlow(false, 42202, 80, 0x48B6_13E5, 0x3C0F_92D8);
            s.Handshake(c)
                .Send(c.Data(Client, 300), EstOrig(Established))
                .Send(c.Data(Server, 900), EstReply(Established))
                .Send(c.Fin(Client), EstOrig(FinWait))
                .Send(c.Ack(Server), EstReply(CloseWait));
            uint cFin = c.Nxt(Server);
            s.Send(c.Fin(Server), EstReply(LastAck))
                .Send(c.Segment(Server, TcpFlags.Fin | TcpFlags.Ack, cFin, c.Nxt(Client)), EstReply(LastAck))
                .Send(c.Ack(Client), EstOrig(TimeWait))
                .Send(c.Segment(Server, TcpFlags.Fin | TcpFlags.Ack, cFin, c.Nxt(Client)), EstReply(TimeWait))
                .Send(c.Ack(Client), EstOrig(TimeWait));
        });

    private static KernelScenario TcpZeroWindowProbes() => Scenario("tcp_zero_window_probes",
        "A receiver with a 2896-byte buffer (no wscale) stops reading: it acks two full segments with window " +
        "0. The sender probes as Linux's tcp_xmit_probe_skb does (bare ACK, seq snd_una − 1), answered by " +
        "window-0 ACKs. Then it sends a bare FIN into the zero window, as the macOS hosts in the report behind " +
        "'tcp: accept bare FIN packets under memory pressure' (Linux 6.10) did (a Linux sender keeps the FIN " +
        "queued and only probes); the receiver, older than that patch, drops it and re-acks snd_una with " +
        "window 0; the FIN is resent, probing goes on, the window opens, the FIN is resent and acked, and " +
        "the server closes. Spec §4.4/§4.7: probes and window-0 ACKs pass the window check (a probe ends " +
        "one byte below td_end). The table ignores that the window-0 ACKs do not cover the FIN: FIN_WAIT, " +
        "the REPLY ACK → CLOSE_WAIT, the resent FIN → LAST_ACK, the next REPLY ACK → TIME_WAIT, where " +
        "everything else stays. (TIME_WAIT lasts 120 s; " +
        "persist-timer probes back off to 120 s, so a longer stall lets the entry expire under a live " +
        "connection, and the FIN at the end would then be INVALID — the seeds' FIN_WAIT1 case.)",
        s =>
        {
            var server = new TcpEndpoint { SynWindow = 2896, Window = 2896, WindowScale = -1 };
            var f = new TcpFlow(false, 42300, 5001, 0x1C9D_42E7, 0x5A06_B3F1, TcpEndpoint.LinuxClient with { Window = 64240 }, server);
            TcpPacket ZeroWindowAck(uint? ack = null) => f.Segment(Server, TcpFlags.Ack, f.Nxt(Server), ack ?? f.Nxt(Client), window: 0);
            TcpPacket Probe(uint sndUna) => f.Segment(Client, TcpFlags.Ack, sndUna - 1, f.Nxt(Server));

            s.Handshake(f)
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(ZeroWindowAck(), EstReply(Established));
            uint una = f.Nxt(Client);
            s.Send(Probe(una), EstOrig(Established))
                .Send(ZeroWindowAck(), EstReply(Established))
                .Send(Probe(una), EstOrig(Established))
                .Send(ZeroWindowAck(), EstReply(Established))
                .Send(f.Fin(Client), EstOrig(FinWait))
                .Send(ZeroWindowAck(ack: una), EstReply(CloseWait))                                  // FIN dropped
                .Send(f.Segment(Client, TcpFlags.Fin | TcpFlags.Ack, una, f.Nxt(Server)), EstOrig(LastAck))
                .Send(ZeroWindowAck(ack: una), EstReply(TimeWait))
                .Send(Probe(una), EstOrig(TimeWait))
                .Send(ZeroWindowAck(ack: una), EstReply(TimeWait))
                .Send(f.Segment(Server, TcpFlags.Ack, f.Nxt(Server), una, window: 2896), EstReply(TimeWait)) // window opens
                .Send(f.Segment(Client, TcpFlags.Fin | TcpFlags.Ack, una, f.Nxt(Server)), EstOrig(TimeWait))
                .Send(f.Ack(Server), EstReply(TimeWait))
                .Send(f.Fin(Server), EstReply(TimeWait))
                .Send(f.Ack(Client), EstOrig(TimeWait));
        });

    private static KernelScenario Tcp6TimestampsSack() => Scenario("tcp6_timestamps_sack",
        "IPv6 version of tcp_timestamps_sack (1428-byte segments: MSS 1440 minus timestamps). The server " +
        "sends three segments; the client acks the first and SACKs the third, then sends a SACK block beyond " +
        "anything the server sent. Spec §4.7 A/§4.9 (family-independent): with SACK_PERM the highest SACK " +
        "right edge is the ack for the upper-bound check: the first ACK is ESTABLISHED, the bogus SACK INVALID " +
        "(ACK over upper bound), the plain ACK afterwards ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(true, 42400, 443, 0x3E7A_C019, 0x0D52_98B4);
            s.Handshake(f);
            uint s1 = f.Nxt(Server);
            s.Send(f.Data(Server, 1428), EstReply(Established))
                .Send(f.Data(Server, 1428), EstReply(Established))
                .Send(f.Data(Server, 1428), EstReply(Established))
                .Send(f.Ack(Client, ack: s1 + 1428, sack: [s1 + 2856, s1 + 4284]), EstOrig(Established))
                .Send(f.Ack(Client, ack: s1 + 1428, sack: [s1 + 2856, s1 + 5712]), Invalid(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpRstInexactChallengeAck() => Scenario("tcp_rst_inexact_challenge_ack",
        "RFC 5961 §3 end to end, which tcp_rst_inexact_in_window stops short of. (a) The server's last 500 " +
        "bytes pass the gateway but are lost before the client; the client's request crosses them; the " +
        "server aborts with RST/ACK at its snd_nxt, 500 beyond what the client acked, so the client answers " +
        "with a challenge ACK (seq snd_nxt, ack rcv_nxt) and the server, its socket gone, resets with seq = " +
        "that ack. (b) Contrast: the same abort right after the server's own data. Spec §4.6 (RST in " +
        "ESTABLISHED): (a) inexact and not a train → stays ESTABLISHED; the challenge ACK ESTABLISHED; the " +
        "RST now equals the client's max ack → CLOSE; (b) 'RST train' (seq == last_end of the same " +
        "direction's last ACK-index packet) → CLOSE at once.",
        s =>
        {
            TcpFlow a = EstablishedWithAckedServerData(s, 42500, 0x6D1F_0B84, 0x23E9_C5A0);
            uint clientAcked = a.Nxt(Server);
            s.Send(a.Data(Server, 500), EstReply(Established))
                .Send(a.Data(Client, 120, ack: clientAcked), EstOrig(Established))
                .Send(a.Rst(Server, ack: a.Nxt(Client)), EstReply(Established))
                .Send(a.Ack(Client, ack: clientAcked), EstOrig(Established))
                .Send(a.Rst(Server, seq: clientAcked), EstReply(Close));

            TcpFlow b = EstablishedWithAckedServerData(s, 42501, 0x1A84_F36D, 0x7C25_0E19);
            s.Send(b.Data(Server, 500), EstReply(Established))
                .Send(b.Rst(Server, ack: b.Nxt(Client)), EstReply(Close));
        });

    private static KernelScenario IcmpErrorsForTcpAndUdp6() => Scenario("icmp_errors_for_tcp_and_udp6",
        "ICMP errors the first corpus lacked: fragmentation needed (type 3 code 4, next-hop MTU 1400) for a " +
        "1448-byte segment of an established IPv4 TCP connection, which the client then resends smaller; host " +
        "unreachable (3/1) for a SYN nobody answered, then the SYN's retransmission; ICMPv6 time exceeded " +
        "(3/0) for an IPv6 UDP probe. All sent from the server side. Spec §8.1/§8.2 step 5: the inner tuple " +
        "matches the entry's reply tuple → RELATED (reply); errors neither refresh the entry nor set " +
        "SEEN_REPLY, so the retransmitted SYN is NEW again and the TCP flow carries on ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 42600, 443, 0x0F3B_6D21, 0x49A7_E05C);
            s.Handshake(f);
            TcpPacket big = f.Data(Client, 1448, seq: f.Nxt(Client));
            s.Send(big, EstOrig(Established))
                .Send(new IcmpErrorPacket(Server, false, IcmpDestUnreachable, IcmpFragNeeded, big, Rest: 1400), RelReply())
                .Send(f.Data(Client, 1348), EstOrig(Established));

            var g = new TcpFlow(false, 42601, 443, 0x52C0_8F3A, 0);
            TcpPacket syn = g.Syn();
            s.Send(syn, NewOrig(SynSent))
                .Send(new IcmpErrorPacket(Server, false, IcmpDestUnreachable, IcmpHostUnreachable, syn), RelReply())
                .Send(g.SynRetransmit(), NewOrig(SynSent));

            var probe = new UdpPacket(Client, true, 42602, 33434, 32);
            s.Send(probe, NewOrig())
                .Send(new IcmpErrorPacket(Server, true, Icmpv6TimeExceeded, 0, probe), RelReply());
        });
}
