using Ctfw.Packets;
using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.TcpStates;
using static Ctfw.Lab.Scenarios.Expect;

namespace Ctfw.Lab.Scenarios;

// TCP expiry, pickup, resets, invalid packets and connection reuse (kernel-conntrack.md §4.2, §4.5, §4.6, §4.14).
public static partial class KernelScenarios
{
    private const string EstablishedTimeout = "nf_conntrack_tcp_timeout_established";

    /// <summary>Handshake, then idle 3 s with a 2 s established timeout: the entry is gone (§1.2, §2 step 5), 1 s margin.</summary>
    private static TcpFlow ExpiredConnection(ScenarioBuilder s, ushort clientPort, uint clientIsn, uint serverIsn)
    {
        var f = new TcpFlow(false, clientPort, 80, clientIsn, serverIsn);
        s.Sysctl(EstablishedTimeout, 2)
            .Handshake(f)
            .Sleep(3);
        return f;
    }

    private static KernelScenario TcpFinAfterEstablishedExpired() => Scenario("tcp_fin_after_established_expired",
        "Established timeout 2 s, idle 3 s, then the client closes (FIN/ACK) and the server answers FIN/ACK " +
        "(the seed case of FIN_WAIT sockets behind a NAT). Spec §4.5 and §4.14 #12: no entry, and a FIN " +
        "cannot create one → both INVALID.",
        s =>
        {
            TcpFlow f = ExpiredConnection(s, 40021, 0x4F1B_2D88, 0x13C9_7E05);
            s.Send(f.Fin(Client), Invalid())
                .Send(f.Fin(Server), Invalid());
        });

    private static KernelScenario TcpRstAfterEstablishedExpired() => Scenario("tcp_rst_after_established_expired",
        "Established timeout 2 s, idle 3 s, then the client resets. Spec §4.14 #13: RST without an entry → INVALID.",
        s =>
        {
            TcpFlow f = ExpiredConnection(s, 40022, 0x2A6E_C013, 0x7B05_91D4);
            s.Send(f.Rst(Client, ack: f.Nxt(Server)), Invalid());
        });

    private static KernelScenario TcpPickupAfterExpiryLoose() => Scenario("tcp_pickup_after_expiry_loose",
        "Established timeout 2 s, idle 3 s, then the client sends data (loose = 1). Spec §4.5 and §4.14 #14: " +
        "mid-stream pickup → NEW in a fresh ESTABLISHED entry (BE_LIBERAL both ways); the server's ACK is the " +
        "first reply → ESTABLISHED.",
        s =>
        {
            TcpFlow f = ExpiredConnection(s, 40023, 0x65D2_0A97, 0x0E4B_3FC1);
            s.Send(f.Data(Client, 300), NewOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Data(Client, 300), EstOrig(Established));
        });

    private static KernelScenario TcpPickupAfterExpiryLooseOff() => Scenario("tcp_pickup_after_expiry_loose_off",
        "As tcp_pickup_after_expiry_loose with nf_conntrack_tcp_loose = 0. Spec §4.5 and §4.14 #15: an ACK " +
        "cannot create an entry → INVALID, and so is the server's answer.",
        s =>
        {
            s.Sysctl("nf_conntrack_tcp_loose", 0);
            TcpFlow f = ExpiredConnection(s, 40024, 0x71A0_5E3B, 0x29F6_C480);
            s.Send(f.Data(Client, 300), Invalid())
                .Send(f.Ack(Server), Invalid());
        });

    private static KernelScenario TcpPickupServerFirst() => Scenario("tcp_pickup_server_first",
        "After expiry it is the server that speaks first (a push of 1448 bytes). Spec §4.5: the picked-up " +
        "entry's ORIGINAL direction is whoever sent the first packet, so the server's data is NEW ORIGINAL " +
        "and the client's ACK is ESTABLISHED REPLY.",
        s =>
        {
            TcpFlow f = ExpiredConnection(s, 40025, 0x0D39_F62E, 0x5A84_1B77);
            s.Send(f.Data(Server, 1448), NewOrig(Established))
                .Send(f.Ack(Client), EstReply(Established))
                .Send(f.Data(Server, 1448), EstOrig(Established));
        });

    private static KernelScenario TcpRstBeforeThirdAck() => Scenario("tcp_rst_before_third_ack",
        "The seed case (LVS health check): the client completes the handshake and resets at once, and the " +
        "RST/ACK overtakes the third ACK. Spec §4.6 step 3 (RST in SYN_RECV: not established, seq not below " +
        "maxack → window check, passes) → CLOSE, ESTABLISHED; the late ACK is an ORIGINAL ACK in CLOSE → stays CLOSE.",
        s =>
        {
            var f = new TcpFlow(false, 40026, 80, 0x36C1_8F0D, 0x6207_D4B9);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Send(f.SynAck(), EstReply(SynRecv))
                .Send(f.Rst(Client, seq: f.Nxt(Client), ack: f.Nxt(Server)), EstOrig(Close))
                .Send(f.Ack(Client), EstOrig(Close));
        });

    /// <summary>
    /// Like kernel selftest conntrack_rst_invalid: the server sends 3×1000 bytes, the client acks each,
    /// so the client's td_maxack is the server's next sequence number.
    /// </summary>
    private static TcpFlow EstablishedWithAckedServerData(ScenarioBuilder s, ushort clientPort, uint clientIsn, uint serverIsn)
    {
        var f = new TcpFlow(false, clientPort, 8080, clientIsn, serverIsn);
        s.Handshake(f);
        for (int i = 0; i < 3; i++)
        {
            s.Send(f.Data(Server, 1000), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        }
        return f;
    }

    private static KernelScenario TcpRstExactSeq() => Scenario("tcp_rst_exact_seq",
        "The server resets with seq exactly at the client's max ack. Spec §4.6 (RST validation) and §4.14 #22: " +
        "exact match → CLOSE, ESTABLISHED.",
        s =>
        {
            TcpFlow f = EstablishedWithAckedServerData(s, 40027, 0x19A3_C6F2, 0x4D08_7E13);
            s.Send(f.Rst(Server, ack: f.Nxt(Client)), EstReply(Close));
        });

    private static KernelScenario TcpRstBelowMaxAck() => Scenario("tcp_rst_below_maxack",
        "Resets with seq below the client's max ack (one byte below, and at the ISN). Spec §4.14 #23 " +
        "(selftest conntrack_rst_invalid): invalid rst → INVALID, entry stays ESTABLISHED.",
        s =>
        {
            TcpFlow f = EstablishedWithAckedServerData(s, 40028, 0x7C50_1E8A, 0x0B96_D347);
            s.Send(f.Rst(Server, seq: f.Nxt(Server) - 1, ack: f.Nxt(Client)), Invalid(Established))
                .Send(f.Rst(Server, seq: f.Isn(Server)), Invalid(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpRstBelowMaxAckIgnoreInvalidRst() => Scenario("tcp_rst_below_maxack_ignore_invalid_rst",
        "As tcp_rst_below_maxack with nf_conntrack_tcp_ignore_invalid_rst = 1. Spec §4.6: the 'invalid rst' " +
        "test is skipped; the RST is established-but-inexact, so the state stays ESTABLISHED (with the CLOSE " +
        "timeout) and the window check passes → ESTABLISHED.",
        s =>
        {
            s.Sysctl("nf_conntrack_tcp_ignore_invalid_rst", 1);
            TcpFlow f = EstablishedWithAckedServerData(s, 40029, 0x52E7_9B04, 0x38C1_06FD);
            s.Send(f.Rst(Server, seq: f.Nxt(Server) - 1), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpRstInexactInWindow() => Scenario("tcp_rst_inexact_in_window",
        "The server resets with seq 42 bytes beyond the client's max ack, inside the window. Spec §4.6 and " +
        "§4.14 #25: not exact, so the state stays ESTABLISHED (waiting for the challenge ACK), packet ESTABLISHED.",
        s =>
        {
            TcpFlow f = EstablishedWithAckedServerData(s, 40030, 0x0A4D_F71C, 0x6E33_28B5);
            s.Send(f.Rst(Server, seq: f.Nxt(Server) + 42), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpRstFarOutOfWindow() => Scenario("tcp_rst_far_out_of_window",
        "The server resets with seq 1 000 000 beyond the client's max ack. Spec §4.14 #24: SEQ over upper bound → INVALID.",
        s =>
        {
            TcpFlow f = EstablishedWithAckedServerData(s, 40031, 0x2F68_0D93, 0x17B4_E52A);
            s.Send(f.Rst(Server, seq: f.Nxt(Server) + 1_000_000), Invalid(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpRstInexactInCloseWait() => Scenario("tcp_rst_inexact_in_close_wait",
        "Kernel selftest conntrack_inexact_rst: the server closes (FIN), the client acks (CLOSE_WAIT), then " +
        "resets with unread data; a spurious RST from the server with a stale seq follows. Spec §4.6 and " +
        "§4.14 #26: in closing states RSTs skip validation → CLOSE, both ESTABLISHED, no INVALID.",
        s =>
        {
            TcpFlow f = EstablishedWithAckedServerData(s, 40032, 0x6B17_3AC8, 0x41F0_9D26);
            uint stale = f.Nxt(Server) - 1000;
            s.Send(f.Data(Client, 1000), EstOrig(Established))
                .Send(f.Fin(Server), EstReply(FinWait))
                .Send(f.Ack(Client), EstOrig(CloseWait))
                .Send(f.Rst(Client, ack: f.Nxt(Server)), EstOrig(Close))
                .Send(f.Rst(Server, seq: stale), EstReply(Close));
        });

    private static KernelScenario TcpInvalidFlagCombinations() => Scenario("tcp_invalid_flag_combinations",
        "Scanner-style flag combinations, first with no entry, then inside an established connection: " +
        "SYN+FIN, no flags, FIN alone, SYN+ACK+URG, FIN+PSH+URG (Xmas). Spec §4.2 step 4 and §4.14 #19: " +
        "all INVALID, entry unchanged; a normal ACK afterwards is ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40033, 80, 0x3C8E_51A7, 0x6D02_B94F);
            s.Send(f.Segment(Client, TcpFlags.Syn | TcpFlags.Fin, f.Isn(Client), 0, window: 1024), Invalid())
                .Handshake(f)
                .Send(f.Segment(Client, TcpFlags.Syn | TcpFlags.Fin, f.Nxt(Client), f.Nxt(Server)), Invalid(Established))
                .Send(f.Segment(Client, TcpFlags.None, f.Nxt(Client), 0), Invalid(Established))
                .Send(f.Segment(Client, TcpFlags.Fin, f.Nxt(Client), 0), Invalid(Established))
                .Send(f.Segment(Server, TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Urg, f.Isn(Server), f.Nxt(Client)), Invalid(Established))
                .Send(f.Segment(Client, TcpFlags.Fin | TcpFlags.Psh | TcpFlags.Urg, f.Nxt(Client), 0), Invalid(Established))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSynAckWithoutEntry() => Scenario("tcp_synack_without_entry",
        "A SYN/ACK with no entry (the SYN took another path), twice, then the client's third ACK. Spec §4.5 " +
        "and §4.14 #16: SYN/ACK cannot create an entry → INVALID both times; the ACK is a loose pickup → " +
        "NEW, ESTABLISHED; the server's data is then ESTABLISHED reply.",
        s =>
        {
            var f = new TcpFlow(false, 40034, 80, 0x0F27_6CB1, 0x48D3_1A6E);
            f.Syn(); // sent on a path the gateway does not see
            s.Send(f.SynAck(), Invalid())
                .Send(f.SynAck(), Invalid())
                .Send(f.Ack(Client), NewOrig(Established))
                .Send(f.Data(Server, 500), EstReply(Established));
        });

    /// <summary>The client of kernel selftests conntrack_synack_old / conntrack_syn_challenge_ack (packetdrill defaults).</summary>
    private static readonly TcpEndpoint s_packetdrillClient = new() { SynWindow = 65535, Window = 256, WindowScale = 8 };

    /// <summary>Their server: wscale 0, no SACK, window 250.</summary>
    private static readonly TcpEndpoint s_packetdrillServer = new() { SynWindow = 250, Window = 250, WindowScale = 0, SackPermitted = false };

    /// <summary>A SYN/ACK (or ACK) from an old incarnation, with the selftests' numbers: seq 145824453, ack 643160523.</summary>
    private static TcpPacket OldIncarnation(TcpFlow f, TcpFlags flags) => new(Server, false)
    {
        SrcPort = f.ServerPort,
        DstPort = f.ClientPort,
        Seq = 145_824_453,
        Ack = 643_160_523,
        Flags = flags,
        Window = 240,
        Mss = 1440,
        WindowScale = 0,
        Timestamp = true,
        TsVal = 1,
        TsEcr = 1,
    };

    private static KernelScenario TcpSynAckOldInSynSent() => Scenario("tcp_synack_old_in_syn_sent",
        "Kernel selftest conntrack_synack_old: in SYN_SENT a SYN/ACK of a previous incarnation arrives (ack " +
        "far from ISN+1), the client retransmits its SYN after 1 s, then the correct SYN/ACK (with a lower " +
        "seq than the old one) completes the handshake. Spec §4.14 #28-#29: old SYN/ACK INVALID (ACK over " +
        "upper bound; reply-side window state initialised anyway), retransmit NEW, correct SYN/ACK " +
        "accepted → SYN_RECV, ACK → ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40035, 8080, 0x1A2B_3C4D, 145_758_918, s_packetdrillClient, s_packetdrillServer);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Send(OldIncarnation(f, TcpFlags.Syn | TcpFlags.Ack), Invalid(SynSent))
                .Sleep(1)
                .Send(f.SynRetransmit(), NewOrig(SynSent))
                .Send(f.SynAck(), EstReply(SynRecv))
                .Send(f.Ack(Client), EstOrig(Established))
                .Send(f.Data(Client, 1), EstOrig(Established));
        });

    private static KernelScenario TcpSynChallengeAck() => Scenario("tcp_syn_challenge_ack",
        "Kernel selftest conntrack_syn_challenge_ack: the peer still has the old connection and answers the " +
        "SYN with a challenge ACK; the client resets with seq = that ACK's ack and reconnects. Spec §4.6 and " +
        "§4.14 #30: the challenge ACK is ignored (ESTABLISHED reply, SYN_SENT, sets SEEN_REPLY), the RST " +
        "matches last_ack → CLOSE, ESTABLISHED; the new SYN reopens → NEW SYN_SENT; handshake completes.",
        s =>
        {
            var f = new TcpFlow(false, 40036, 8080, 0x1A2B_3C4D, 0x0004_0A2F, s_packetdrillClient, s_packetdrillServer);
            s.Send(f.Syn(), NewOrig(SynSent))
                .Send(OldIncarnation(f, TcpFlags.Ack), EstReply(SynSent))
                .Send(f.Rst(Client, seq: 643_160_523), EstOrig(Close))
                .Send(f.SynRetransmit(), NewOrig(SynSent))
                .Send(f.SynAck(), EstReply(SynRecv))
                .Send(f.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSynInEstablishedResync() => Scenario("tcp_syn_in_established_resync",
        "The client lost its connection state (reboot) and connects again from the same port; the server " +
        "answers the new SYN with a SYN/ACK for it. Spec §4.6 and §4.14 #32: the SYN in ESTABLISHED is " +
        "ignored (ESTABLISHED, state kept), the SYN/ACK acking exactly that SYN resyncs → SYN_RECV; the " +
        "client's ACK → ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40037, 80, 0x23D9_5F10, 0x67A2_0C8B);
            s.Handshake(f)
                .Send(f.Data(Client, 200), EstOrig(Established))
                .Send(f.Data(Server, 700), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established));
            var g = new TcpFlow(false, 40037, 80, 0x0940_E7D2, 0x3B1C_56A9);
            s.Send(g.Syn(), EstOrig(Established))
                .Send(g.SynAck(), EstReply(SynRecv))
                .Send(g.Ack(Client), EstOrig(Established));
        });

    private static KernelScenario TcpSynAckReuseChallengeAck() => Scenario("tcp_synack_reuse_challenge_ack",
        "Kernel selftest conntrack_synack_reuse: a new SYN reaches an established connection, the server " +
        "answers with a challenge ACK, the client resets (seq = the challenge's ack) and retries its SYN. " +
        "Spec §4.14 #31: SYN ignored, challenge ACK ESTABLISHED, RST exact → CLOSE, retried SYN reopens → NEW " +
        "SYN_SENT, the server's SYN/ACK → SYN_RECV.",
        s =>
        {
            var f = new TcpFlow(false, 40038, 8080, 0x5C06_A1E4, 0x10F8_3D72);
            s.Handshake(f)
                .Send(f.Data(Client, 100), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established));
            var g = new TcpFlow(false, 40038, 8080, f.Nxt(Client) + 2000, 0x6A3E_9B05);
            s.Send(g.Syn(), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Rst(Client, seq: f.Nxt(Client), ack: f.Nxt(Server)), EstOrig(Close))
                .Send(g.SynRetransmit(), NewOrig(SynSent))
                .Send(g.SynAck(), EstReply(SynRecv));
        });

    private static KernelScenario TcpLastAckChallengeAck() => Scenario("tcp_last_ack_challenge_ack",
        "The client's last ACK is lost; from TIME_WAIT it reuses the port with a new SYN while the server " +
        "is in LAST_ACK; the server answers with a challenge ACK, the client resets and retries. Spec §4.6 " +
        "and §4.14 #33: SYN in LAST_ACK ignored (EXP_CHALLENGE_ACK noted), the challenge ACK must not count " +
        "as the last ACK → stays LAST_ACK, RST in a closing state → CLOSE, retried SYN → NEW SYN_SENT.",
        s =>
        {
            var f = new TcpFlow(false, 40039, 80, 0x4D2F_B068, 0x0C61_E39A);
            s.Handshake(f)
                .Send(f.Data(Client, 150), EstOrig(Established))
                .Send(f.Fin(Client), EstOrig(FinWait))
                .Send(f.Ack(Server), EstReply(CloseWait))
                .Send(f.Fin(Server), EstReply(LastAck));
            var g = new TcpFlow(false, 40039, 80, f.Nxt(Client) + 64_000, 0x2E97_4A15);
            s.Send(g.Syn(), EstOrig(LastAck))
                .Send(f.Ack(Server), EstReply(LastAck))
                .Send(f.Rst(Client, seq: f.Nxt(Client)), EstOrig(Close))
                .Send(g.SynRetransmit(), NewOrig(SynSent));
        });

    private static KernelScenario TcpBadChecksum() => Scenario("tcp_bad_checksum",
        "Segments with a corrupted TCP checksum, nf_conntrack_checksum = 1: a SYN, a SYN/ACK, a data " +
        "segment, each followed by a good copy. Spec §4.2 step 3: bad checksum at PRE_ROUTING → INVALID, " +
        "no entry created or changed.",
        s =>
        {
            var f = new TcpFlow(false, 40040, 80, 0x61E3_0A5C, 0x3F48_D2B7);
            s.Send(f.Syn() with { BadChecksum = true }, Invalid())
                .Send(f.SynRetransmit(), NewOrig(SynSent))
                .Send(f.SynAck() with { BadChecksum = true }, Invalid(SynSent))
                .Send(f.SynAck(), EstReply(SynRecv))
                .Send(f.Ack(Client), EstOrig(Established))
                .Send(f.Data(Client, 200, seq: f.Nxt(Client)) with { BadChecksum = true }, Invalid(Established))
                .Send(f.Data(Client, 200), EstOrig(Established));
        });

    private static KernelScenario TcpBadChecksumUnchecked() => Scenario("tcp_bad_checksum_unchecked",
        "The same corrupted handshake with nf_conntrack_checksum = 0. Spec §4.2 step 3: checksums are not " +
        "verified, so the handshake is tracked normally.",
        s =>
        {
            var f = new TcpFlow(false, 40041, 80, 0x0E7B_94C2, 0x5291_F6A3);
            s.Sysctl("nf_conntrack_checksum", 0)
                .Send(f.Syn() with { BadChecksum = true }, NewOrig(SynSent))
                .Send(f.SynAck() with { BadChecksum = true }, EstReply(SynRecv))
                .Send(f.Ack(Client) with { BadChecksum = true }, EstOrig(Established));
        });
    private static KernelScenario TcpSynAfterPeerRst() => Scenario("tcp_syn_after_peer_rst",
        "The server resets an established connection (exact seq → CLOSE) and the client reconnects at once " +
        "from the same port. Spec §4.6: a SYN in CLOSE reopens only if a side sent the first FIN or the last " +
        "RST came from the same direction; here neither, so the SYN is ignored (ESTABLISHED, stays CLOSE); " +
        "the server's SYN/ACK acking it resyncs → SYN_RECV; the ACK → ESTABLISHED.",
        s =>
        {
            var f = new TcpFlow(false, 40042, 80, 0x58A1_3C07, 0x0F9E_D246);
            s.Handshake(f)
                .Send(f.Data(Client, 300), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Rst(Server, ack: f.Nxt(Client)), EstReply(Close));
            var g = new TcpFlow(false, 40042, 80, f.Nxt(Client) + 90_000, 0x33C2_0E9A);
            s.Send(g.Syn(), EstOrig(Close))
                .Send(g.SynAck(), EstReply(SynRecv))
                .Send(g.Ack(Client), EstOrig(Established));
        });
}
