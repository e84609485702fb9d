using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.Expect;
using static Ctfw.Packets.SctpChunkTypes;
using static Ctfw.Lab.Scenarios.SctpStates;

namespace Ctfw.Lab.Scenarios;

// SCTP and UDP-Lite (issue 17). kernel-conntrack.md leaves SCTP's state machine out of scope, so the "spec" verdict
// of each packet is what nf_conntrack_proto_sctp.c (6.18) gives by reading it: per-chunk state table,
// do_basic_checks, the out-of-the-blue rules of sctp_new, the §8.5 verification-tag checks.
// Tags: a packet carries the tag its receiver chose (the receiver's Initiate Tag).
public static partial class KernelScenarios
{
    private const uint ClientTag = 0x11111111, ServerTag = 0x22222222;
    private const uint ClientTag2 = 0x33333333, ServerTag2 = 0x44444444;

    private static SctpPacket Sctp(Network.Side from, ushort sport, ushort dport, uint vtag, params SctpChunk[] chunks) =>
        new(from, false, sport, dport, vtag, chunks);

    private static SctpChunk Chunk(byte type, byte flags = 0, uint initTag = 0) => new(type, flags, initTag);

    private static KernelScenario SctpAssociationLifecycle() => Scenario("sctp_association_lifecycle",
        "A Diameter-like association: INIT (vtag 0) makes the entry CLOSED, INIT ACK in reply COOKIE_WAIT, " +
        "COOKIE ECHO COOKIE_ECHOED, COOKIE ACK ESTABLISHED (ASSURED); DATA, SACK, HEARTBEAT and its ACK keep it; " +
        "a DATA with a wrong vtag is INVALID (§8.5); SHUTDOWN → SHUTDOWN_SENT, SHUTDOWN ACK in reply → " +
        "SHUTDOWN_ACK_SENT, SHUTDOWN COMPLETE → CLOSED; a new INIT on the same ports stays CLOSED (timeout not " +
        "renewed), and the new association runs to ESTABLISHED and ends with ABORT (CLOSED).",
        s => s
            .Send(Sctp(Client, 40001, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
            .Send(Sctp(Server, 3868, 40001, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
            .Send(Sctp(Client, 40001, 3868, ServerTag, Chunk(CookieEcho)), EstOrig(CookieEchoed))
            .Send(Sctp(Server, 3868, 40001, ClientTag, Chunk(CookieAck)), EstReply(Established))
            .Send(Sctp(Client, 40001, 3868, ServerTag, Chunk(Data, 0x03)), EstOrig(Established))
            .Send(Sctp(Server, 3868, 40001, ClientTag, Chunk(Sack)), EstReply(Established))
            .Send(Sctp(Server, 3868, 40001, ClientTag, Chunk(Heartbeat)), EstReply(Established))
            .Send(Sctp(Client, 40001, 3868, ServerTag, Chunk(HeartbeatAck)), EstOrig(Established))
            .Send(Sctp(Client, 40001, 3868, 0x0BADBAD0, Chunk(Data, 0x03)), Invalid(Established))
            .Send(Sctp(Client, 40001, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownSent))
            .Send(Sctp(Server, 3868, 40001, ClientTag, Chunk(ShutdownAck)), EstReply(ShutdownAckSent))
            .Send(Sctp(Client, 40001, 3868, ServerTag, Chunk(ShutdownComplete)), EstOrig(Closed))
            .Send(Sctp(Client, 40001, 3868, 0, Chunk(Init, initTag: ClientTag2)), EstOrig(Closed))
            .Send(Sctp(Server, 3868, 40001, ClientTag2, Chunk(InitAck, initTag: ServerTag2)), EstReply(CookieWait))
            .Send(Sctp(Client, 40001, 3868, ServerTag2, Chunk(CookieEcho), Chunk(Data, 0x03)), EstOrig(CookieEchoed))
            .Send(Sctp(Server, 3868, 40001, ClientTag2, Chunk(CookieAck), Chunk(Sack)), EstReply(Established))
            .Send(Sctp(Client, 40001, 3868, ServerTag2, Chunk(Abort)), EstOrig(Closed)));

    private static KernelScenario SctpStrayInitThenData() => Scenario("sctp_stray_init_then_data",
        "A stray INIT from the server side makes an entry server→client (CLOSED, the REPLY direction's tag = " +
        "the INIT's Initiate Tag). The client's DATA with the tag of an association that never existed is " +
        "INVALID (vtag check); one carrying the stray INIT's tag passes in CLOSED. A DATA on a port pair " +
        "without an entry is INVALID (sctp_new: DATA cannot start an entry).",
        s => s
            .Send(Sctp(Server, 3868, 40002, 0, Chunk(Init, initTag: ServerTag)), NewOrig(Closed))
            .Send(Sctp(Client, 40002, 3868, ClientTag, Chunk(Data, 0x03)), Invalid(Closed))
            .Send(Sctp(Client, 40002, 3868, ServerTag, Chunk(Data, 0x03)), EstReply(Closed))
            .Send(Sctp(Client, 40003, 3868, ServerTag, Chunk(Data, 0x03)), Invalid()));

    private static KernelScenario SctpInvalidChunks() => Scenario("sctp_invalid_chunks",
        "First packets the kernel refuses: INIT bundled with DATA (INIT must be alone), INIT with a non-zero vtag " +
        "(§8.5.1 A), ABORT / COOKIE ACK / SHUTDOWN COMPLETE out of the blue (§8.4), no chunk at all, a zero-length " +
        "chunk, a bad CRC32c. A SHUTDOWN ACK out of the blue does make an entry (SHUTDOWN_ACK_SENT, REPLY tag = its " +
        "vtag); the answering SHUTDOWN COMPLETE with the T bit must carry the ORIGINAL direction's tag (still 0: " +
        "INVALID), without T its own (CLOSED).",
        s => s
            .Send(Sctp(Client, 40010, 3868, 0, Chunk(Init, initTag: ClientTag), Chunk(Data, 0x03)), Invalid())
            .Send(Sctp(Client, 40011, 3868, ServerTag, Chunk(Init, initTag: ClientTag)), Invalid())
            .Send(Sctp(Client, 40012, 3868, ServerTag, Chunk(Abort)), Invalid())
            .Send(Sctp(Client, 40013, 3868, ServerTag, Chunk(CookieAck)), Invalid())
            .Send(Sctp(Client, 40014, 3868, ServerTag, Chunk(ShutdownComplete)), Invalid())
            .Send(Sctp(Client, 40015, 3868, ServerTag), Invalid())
            .Send(Sctp(Client, 40016, 3868, 0, new SctpChunk(Init, 0, ClientTag) { ZeroLength = true }), Invalid())
            .Send(Sctp(Client, 40017, 3868, 0, Chunk(Init, initTag: ClientTag)) with { BadChecksum = true }, Invalid())
            .Send(Sctp(Client, 40018, 3868, ServerTag, Chunk(ShutdownAck)), NewOrig(ShutdownAckSent))
            .Send(Sctp(Server, 3868, 40018, ServerTag, Chunk(ShutdownComplete, 0x01)), Invalid(ShutdownAckSent))
            .Send(Sctp(Server, 3868, 40018, ServerTag, Chunk(ShutdownComplete)), EstReply(Closed)));

    private static KernelScenario SctpHeartbeatPaths() => Scenario("sctp_heartbeat_paths",
        "Multihoming as far as the kernel goes. A HEARTBEAT first on a new address pair (a secondary path) makes " +
        "an entry HEARTBEAT_SENT with the ORIGINAL tag = its vtag; the HEARTBEAT ACK in reply sets the REPLY tag " +
        "and ESTABLISHED (ASSURED); DATA both ways then need those tags. A HEARTBEAT with an unknown vtag is let " +
        "through once without refreshing (the peer may have restarted); the other side's HEARTBEAT ACK with a new " +
        "vtag then replaces the tags; a second unknown-vtag HEARTBEAT ACK from the same side is INVALID.",
        s => s
            .Send(Sctp(Client, 40020, 3868, ServerTag, Chunk(Heartbeat)), NewOrig(HeartbeatSent))
            .Send(Sctp(Server, 3868, 40020, ClientTag, Chunk(HeartbeatAck)), EstReply(Established))
            .Send(Sctp(Client, 40020, 3868, ServerTag, Chunk(Data, 0x03)), EstOrig(Established))
            .Send(Sctp(Server, 3868, 40020, ClientTag, Chunk(Sack)), EstReply(Established))
            .Send(Sctp(Server, 3868, 40020, ClientTag2, Chunk(Heartbeat)), EstReply(Established))
            .Send(Sctp(Client, 40020, 3868, ServerTag2, Chunk(HeartbeatAck)), EstOrig(Established))
            .Send(Sctp(Client, 40020, 3868, ServerTag2, Chunk(Data, 0x03)), EstOrig(Established))
            .Send(Sctp(Client, 40020, 3868, ServerTag, Chunk(HeartbeatAck)), Invalid(Established)));

    private static KernelScenario Sctp6Association() => Scenario("sctp6_association",
        "The handshake, DATA and ABORT with the T bit (the peer's tag) over IPv6.",
        s => s
            .Send(new SctpPacket(Client, true, 40030, 2905, 0, [Chunk(Init, initTag: ClientTag)]), NewOrig(Closed))
            .Send(new SctpPacket(Server, true, 2905, 40030, ClientTag, [Chunk(InitAck, initTag: ServerTag)]), EstReply(CookieWait))
            .Send(new SctpPacket(Client, true, 40030, 2905, ServerTag, [Chunk(CookieEcho)]), EstOrig(CookieEchoed))
            .Send(new SctpPacket(Server, true, 2905, 40030, ClientTag, [Chunk(CookieAck)]), EstReply(Established))
            .Send(new SctpPacket(Client, true, 40030, 2905, ServerTag, [Chunk(Data, 0x03)]), EstOrig(Established))
            .Send(new SctpPacket(Client, true, 40030, 2905, ClientTag, [Chunk(Abort, 0x01)]), EstOrig(Closed)));

    private const string UdpLitePseudoHeader =
        "Linux conntrack checks UDP-Lite's checksum with protocol 17 in the pseudo-header (udplite_error passes " +
        "IPPROTO_UDP to nf_checksum_partial), not RFC 3828's 136: a correctly checksummed datagram is 'bad checksum'";

    private static KernelScenario UdpLiteNewReply() => Scenario("udplite_new_reply",
        "UDP-Lite (protocol 136) is tracked with UDP's timeouts (no sysctls of its own) but without UDP's 2 s " +
        "stream rule: the first packet after the reply gets the stream timeout and ASSURED (see the .diag.tsv). " +
        "NEW, then ESTABLISHED both ways, partial checksum coverage allowed. udplite_error makes INVALID a checksum of 0 " +
        "(mandatory), a coverage of 1..7 or beyond the datagram, and a wrong checksum; IPv6 the same. The kernel " +
        "verifies the checksum under a pseudo-header with protocol 17, so datagrams checksummed as RFC 3828 says " +
        "(protocol 136) are INVALID at a gateway that verifies checksums; the others here are checksummed with 17.",
        s => s
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32) { RfcChecksum = true }, NewOrig(), Invalid(), UdpLitePseudoHeader)
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32), NewOrig())
            .Send(new UdpLitePacket(Server, false, 5060, 40040, 32, Coverage: 8), EstReply())
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32) { ZeroChecksum = true }, Invalid())
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32, Coverage: 4), Invalid())
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32, Coverage: 41), Invalid())
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32, Coverage: 20) { BadChecksum = true }, Invalid())
            .Send(new UdpLitePacket(Client, false, 40040, 5060, 32, Coverage: 20), EstOrig())
            .Send(new UdpLitePacket(Client, true, 40041, 5060, 32) { RfcChecksum = true }, NewOrig(), Invalid(), UdpLitePseudoHeader)
            .Send(new UdpLitePacket(Client, true, 40041, 5060, 32), NewOrig())
            .Send(new UdpLitePacket(Server, true, 5060, 40041, 32, Coverage: 12), EstReply())
            .Send(new UdpLitePacket(Server, true, 5060, 40041, 32) { BadChecksum = true }, Invalid()));
}

// The rest of SCTP as the 6.18 state table has it (issue 17, part 2): every row of sctp_conntracks in the
// states it distinguishes, the chunk types outside the table, collisions, the §8.5.1 tag rules per chunk,
// multihoming, damaged packets and each state's timeout.
public static partial class KernelScenarios
{
    private const uint BadTag = 0x0BADBAD0;

    /// <summary>INIT, INIT ACK, COOKIE ECHO, COOKIE ACK on <paramref name="port"/> → 3868: the entry ends ESTABLISHED (ASSURED).</summary>
    private static ScenarioBuilder SctpHandshake(ScenarioBuilder s, ushort port, bool v6 = false) => s
        .Send(new SctpPacket(Client, v6, port, 3868, 0, [Chunk(Init, initTag: ClientTag)]), NewOrig(Closed))
        .Send(new SctpPacket(Server, v6, 3868, port, ClientTag, [Chunk(InitAck, initTag: ServerTag)]), EstReply(CookieWait))
        .Send(new SctpPacket(Client, v6, port, 3868, ServerTag, [Chunk(CookieEcho)]), EstOrig(CookieEchoed))
        .Send(new SctpPacket(Server, v6, 3868, port, ClientTag, [Chunk(CookieAck)]), EstReply(Established));

    private static SctpPacket Sctp6(Network.Side from, ushort sport, ushort dport, uint vtag, params SctpChunk[] chunks) =>
        new(from, true, sport, dport, vtag, chunks);

    private static KernelScenario SctpOtherChunkTypes() => Scenario("sctp_other_chunk_types",
        "Chunk types outside sctp_conntracks (sctp_new_state's default: the state stays) on an established " +
        "association, both ways: ECNE, CWR, FORWARD TSN, I-DATA, I-FORWARD TSN, ASCONF, ASCONF ACK, AUTH bundled " +
        "with DATA, RE-CONFIG, PAD, an unassigned type (63); ERROR in ESTABLISHED keeps it too (both rows). None of " +
        "them has a §8.5.1 rule of its own, so each must carry its direction's tag: with a wrong one INVALID.",
        s =>
        {
            SctpHandshake(s, 40050)
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(Ecne)), EstOrig(Established))
                .Send(Sctp(Server, 3868, 40050, ClientTag, Chunk(Cwr)), EstReply(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(ForwardTsn)), EstOrig(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(IData, 0x03)), EstOrig(Established))
                .Send(Sctp(Server, 3868, 40050, ClientTag, Chunk(IForwardTsn)), EstReply(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(Asconf)), EstOrig(Established))
                .Send(Sctp(Server, 3868, 40050, ClientTag, Chunk(AsconfAck)), EstReply(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(Auth), Chunk(Data, 0x03)), EstOrig(Established))
                .Send(Sctp(Server, 3868, 40050, ClientTag, Chunk(Reconf)), EstReply(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(Pad), Chunk(Sack)), EstOrig(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(63)), EstOrig(Established))
                .Send(Sctp(Client, 40050, 3868, ServerTag, Chunk(Error)), EstOrig(Established))
                .Send(Sctp(Server, 3868, 40050, ClientTag, Chunk(Error)), EstReply(Established))
                .Send(Sctp(Client, 40050, 3868, BadTag, Chunk(Asconf)), Invalid(Established))
                .Send(Sctp(Server, 3868, 40050, BadTag, Chunk(IData, 0x03)), Invalid(Established))
                .Send(Sctp(Client, 40050, 3868, BadTag, Chunk(ForwardTsn)), Invalid(Established));
        });

    private static KernelScenario SctpInitCollision() => Scenario("sctp_init_collision",
        "INIT collision (RFC 9260 §5.2.1): both ends send INIT; the server's, in the REPLY direction, keeps CLOSED " +
        "and sets the ORIGINAL tag. With both INITs seen, an INIT ACK must carry the tag of its sender's INIT (a " +
        "different one is INVALID); both INIT ACKs, both COOKIE ECHOs and both COOKIE ACKs then lead to ESTABLISHED. " +
        "A restart: a new INIT in ESTABLISHED stays ESTABLISHED but takes the REPLY tag from its Initiate Tag, so " +
        "the server's DATA with the old tag is INVALID until the new handshake. Second association: an INIT ACK " +
        "retransmitted with another tag replaces the tag (no INIT from that side, no collision), so the COOKIE ECHO " +
        "with the first tag is INVALID; an INIT ACK from the client that never saw an INIT from the server must " +
        "carry the tag the client's INIT announced.",
        s => s
            .Send(Sctp(Client, 40051, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
            .Send(Sctp(Server, 3868, 40051, 0, Chunk(Init, initTag: ServerTag)), EstReply(Closed))
            .Send(Sctp(Server, 3868, 40051, ClientTag, Chunk(InitAck, initTag: ServerTag2)), Invalid(Closed))
            .Send(Sctp(Server, 3868, 40051, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
            .Send(Sctp(Client, 40051, 3868, ServerTag, Chunk(InitAck, initTag: ClientTag)), EstOrig(CookieWait))
            .Send(Sctp(Client, 40051, 3868, ServerTag, Chunk(CookieEcho)), EstOrig(CookieEchoed))
            .Send(Sctp(Server, 3868, 40051, ClientTag, Chunk(CookieEcho)), EstReply(CookieEchoed))
            .Send(Sctp(Server, 3868, 40051, ClientTag, Chunk(CookieAck)), EstReply(Established))
            .Send(Sctp(Client, 40051, 3868, ServerTag, Chunk(CookieAck)), EstOrig(Established))
            .Send(Sctp(Client, 40051, 3868, ServerTag, Chunk(Data, 0x03)), EstOrig(Established))
            .Send(Sctp(Client, 40051, 3868, 0, Chunk(Init, initTag: ClientTag2)), EstOrig(Established))
            .Send(Sctp(Server, 3868, 40051, ClientTag, Chunk(Data, 0x03)), Invalid(Established))
            .Send(Sctp(Server, 3868, 40051, ClientTag2, Chunk(InitAck, initTag: ServerTag2)), EstReply(Established))
            .Send(Sctp(Client, 40051, 3868, ServerTag2, Chunk(CookieEcho)), EstOrig(Established))
            .Send(Sctp(Server, 3868, 40051, ClientTag2, Chunk(CookieAck)), EstReply(Established))
            .Send(Sctp(Client, 40051, 3868, ServerTag2, Chunk(Data, 0x03)), EstOrig(Established))
            .Send(Sctp(Client, 40052, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
            .Send(Sctp(Server, 3868, 40052, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
            .Send(Sctp(Server, 3868, 40052, ClientTag, Chunk(InitAck, initTag: ServerTag2)), EstReply(CookieWait))
            .Send(Sctp(Client, 40052, 3868, ServerTag, Chunk(CookieEcho)), Invalid(CookieWait))
            .Send(Sctp(Client, 40052, 3868, ServerTag2, Chunk(CookieEcho)), EstOrig(CookieEchoed))
            .Send(Sctp(Client, 40052, 3868, ServerTag2, Chunk(InitAck, initTag: 0x55555555)), Invalid(CookieEchoed)));

    private static KernelScenario SctpShutdownCollision() => Scenario("sctp_shutdown_collision",
        "Both ends SHUTDOWN at once: the client's makes SHUTDOWN_SENT, the server's keeps it; each answers with " +
        "SHUTDOWN ACK (SHUTDOWN_ACK_SENT), the server's SHUTDOWN COMPLETE closes, the client's in CLOSED keeps it. " +
        "Second association, the server shuts down: SHUTDOWN in REPLY makes SHUTDOWN_RECD, DATA and the client's own " +
        "SHUTDOWN keep it, its SHUTDOWN ACK makes SHUTDOWN_ACK_SENT, and the server's SHUTDOWN COMPLETE with the " +
        "T bit (tag of the ORIGINAL direction) closes.",
        s =>
        {
            SctpHandshake(s, 40053)
                .Send(Sctp(Client, 40053, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownSent))
                .Send(Sctp(Server, 3868, 40053, ClientTag, Chunk(Shutdown)), EstReply(ShutdownSent))
                .Send(Sctp(Client, 40053, 3868, ServerTag, Chunk(ShutdownAck)), EstOrig(ShutdownAckSent))
                .Send(Sctp(Server, 3868, 40053, ClientTag, Chunk(ShutdownAck)), EstReply(ShutdownAckSent))
                .Send(Sctp(Server, 3868, 40053, ClientTag, Chunk(ShutdownComplete)), EstReply(Closed))
                .Send(Sctp(Client, 40053, 3868, ServerTag, Chunk(ShutdownComplete)), EstOrig(Closed));
            SctpHandshake(s, 40054)
                .Send(Sctp(Server, 3868, 40054, ClientTag, Chunk(Shutdown)), EstReply(ShutdownRecd))
                .Send(Sctp(Client, 40054, 3868, ServerTag, Chunk(Data, 0x03)), EstOrig(ShutdownRecd))
                .Send(Sctp(Client, 40054, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownRecd))
                .Send(Sctp(Client, 40054, 3868, ServerTag, Chunk(ShutdownAck)), EstOrig(ShutdownAckSent))
                .Send(Sctp(Server, 3868, 40054, ServerTag, Chunk(ShutdownComplete, 0x01)), EstReply(Closed));
        });

    private static KernelScenario SctpChunksInOtherStates() => Scenario("sctp_chunks_in_other_states",
        "Table cells off the usual path. COOKIE_WAIT keeps on SHUTDOWN ACK (which has no tag check at all: a bogus " +
        "tag passes), SHUTDOWN, HEARTBEAT and its ACK; an ERROR in reply to the COOKIE ECHO (stale cookie) closes " +
        "from COOKIE_ECHOED, an ERROR from the client in CLOSED keeps it. A COOKIE ECHO from the server side and " +
        "the COOKIE ACK from the client side also establish. In ESTABLISHED a SHUTDOWN ACK and a SHUTDOWN COMPLETE " +
        "change nothing; an INIT in SHUTDOWN_SENT closes. In SHUTDOWN_RECD the server's INIT keeps it, the " +
        "client's closes, and the INIT ACK that answers it (collision: both INITs seen) is COOKIE_WAIT.",
        s =>
        {
            s.Send(Sctp(Client, 40056, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40056, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
                .Send(Sctp(Client, 40056, 3868, BadTag, Chunk(ShutdownAck)), EstOrig(CookieWait))
                .Send(Sctp(Client, 40056, 3868, ServerTag, Chunk(Shutdown)), EstOrig(CookieWait))
                .Send(Sctp(Client, 40056, 3868, ServerTag, Chunk(CookieEcho)), EstOrig(CookieEchoed))
                .Send(Sctp(Server, 3868, 40056, ClientTag, Chunk(Error)), EstReply(Closed))
                .Send(Sctp(Client, 40056, 3868, ServerTag, Chunk(Error)), EstOrig(Closed));
            s.Send(Sctp(Client, 40057, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40057, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
                .Send(Sctp(Server, 3868, 40057, ClientTag, Chunk(Heartbeat)), EstReply(CookieWait))
                .Send(Sctp(Client, 40057, 3868, ServerTag, Chunk(HeartbeatAck)), EstOrig(CookieWait))
                .Send(Sctp(Server, 3868, 40057, ClientTag, Chunk(CookieEcho)), EstReply(CookieEchoed))
                .Send(Sctp(Client, 40057, 3868, ServerTag, Chunk(CookieAck)), EstOrig(Established))
                .Send(Sctp(Client, 40057, 3868, ServerTag, Chunk(ShutdownAck)), EstOrig(Established))
                .Send(Sctp(Server, 3868, 40057, ClientTag, Chunk(ShutdownComplete)), EstReply(Established))
                .Send(Sctp(Client, 40057, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownSent))
                .Send(Sctp(Client, 40057, 3868, 0, Chunk(Init, initTag: ClientTag2)), EstOrig(Closed));
            SctpHandshake(s, 40058)
                .Send(Sctp(Server, 3868, 40058, ClientTag, Chunk(Shutdown)), EstReply(ShutdownRecd))
                .Send(Sctp(Server, 3868, 40058, 0, Chunk(Init, initTag: ServerTag2)), EstReply(ShutdownRecd))
                .Send(Sctp(Client, 40058, 3868, 0, Chunk(Init, initTag: ClientTag2)), EstOrig(Closed))
                .Send(Sctp(Server, 3868, 40058, ClientTag2, Chunk(InitAck, initTag: ServerTag2)), EstReply(CookieWait));
        });

    private static KernelScenario SctpCookieEchoVtag() => Scenario("sctp_cookie_echo_vtag",
        "COOKIE ECHO (§8.5.1 D: the tag of the INIT ACK) and COOKIE ACK. In COOKIE_WAIT a COOKIE ECHO with the " +
        "sender's own tag is INVALID, one after DATA too (COOKIE ECHO must come first); bundled with DATA after it, " +
        "COOKIE_ECHOED. A COOKIE ACK after a SACK, or with a wrong tag (no rule of its own: the general check), is " +
        "INVALID; first and with the right tag, ESTABLISHED. A retransmitted COOKIE ECHO keeps ESTABLISHED, with a " +
        "wrong tag it is INVALID. Out of the blue a COOKIE ECHO may start an entry, but its tag must then equal the " +
        "ORIGINAL tag, still 0: with a real tag INVALID, with 0 NEW (CLOSED).",
        s => s
            .Send(Sctp(Client, 40059, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
            .Send(Sctp(Server, 3868, 40059, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
            .Send(Sctp(Client, 40059, 3868, ClientTag, Chunk(CookieEcho)), Invalid(CookieWait))
            .Send(Sctp(Client, 40059, 3868, ServerTag, Chunk(Data, 0x03), Chunk(CookieEcho)), Invalid(CookieWait))
            .Send(Sctp(Client, 40059, 3868, ServerTag, Chunk(CookieEcho), Chunk(Data, 0x03)), EstOrig(CookieEchoed))
            .Send(Sctp(Server, 3868, 40059, ClientTag, Chunk(Sack), Chunk(CookieAck)), Invalid(CookieEchoed))
            .Send(Sctp(Server, 3868, 40059, BadTag, Chunk(CookieAck)), Invalid(CookieEchoed))
            .Send(Sctp(Server, 3868, 40059, ClientTag, Chunk(CookieAck), Chunk(Sack)), EstReply(Established))
            .Send(Sctp(Client, 40059, 3868, ServerTag, Chunk(CookieEcho)), EstOrig(Established))
            .Send(Sctp(Client, 40059, 3868, BadTag, Chunk(CookieEcho)), Invalid(Established))
            .Send(Sctp(Client, 40060, 3868, ServerTag, Chunk(CookieEcho)), Invalid())
            .Send(Sctp(Client, 40061, 3868, 0, Chunk(CookieEcho)), NewOrig(Closed)));

    private static KernelScenario SctpAbortTBit() => Scenario("sctp_abort_t_bit",
        "ABORT (§8.5.1 B): without the T bit it carries the receiver's tag, with T the sender's own. From the " +
        "server in ESTABLISHED: a bogus tag without T and the client's tag with T are INVALID, its own tag with T " +
        "closes. An ABORT bundled after DATA closes. The server rejecting an INIT with ABORT (the INIT's Initiate " +
        "Tag, no T) closes; the client aborting in COOKIE_WAIT with T (its own tag) closes. With T in reply to an " +
        "INIT the ORIGINAL tag is still 0, so tag 0 passes.",
        s =>
        {
            SctpHandshake(s, 40062)
                .Send(Sctp(Server, 3868, 40062, BadTag, Chunk(Abort)), Invalid(Established))
                .Send(Sctp(Server, 3868, 40062, ClientTag, Chunk(Abort, 0x01)), Invalid(Established))
                .Send(Sctp(Server, 3868, 40062, ServerTag, Chunk(Abort, 0x01)), EstReply(Closed));
            SctpHandshake(s, 40063)
                .Send(Sctp(Server, 3868, 40063, ClientTag, Chunk(Data, 0x03), Chunk(Abort)), EstReply(Closed));
            s.Send(Sctp(Client, 40064, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40064, ClientTag, Chunk(Abort)), EstReply(Closed))
                .Send(Sctp(Client, 40065, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40065, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
                .Send(Sctp(Client, 40065, 3868, ClientTag, Chunk(Abort, 0x01)), EstOrig(Closed))
                .Send(Sctp(Client, 40066, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40066, 0, Chunk(Abort, 0x01)), EstReply(Closed));
        });

    private static KernelScenario SctpMultihomingSecondaryPath() => Scenario("sctp_multihoming_secondary_path",
        "A multihomed association: the primary path over IPv4, a secondary over the same hosts' IPv6 addresses " +
        "(same ports, same tags), which conntrack sees as an unrelated tuple. The server's HEARTBEAT first on the " +
        "secondary path makes an entry HEARTBEAT_SENT (its vtag the ORIGINAL tag); the client's HEARTBEAT ACK sets " +
        "the REPLY tag and ESTABLISHED; DATA and SACK then flow there with the tags checked; a HEARTBEAT bundled " +
        "with DATA under a wrong tag is INVALID. The primary path shuts down (CLOSED); the secondary entry does not " +
        "know and keeps ESTABLISHED for its heartbeats. A HEARTBEAT ACK may start an entry too (CLOSED). On a " +
        "HEARTBEAT_SENT entry an INIT in the REPLY direction is an invalid transition, DATA with tag 0 passes (the " +
        "REPLY tag is not known yet), and ABORT closes.",
        s =>
        {
            SctpHandshake(s, 40070)
                .Send(Sctp6(Server, 3868, 40070, ClientTag, Chunk(Heartbeat)), NewOrig(HeartbeatSent))
                .Send(Sctp6(Client, 40070, 3868, ServerTag, Chunk(HeartbeatAck)), EstReply(Established))
                .Send(Sctp6(Client, 40070, 3868, ServerTag, Chunk(Data, 0x03)), EstReply(Established))
                .Send(Sctp6(Server, 3868, 40070, ClientTag, Chunk(Sack)), EstOrig(Established))
                .Send(Sctp6(Client, 40070, 3868, BadTag, Chunk(Data, 0x03)), Invalid(Established))
                .Send(Sctp6(Client, 40070, 3868, BadTag, Chunk(Heartbeat), Chunk(Data, 0x03)), Invalid(Established))
                .Send(Sctp(Client, 40070, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownSent))
                .Send(Sctp(Server, 3868, 40070, ClientTag, Chunk(ShutdownAck)), EstReply(ShutdownAckSent))
                .Send(Sctp(Client, 40070, 3868, ServerTag, Chunk(ShutdownComplete)), EstOrig(Closed))
                .Send(Sctp6(Server, 3868, 40070, ClientTag, Chunk(Heartbeat)), EstOrig(Established))
                .Send(Sctp6(Client, 40070, 3868, ServerTag, Chunk(HeartbeatAck)), EstReply(Established))
                .Send(Sctp6(Client, 40071, 3868, ServerTag, Chunk(HeartbeatAck)), NewOrig(Closed))
                .Send(Sctp6(Server, 3868, 40072, ClientTag, Chunk(Heartbeat)), NewOrig(HeartbeatSent))
                .Send(Sctp6(Client, 40072, 3868, 0, Chunk(Init, initTag: ClientTag2)), Invalid(HeartbeatSent))
                .Send(Sctp6(Client, 40072, 3868, 0, Chunk(Data, 0x03)), EstReply(HeartbeatSent))
                .Send(Sctp6(Server, 3868, 40072, ClientTag, Chunk(Abort)), EstOrig(Closed));
        });

    private static KernelScenario SctpTruncatedAndCrc() => Scenario("sctp_truncated_and_crc",
        "Damaged packets. The chunk walk stops where the packet ends, so a DATA whose length runs past the end, " +
        "or a length of 3 (the next 'chunk' starts inside its value and runs past the end), passes on an " +
        "established association. A bad CRC32c is INVALID both ways and changes nothing. An INIT cut inside its " +
        "16-byte fixed part cannot start an entry (its Initiate Tag is unreadable); an INIT ACK cut the same way " +
        "is INVALID and the whole one after it COOKIE_WAIT. An INIT that claims more bytes than it has, with its " +
        "fixed part whole, starts one.",
        s =>
        {
            SctpHandshake(s, 40080)
                .Send(Sctp(Client, 40080, 3868, ServerTag, new SctpChunk(Data, 0x03) { LengthField = 64 }), EstOrig(Established))
                .Send(Sctp(Client, 40080, 3868, ServerTag, new SctpChunk(Data, 0x03) { LengthField = 3 }), EstOrig(Established))
                .Send(Sctp(Client, 40080, 3868, ServerTag, Chunk(Data, 0x03)) with { BadChecksum = true }, Invalid(Established))
                .Send(Sctp(Server, 3868, 40080, ClientTag, Chunk(Sack)) with { BadChecksum = true }, Invalid(Established))
                .Send(Sctp(Server, 3868, 40080, ClientTag, Chunk(Sack)), EstReply(Established));
            s.Send(Sctp(Client, 40081, 3868, 0, new SctpChunk(Init, 0, ClientTag) { ValueBytes = 8 }), Invalid())
                .Send(Sctp(Client, 40082, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40082, ClientTag, new SctpChunk(InitAck, 0, ServerTag) { ValueBytes = 8 }), Invalid(Closed))
                .Send(Sctp(Server, 3868, 40082, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
                .Send(Sctp(Client, 40083, 3868, 0, new SctpChunk(Init, 0, ClientTag) { LengthField = 200 }), NewOrig(Closed));
        });

    private static KernelScenario SctpBadCrcUnchecked() => Scenario("sctp_bad_crc_unchecked",
        "nf_conntrack_checksum = 0: sctp_error does not verify the CRC32c, so a handshake with bad CRCs is tracked.",
        s => s
            .Sysctl("nf_conntrack_checksum", 0)
            .Send(Sctp(Client, 40085, 3868, 0, Chunk(Init, initTag: ClientTag)) with { BadChecksum = true }, NewOrig(Closed))
            .Send(Sctp(Server, 3868, 40085, ClientTag, Chunk(InitAck, initTag: ServerTag)) with { BadChecksum = true }, EstReply(CookieWait)));

    private static KernelScenario SctpTimeoutsPerState() => Scenario("sctp_timeouts_per_state",
        "Each state's timeout: every nf_conntrack_sctp_timeout_* at 4 s but ESTABLISHED's at 60. One association " +
        "is brought to each of CLOSED, COOKIE_WAIT, COOKIE_ECHOED, ESTABLISHED, SHUTDOWN_SENT, SHUTDOWN_RECD, " +
        "SHUTDOWN_ACK_SENT and HEARTBEAT_SENT; after 5 s idle a DATA with the right tag finds only the ESTABLISHED " +
        "one (the others are INVALID: DATA cannot start an entry). One more INIT is retransmitted 2.5 s after the " +
        "first (NEW: still no reply): in CLOSED that does not renew the timeout, so 2.5 s later its entry is gone too.",
        s =>
        {
            s.Sysctl("nf_conntrack_sctp_timeout_closed", 4)
                .Sysctl("nf_conntrack_sctp_timeout_cookie_wait", 4)
                .Sysctl("nf_conntrack_sctp_timeout_cookie_echoed", 4)
                .Sysctl("nf_conntrack_sctp_timeout_established", 60)
                .Sysctl("nf_conntrack_sctp_timeout_shutdown_sent", 4)
                .Sysctl("nf_conntrack_sctp_timeout_shutdown_recd", 4)
                .Sysctl("nf_conntrack_sctp_timeout_shutdown_ack_sent", 4)
                .Sysctl("nf_conntrack_sctp_timeout_heartbeat_sent", 4)
                .Send(Sctp(Client, 40090, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Client, 40091, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40091, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
                .Send(Sctp(Client, 40092, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Send(Sctp(Server, 3868, 40092, ClientTag, Chunk(InitAck, initTag: ServerTag)), EstReply(CookieWait))
                .Send(Sctp(Client, 40092, 3868, ServerTag, Chunk(CookieEcho)), EstOrig(CookieEchoed))
                .Send(Sctp6(Server, 3868, 40097, ClientTag, Chunk(Heartbeat)), NewOrig(HeartbeatSent));
            SctpHandshake(s, 40093);
            SctpHandshake(s, 40094).Send(Sctp(Client, 40094, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownSent));
            SctpHandshake(s, 40095).Send(Sctp(Server, 3868, 40095, ClientTag, Chunk(Shutdown)), EstReply(ShutdownRecd));
            SctpHandshake(s, 40096)
                .Send(Sctp(Client, 40096, 3868, ServerTag, Chunk(Shutdown)), EstOrig(ShutdownSent))
                .Send(Sctp(Server, 3868, 40096, ClientTag, Chunk(ShutdownAck)), EstReply(ShutdownAckSent))
                .Send(Sctp(Client, 40098, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Sleep(2.5)
                .Send(Sctp(Client, 40098, 3868, 0, Chunk(Init, initTag: ClientTag)), NewOrig(Closed))
                .Sleep(2.5);
            foreach (ushort port in (ReadOnlySpan<ushort>)[40090, 40091, 40092, 40094, 40095, 40096])
                s.Send(Sctp(Client, port, 3868, port is 40090 ? 0 : ServerTag, Chunk(Data, 0x03)), Invalid());
            s.Send(Sctp(Client, 40093, 3868, ServerTag, Chunk(Data, 0x03)), EstOrig(Established))
                .Send(Sctp6(Server, 3868, 40097, ClientTag, Chunk(Data, 0x03)), Invalid())
                .Send(Sctp(Client, 40098, 3868, 0, Chunk(Data, 0x03)), Invalid());
        });

    private static KernelScenario UdpLiteTimeouts() => Scenario("udplite_timeouts",
        "UDP-Lite under UDP's timeouts (nf_conntrack_udp_timeout 2 s, _stream 6 s), partial checksum coverage " +
        "throughout. A one-way flow expires after 2 s: its next datagram is NEW. A flow that had a reply and one " +
        "more datagram is ASSURED with the stream timeout, so it outlives 3.5 s idle; 7.5 s later it is gone too.",
        s => s
            .Sysctl("nf_conntrack_udp_timeout", 2)
            .Sysctl("nf_conntrack_udp_timeout_stream", 6)
            .Send(new UdpLitePacket(Client, false, 40100, 5060, 32, Coverage: 8), NewOrig())
            .Send(new UdpLitePacket(Client, false, 40101, 5060, 32, Coverage: 12), NewOrig())
            .Send(new UdpLitePacket(Server, false, 5060, 40101, 32, Coverage: 8), EstReply())
            .Send(new UdpLitePacket(Client, false, 40101, 5060, 32, Coverage: 20), EstOrig())
            .Sleep(3.5)
            .Send(new UdpLitePacket(Client, false, 40100, 5060, 32, Coverage: 8), NewOrig())
            .Send(new UdpLitePacket(Server, false, 5060, 40101, 32, Coverage: 8), EstReply())
            .Sleep(7.5)
            .Send(new UdpLitePacket(Client, false, 40101, 5060, 32, Coverage: 12), NewOrig())
            .Send(new UdpLitePacket(Client, false, 40100, 5060, 32, Coverage: 8), NewOrig()));
}
