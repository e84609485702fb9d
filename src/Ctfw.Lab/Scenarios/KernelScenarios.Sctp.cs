using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.Expect;
using static Ctfw.Lab.Scenarios.SctpChunkTypes;
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
