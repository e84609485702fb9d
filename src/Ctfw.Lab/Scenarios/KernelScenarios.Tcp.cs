
using Ctfw.Packets;
using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.TcpStates;
using static Ctfw.Lab.Scenarios.Expect;

namespace Ctfw.Lab.Scenarios;

// TCP connection life cycle and window tracking (kernel-conntrack.md §4.4-4.7, vectors §4.14).
public static partial class KernelScenarios
{
    private static KernelScenario TcpHandshakeDataClose() => Scenario("tcp_handshake_data_close",
        "Full life of a TLS-like connection: handshake, request, response in two segments, client-initiated " +
        "close. The server's sequence numbers wrap past 2^32 during the response. Spec §4.14 #1-#10: SYN_SENT, " +
        "SYN_RECV, ESTABLISHED for data, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT; only the SYN is NEW.",
        s =>
        {
            var f = new TcpFlow(false, 40001, 443, 0x6B2D_1F3A, 0xFFFF_FA00);
            s.Handshake(f)
                .Send(f.Data(Client, 517), EstOrig(Established))     // #5 data
                .Send(f.Ack(Server), EstReply(Established))          // #6
                .Send(f.Data(Server, 1448), EstReply(Established))   // crosses 2^32
                .Send(f.Data(Server, 1200), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established))
                .Send(f.Fin(Client), EstOrig(FinWait))               // #7 ORIGINAL FIN in ES → FW
                .Send(f.Ack(Server), EstReply(CloseWait))            // #8 REPLY ACK in FW → CW
                .Send(f.Fin(Server), EstReply(LastAck))              // #9 REPLY FIN in CW → LA
                .Send(f.Ack(Client), EstOrig(TimeWait));             // #10 ORIGINAL ACK in LA → TW
        });

    private static KernelScenario TcpSynRetransmit() => Scenario("tcp_syn_retransmit",
        "The SYN is resent after 1 s (initial RTO), then the handshake completes. Spec §4.14 #2: the " +
        "retransmitted SYN is still NEW (no reply yet), state SYN_SENT, timeout not refreshed.",
        s =>
        {
            var f = new TcpFlow(false, 40002, 80, 0x0C4F_9A21, 0x7D10_33B8);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Sleep(1)
                .Send(f.SynRetransmit(), NewOrig(SynSent))
                .Send(f.SynAck(), EstReply(SynRecv))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSynToClosedPortRst() => Scenario("tcp_syn_to_closed_port_rst",
        "SYN to a closed port, answered by RST/ACK (seq 0, ack ISN+1, win 0) as Linux sends it; then the " +
        "client retries. Spec §4.14 #17 and §4.6 step 7: the RST is ESTABLISHED (reply direction) and, " +
        "SEEN_REPLY being clear, deletes the entry; the retried SYN is NEW again.",
        s =>
        {
            var f = new TcpFlow(false, 40003, 8443, 0x3A9E_0D17, 0);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Send(f.Rst(Server, seq: 0, ack: f.Nxt(Client)), EstReply(None))
                .Send(f.SynRetransmit(), NewOrig(SynSent));
        });

    private static KernelScenario TcpClientRstBeforeReply() => Scenario("tcp_client_rst_before_reply",
        "The client aborts (RST) before any answer, then the server's SYN/ACK arrives late. Spec §4.14 #18: " +
        "the RST is NEW and deletes the unreplied entry; #16: the late SYN/ACK finds no entry → INVALID.",
        s =>
        {
            var f = new TcpFlow(false, 40004, 80, 0x51C7_E2A0, 0x2B6F_1904);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Send(f.Rst(Client, seq: f.Nxt(Client)), NewOrig(None))
                .Send(f.SynAck(), Invalid());
        });

    private static KernelScenario TcpSimultaneousOpen() => Scenario("tcp_simultaneous_open",
        "Both ends send a SYN (peer-to-peer hole punching), then both answer SYN/ACK, then both ACK. " +
        "Spec §4.4/§4.6: REPLY SYN in SYN_SENT → SYN_SENT2 (#34); ORIGINAL SYN/ACK in SYN_SENT2 → SYN_RECV; " +
        "the second SYN/ACK is ignored; REPLY ACK in SYN_RECV with SIMULTANEOUS_OPEN → ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40005, 41005, 0x7F3D_2C19, 0x19E0_77A4);
            s.Send(f.Syn(Client), NewOrig(SynSent))
                .Send(f.Syn(Server), EstReply(SynSent2))
                .Send(f.SynAck(Client), EstOrig(SynRecv))
                .Send(f.SynAck(Server), EstReply(SynRecv))           // sIG: accepted, no state change
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSimultaneousClose() => Scenario("tcp_simultaneous_close",
        "Both ends send FIN before seeing the other's (crossing FINs), then both ACK. Spec §4.4: ORIGINAL FIN " +
        "→ FIN_WAIT, REPLY FIN in FIN_WAIT → LAST_ACK, ORIGINAL ACK in LAST_ACK → TIME_WAIT, REPLY ACK stays TIME_WAIT.",
        s =>
        {
            var f = new TcpFlow(false, 40006, 22, 0x2E81_6BD0, 0x6C02_A5F3);
            s.Handshake(f)
                .Send(f.Data(Client, 36), EstOrig(Established))
                .Send(f.Data(Server, 36), EstReply(Established));
            uint clientFin = f.Nxt(Client);
            s.Send(f.Fin(Client), EstOrig(FinWait))
                .Send(f.Fin(Server, ack: clientFin), EstReply(LastAck))   // does not ack the client's FIN
                .Send(f.Ack(Client), EstOrig(TimeWait))
                .Send(f.Ack(Server), EstReply(TimeWait));
        });

    private static KernelScenario TcpHalfClose() => Scenario("tcp_half_close",
        "Client sends its request and shuts down its sending side (FIN); the server keeps sending the " +
        "response, then closes. Spec §4.4: FIN_WAIT, then REPLY ACK → CLOSE_WAIT, data both ways stays " +
        "CLOSE_WAIT, server FIN → LAST_ACK, last ACK → TIME_WAIT.",
        s =>
        {
            var f = new TcpFlow(false, 40007, 80, 0x44B2_9C05, 0x0A73_DE61);
            s.Handshake(f)
                .Send(f.Data(Client, 120), EstOrig(Established))
                .Send(f.Fin(Client), EstOrig(FinWait))
                .Send(f.Ack(Server), EstReply(CloseWait))
                .Send(f.Data(Server, 1448), EstReply(CloseWait))
                .Send(f.Data(Server, 1448), EstReply(CloseWait))
                .Send(f.Ack(Client), EstOrig(CloseWait))
                .Send(f.Data(Server, 600), EstReply(CloseWait))
                .Send(f.Ack(Client), EstOrig(CloseWait))
                .Send(f.Fin(Server), EstReply(LastAck))
                .Send(f.Ack(Client), EstOrig(TimeWait));
        });

    private static KernelScenario TcpTimeWaitReuse() => Scenario("tcp_time_wait_reuse",
        "A closed connection in TIME_WAIT is reused by a new SYN on the same ports with a higher ISN. " +
        "Spec §4.6 step 3 (reopen) and §4.14 #11: the client had sent the first FIN (CLOSE_INIT), so the " +
        "old entry is killed and the SYN is NEW in a fresh SYN_SENT entry; the new handshake completes.",
        s =>
        {
            var f = new TcpFlow(false, 40008, 80, 0x1D5A_0B33, 0x5E0C_81F2);
            s.Handshake(f)
                .Send(f.Data(Client, 80), EstOrig(Established))
                .Send(f.Data(Server, 300), EstReply(Established))
                .Send(f.Fin(Client), EstOrig(FinWait))
                .Send(f.Fin(Server), EstReply(LastAck))
                .Send(f.Ack(Client), EstOrig(TimeWait));
            var g = new TcpFlow(false, 40008, 80, f.Nxt(Client) + 250_000, 0x7A91_04C6);
            s.Send(g.Syn(), NewOrig(SynSent))
                .Send(g.SynAck(), EstReply(SynRecv))
                .Send(g.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSeqAboveMaxEnd() => Scenario("tcp_seq_above_maxend",
        "After the handshake the client sends a segment starting 10 MB beyond what the server's window " +
        "allows (td_maxend). Spec §4.7 D.1: SEQ over upper bound, overshoot larger than the receiver's " +
        "window → INVALID, entry unchanged; the next in-order segment is fine.",
        s =>
        {
            var f = new TcpFlow(false, 40009, 80, 0x6F04_A7C2, 0x33DB_1E58);
            s.Handshake(f)
                .Send(f.Data(Client, 1000, seq: f.Nxt(Client) + 10_000_000), Invalid(Established))
                .Send(f.Data(Client, 1000), EstOrig(Established));
        });

    private static KernelScenario TcpAckAboveEnd() => Scenario("tcp_ack_above_end",
        "The client acknowledges 100 000 bytes the server never sent. Spec §4.7 D.2: ACK over upper bound " +
        "(ack after the server's td_end) → INVALID; the server's next data is fine.",
        s =>
        {
            var f = new TcpFlow(false, 40010, 80, 0x08E1_5D9B, 0x4C77_20AE);
            s.Handshake(f)
                .Send(f.Ack(Client, ack: f.Nxt(Server) + 100_000), Invalid(Established))
                .Send(f.Data(Server, 300), EstReply(Established));
        });

    private static KernelScenario TcpRetransmitAckedDataIgnored() => Scenario("tcp_retransmit_acked_data_ignored",
        "A server with a small, unscaled window (2920) receives four acked segments, then the first one " +
        "again (like kernel selftest conntrack_ack_loss_stall). Spec §4.7 D.3 and §4.14 #27: SEQ under the " +
        "lower bound → IGNORE, which is accepted: the packet stays ESTABLISHED, the entry is not refreshed.",
        s =>
        {
            var server = new TcpEndpoint { SynWindow = 2920, Window = 2920, WindowScale = -1 };
            var client = TcpEndpoint.LinuxClient with { Window = 64240 }; // offered wscale, server did not
            var f = new TcpFlow(false, 40011, 8080, 0x2C6B_F013, 0x61A4_3B7D, client, server);
            s.Handshake(f);
            uint first = f.Nxt(Client);
            s.Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Data(Client, 1448, seq: first), EstOrig(Established));
        });

    /// <summary>Shared by the three window-scale scenarios: only the options in the SYNs differ.</summary>
    private static void WindowScaleScript(ScenarioBuilder s, TcpFlow f, KernelVerdict farSegment)
    {
        // The server opens its receive window with raw 2000: 256 000 bytes when scaling is on (×128),
        // 2000 bytes when it is off (then td_maxend stays at ack + 65160 from the SYN/ACK).
        s.Handshake(f)
            .Send(f.Ack(Server), EstReply(Established));
        // A segment 200 000 bytes ahead (the gateway missed earlier data, e.g. asymmetric routing):
        // inside a scaled window; beyond an unscaled one by more than the receiver's max window (§4.7 D.1).
        s.Send(f.Data(Client, 1448, seq: f.Nxt(Client) + 200_000), farSegment)
            .Send(f.Data(Client, 1448), EstOrig(Established));
    }

    private static KernelScenario TcpWindowScaleBoth() => Scenario("tcp_window_scale_both",
        "Both SYNs carry wscale 7, so windows after the handshake are scaled (§4.9): a segment 200 000 bytes " +
        "ahead is inside the server's 2000<<7 window → ESTABLISHED.",
        s => WindowScaleScript(s,
            new TcpFlow(false, 40012, 443, 0x5B2E_93C4, 0x0F6D_A218, TcpEndpoint.LinuxClient, TcpEndpoint.LinuxServer with { Window = 2000 }),
            EstOrig(Established)));

    private static KernelScenario TcpWindowScaleClientOnly() => Scenario("tcp_window_scale_client_only",
        "Only the client's SYN offers wscale; the server's SYN/ACK has none, so scaling is off in both " +
        "directions (§4.9, init_sender on the reply). The server's raw window 2000 is 2000 bytes and the " +
        "segment 200 000 bytes ahead is beyond td_maxend by more than the receiver's window → INVALID.",
        s => WindowScaleScript(s,
            new TcpFlow(false, 40013, 443, 0x3D81_0E6A, 0x72C5_4F19,
                TcpEndpoint.LinuxClient with { Window = 64240 },
                TcpEndpoint.LinuxServer with { Window = 2000, WindowScale = -1 }),
            Invalid(Established)));

    private static KernelScenario TcpWindowScaleServerOnly() => Scenario("tcp_window_scale_server_only",
        "Only the server's SYN/ACK carries wscale (not RFC 7323 compliant, but seen in the wild); the " +
        "client's SYN has none, so scaling stays off (§4.9) and the far segment is INVALID as in the " +
        "client-only case.",
        s => WindowScaleScript(s,
            new TcpFlow(false, 40014, 443, 0x1A7F_C853, 0x4E20_9BD7,
                TcpEndpoint.LinuxClient with { Window = 64240, WindowScale = -1 },
                TcpEndpoint.LinuxServer with { Window = 2000 }),
            Invalid(Established)));

    private static KernelScenario TcpTimestampsSack() => Scenario("tcp_timestamps_sack",
        "Timestamps and SACK negotiated. The server sends three segments; the client acks the first and " +
        "SACKs the third (the second was lost), then sends a SACK block beyond anything the server sent. " +
        "Spec §4.7 A/§4.9: with SACK_PERM the highest SACK right edge is used for the ACK upper-bound " +
        "check: the first ACK is ESTABLISHED, the bogus SACK is INVALID (ACK over upper bound).",
        s =>
        {
            var f = new TcpFlow(false, 40015, 443, 0x0B3C_7E95, 0x58F1_26AC);
            s.Handshake(f);
            uint s1 = f.Nxt(Server);
            s.Send(f.Data(Server, 1448), EstReply(Established))
                .Send(f.Data(Server, 1448), EstReply(Established))
                .Send(f.Data(Server, 1448), EstReply(Established))
                .Send(f.Ack(Client, ack: s1 + 1448, sack: [s1 + 2896, s1 + 4344]), EstOrig(Established))
                .Send(f.Ack(Client, ack: s1 + 1448, sack: [s1 + 2896, s1 + 5792]), Invalid(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSackWithoutPermission() => Scenario("tcp_sack_without_permission",
        "As tcp_timestamps_sack, but the server's SYN/ACK does not permit SACK. Spec §4.7 A: SACK blocks " +
        "are only read when the receiver advertised SACK_PERM, so the bogus block is ignored → ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40016, 443, 0x6E95_0B3C, 0x26AC_58F1,
                TcpEndpoint.LinuxClient, TcpEndpoint.LinuxServer with { SackPermitted = false });
            s.Handshake(f);
            uint s1 = f.Nxt(Server);
            s.Send(f.Data(Server, 1448), EstReply(Established))
                .Send(f.Ack(Client, ack: s1 + 1448, sack: [s1 + 2896, s1 + 5792]), EstOrig(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });
    private static KernelScenario TcpWindowOverrunIgnored() => Scenario("tcp_window_overrun_ignored",
        "A client overruns a small unscaled server window (2920) with four 1448-byte segments and no ACK in " +
        "between. Spec §4.7 D.1 [≥6.1]: the fourth segment starts beyond td_maxend but the overshoot is within " +
        "the receiver's max window (grown by E.5 on the third) → IGNORE (accepted, ESTABLISHED, td_end moved); " +
        "the server's ACK of everything is then fine.",
        s =>
        {
            var server = new TcpEndpoint { SynWindow = 2920, Window = 2920, WindowScale = -1 };
            var f = new TcpFlow(false, 40017, 8080, 0x3E5A_07C1, 0x5D19_B2E8, TcpEndpoint.LinuxClient with { Window = 64240 }, server);
            s.Handshake(f)
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Data(Client, 1448), EstOrig(Established))
                .Send(f.Data(Client, 1448), EstOrig(Established))   // starts inside, ends beyond: fine, window grows
                .Send(f.Data(Client, 1448), EstOrig(Established))   // starts beyond: overshoot → IGNORE
                .Send(f.Ack(Server), EstReply(Established));
        });

    private static KernelScenario TcpAckBelowLowerBoundIgnored() => Scenario("tcp_ack_below_lower_bound_ignored",
        "The client sends an ACK whose ack number lies 70 000 below the server's ISN (an overly delayed or " +
        "bogus ACK). Spec §4.7 D.4: ack not after td_end − max(66000, maxwin) − 1 → IGNORE: accepted, " +
        "ESTABLISHED, nothing updated.",
        s =>
        {
            var f = new TcpFlow(false, 40018, 80, 0x1B6C_F230, 0x4A07_95DE);
            s.Handshake(f)
                .Send(f.Data(Server, 1000), EstReply(Established))
                .Send(f.Ack(Client, ack: f.Isn(Server) - 70_000), EstOrig(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpInvalidTransitions() => Scenario("tcp_invalid_transitions",
        "Packets the state table forbids: the client ACKs and FINs while still in SYN_SENT, and after the " +
        "handshake the server sends a SYN and the client a SYN/ACK. Spec §4.4/§4.13 #8 and §4.14 #20: sIV → " +
        "INVALID with the state unchanged; the connection carries on.",
        s =>
        {
            var f = new TcpFlow(false, 40019, 80, 0x6A0E_3D54, 0x21F7_C80B);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Send(f.Segment(Client, TcpFlags.Ack, f.Nxt(Client), f.Isn(Server) + 1), Invalid(SynSent))
                .Send(f.Segment(Client, TcpFlags.Fin | TcpFlags.Ack, f.Nxt(Client), f.Isn(Server) + 1), Invalid(SynSent))
                .Send(f.SynAck(), EstReply(SynRecv))
                .Send(f.Ack(Client), EstOrig(Established))
                .Send(f.Segment(Server, TcpFlags.Syn, f.Isn(Server), 0), Invalid(Established))
                .Send(f.Segment(Client, TcpFlags.Syn | TcpFlags.Ack, f.Isn(Client), f.Nxt(Server)), Invalid(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });
}
