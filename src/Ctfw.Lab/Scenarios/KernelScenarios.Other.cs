using static Ctfw.Lab.Network.Side;
using static Ctfw.Lab.Scenarios.TcpStates;
using static Ctfw.Lab.Scenarios.Expect;

namespace Ctfw.Lab.Scenarios;

// UDP (§7), ICMP/ICMPv6 (§8), IPv6 TCP, generic protocols (§9).
public static partial class KernelScenarios
{
    private const byte IcmpEchoReply = 0;
    private const byte IcmpDestUnreachable = 3;
    private const byte IcmpEchoRequest = 8;
    private const byte IcmpTimeExceeded = 11;
    private const byte Icmpv6DestUnreachable = 1;
    private const byte Icmpv6PacketTooBig = 2;
    private const byte Icmpv6EchoRequest = 128;
    private const byte Icmpv6EchoReply = 129;

    private static KernelScenario UdpNewReplyStream() => Scenario("udp_new_reply_stream",
        "A DNS-like exchange, then the client speaks again after 3 s. Spec §7: first packet NEW, the answer " +
        "ESTABLISHED (reply), later packets ESTABLISHED; the packet after > 2 s switches the entry to the " +
        "stream timeout and sets ASSURED (visible in the .diag.tsv conntrack line).",
        s => s
            .BurstsWithin(1) // the first three packets must stay clear of the 2 s stream rule
            .Send(new UdpPacket(Client, false, 40101, 53, 40), NewOrig())
            .Send(new UdpPacket(Server, false, 53, 40101, 120), EstReply())
            .Send(new UdpPacket(Client, false, 40101, 53, 40), EstOrig())
            .Sleep(3)
            .Send(new UdpPacket(Client, false, 40101, 53, 40), EstOrig())
            .Send(new UdpPacket(Server, false, 53, 40101, 120), EstReply()));

    private static KernelScenario UdpExpiry() => Scenario("udp_expiry",
        "nf_conntrack_udp_timeout = 2; request, answer, idle 3 s, request again. Spec §7/§2 step 5: the " +
        "entry expired (never stream), so the second request is NEW again.",
        s => s
            .Sysctl("nf_conntrack_udp_timeout", 2)
            .Send(new UdpPacket(Client, false, 40102, 123, 48), NewOrig())
            .Send(new UdpPacket(Server, false, 123, 40102, 48), EstReply())
            .Sleep(3)
            .Send(new UdpPacket(Client, false, 40102, 123, 48), NewOrig())
            .Send(new UdpPacket(Server, false, 123, 40102, 48), EstReply()));

    private static KernelScenario IcmpEcho() => Scenario("icmp_echo",
        "ping: request, reply, second request with the same id, its reply. Spec §8.3: request NEW, reply " +
        "ESTABLISHED (reply); the entry is not deleted after the reply, so the next request is ESTABLISHED.",
        s => s
            .Send(new IcmpPacket(Client, false, IcmpEchoRequest, 0, 0x4D2, 1), NewOrig())
            .Send(new IcmpPacket(Server, false, IcmpEchoReply, 0, 0x4D2, 1), EstReply())
            .Send(new IcmpPacket(Client, false, IcmpEchoRequest, 0, 0x4D2, 2), EstOrig())
            .Send(new IcmpPacket(Server, false, IcmpEchoReply, 0, 0x4D2, 2), EstReply()));

    private static KernelScenario IcmpEchoReplyWithoutRequest() => Scenario("icmp_echo_reply_without_request",
        "Echo replies nobody asked for, from each side. Spec §8.3: only query types may create an entry → INVALID.",
        s => s
            .Send(new IcmpPacket(Server, false, IcmpEchoReply, 0, 0x777, 1), Invalid())
            .Send(new IcmpPacket(Client, false, IcmpEchoReply, 0, 0x778, 1), Invalid()));

    private static KernelScenario IcmpExpiry() => Scenario("icmp_expiry",
        "nf_conntrack_icmp_timeout = 2; ping, idle 3 s, ping again with the same id. Spec §8.3: the entry " +
        "expired, so the second request is NEW again.",
        s => s
            .Sysctl("nf_conntrack_icmp_timeout", 2)
            .Send(new IcmpPacket(Client, false, IcmpEchoRequest, 0, 0x1F00, 1), NewOrig())
            .Send(new IcmpPacket(Server, false, IcmpEchoReply, 0, 0x1F00, 1), EstReply())
            .Sleep(3)
            .Send(new IcmpPacket(Client, false, IcmpEchoRequest, 0, 0x1F00, 2), NewOrig())
            .Send(new IcmpPacket(Server, false, IcmpEchoReply, 0, 0x1F00, 2), EstReply()));

    private static KernelScenario IcmpPortUnreachableForUdp() => Scenario("icmp_port_unreachable_for_udp",
        "A UDP packet to a closed port, answered by ICMP port unreachable from the server quoting it, then " +
        "the client retries. Spec §8.1 step 5: the error matches the entry's reply tuple → RELATED (reply); " +
        "it does not set SEEN_REPLY, so the retry is still NEW.",
        s =>
        {
            var probe = new UdpPacket(Client, false, 40103, 5353, 30);
            s.Send(probe, NewOrig())
                .Send(new IcmpErrorPacket(Server, false, IcmpDestUnreachable, 3, probe), RelReply())
                .Send(probe, NewOrig());
        });

    private static KernelScenario IcmpTimeExceededForTcp() => Scenario("icmp_time_exceeded_for_tcp",
        "A router-style time-exceeded error (sent from the server side) quoting a data segment of an " +
        "established TCP connection. Spec §8.1 step 5: RELATED (reply); the connection is unaffected.",
        s =>
        {
            var f = new TcpFlow(false, 40104, 80, 0x2D64_B81E, 0x71C3_09F5);
            s.Handshake(f);
            TcpPacket data = f.Data(Client, 400);
            s.Send(data, EstOrig(Established))
                .Send(new IcmpErrorPacket(Server, false, IcmpTimeExceeded, 0, data), RelReply())
                .Send(f.Data(Client, 400), EstOrig(Established));
        });

    private static KernelScenario IcmpErrorForUntrackedFlow() => Scenario("icmp_error_for_untracked_flow",
        "ICMP errors quoting packets of flows that were never seen (UDP port unreachable, TCP time " +
        "exceeded). Spec §8.1 step 5: inner tuple not found → INVALID.",
        s => s
            .Send(new IcmpErrorPacket(Server, false, IcmpDestUnreachable, 3, new UdpPacket(Client, false, 40105, 161, 40)), Invalid())
            .Send(new IcmpErrorPacket(Server, false, IcmpTimeExceeded, 0,
                new TcpFlow(false, 40106, 80, 0x5F0E_3A21, 0).Syn()), Invalid()));

    private static KernelScenario IcmpErrorOriginalDirection() => Scenario("icmp_error_original_direction",
        "The client answers the server's UDP reply with port unreachable (its socket closed). Spec §8.1 " +
        "step 5: the quoted packet is a reply, so the inverted inner tuple is the ORIGINAL tuple → RELATED (original).",
        s =>
        {
            var answer = new UdpPacket(Server, false, 53, 40107, 90);
            s.Send(new UdpPacket(Client, false, 40107, 53, 40), NewOrig())
                .Send(answer, EstReply())
                .Send(new IcmpErrorPacket(Client, false, IcmpDestUnreachable, 3, answer), RelOrig());
        });

    private static KernelScenario IcmpErrorOuterDaddrMismatch() => Scenario("icmp_error_outer_daddr_mismatch",
        "A forged error: the client sends port unreachable to the server quoting its own client→server " +
        "packet. The inner tuple matches the entry (as its reply tuple), but the error is addressed to the " +
        "server, not to the reply tuple's destination. Spec §8.1 step 5 (outer daddr != inner) → INVALID.",
        s =>
        {
            var probe = new UdpPacket(Client, false, 40108, 514, 60);
            s.Send(probe, NewOrig())
                .Send(new IcmpErrorPacket(Client, false, IcmpDestUnreachable, 3, probe), Invalid());
        });

    private static KernelScenario Tcp6HandshakeDataClose() => Scenario("tcp6_handshake_data_close",
        "IPv6 connection: handshake, request/response, client FIN, server FIN/ACK that also acks it, last " +
        "ACK. Spec §4.4 (family-independent): FIN_WAIT, then REPLY FIN in FIN_WAIT → LAST_ACK, then TIME_WAIT.",
        s =>
        {
            var f = new TcpFlow(true, 40201, 443, 0x7E05_C3A1, 0x2B94_60DF);
            s.Handshake(f)
                .Send(f.Data(Client, 517), EstOrig(Established))
                .Send(f.Ack(Server), EstReply(Established))
                .Send(f.Data(Server, 1428), EstReply(Established))
                .Send(f.Ack(Client), EstOrig(Established))
                .Send(f.Fin(Client), EstOrig(FinWait))
                .Send(f.Fin(Server), EstReply(LastAck))
                .Send(f.Ack(Client), EstOrig(TimeWait));
        });

    private static KernelScenario Udp6NewReply() => Scenario("udp6_new_reply",
        "IPv6 UDP request, answer, second request. Spec §7: NEW, ESTABLISHED (reply), ESTABLISHED.",
        s => s
            .Send(new UdpPacket(Client, true, 40202, 53, 40), NewOrig())
            .Send(new UdpPacket(Server, true, 53, 40202, 140), EstReply())
            .Send(new UdpPacket(Client, true, 40202, 53, 40), EstOrig()));

    private static KernelScenario Icmpv6Echo() => Scenario("icmpv6_echo",
        "ping6: request, reply, second request; then an echo reply nobody asked for. Spec §8.2/§8.3: " +
        "128 NEW, 129 ESTABLISHED (reply), 128 ESTABLISHED; unsolicited 129 → INVALID.",
        s => s
            .Send(new IcmpPacket(Client, true, Icmpv6EchoRequest, 0, 0x2A1, 1), NewOrig())
            .Send(new IcmpPacket(Server, true, Icmpv6EchoReply, 0, 0x2A1, 1), EstReply())
            .Send(new IcmpPacket(Client, true, Icmpv6EchoRequest, 0, 0x2A1, 2), EstOrig())
            .Send(new IcmpPacket(Server, true, Icmpv6EchoReply, 0, 0x2A2, 1), Invalid()));

    private static KernelScenario Icmpv6PacketTooBigForTcp() => Scenario("icmpv6_packet_too_big_for_tcp",
        "IPv6 TCP: a full-size data segment is answered by Packet Too Big (MTU 1280) from the server side, " +
        "then the client resends smaller. Spec §8.2 step 4: RELATED (reply); the connection is unaffected.",
        s =>
        {
            var f = new TcpFlow(true, 40203, 443, 0x45A0_1E7C, 0x1C3F_8B26);
            s.Handshake(f);
            uint seq = f.Nxt(Client);
            TcpPacket big = f.Data(Client, 1428, seq: seq);
            s.Send(big, EstOrig(Established))
                .Send(new IcmpErrorPacket(Server, true, Icmpv6PacketTooBig, 0, big, Rest: 1280), RelReply())
                .Send(f.Data(Client, 1208), EstOrig(Established));
        });

    private static KernelScenario Icmpv6DestUnreachableForUdp() => Scenario("icmpv6_dest_unreachable_for_udp",
        "IPv6 UDP to a closed port answered by Destination Unreachable (port unreachable, code 4), then the " +
        "same error quoting a flow never seen. Spec §8.2 step 4: RELATED (reply), then INVALID.",
        s =>
        {
            var probe = new UdpPacket(Client, true, 40204, 5353, 30);
            s.Send(probe, NewOrig())
                .Send(new IcmpErrorPacket(Server, true, Icmpv6DestUnreachable, 4, probe), RelReply())
                .Send(new IcmpErrorPacket(Server, true, Icmpv6DestUnreachable, 4, new UdpPacket(Client, true, 40205, 5353, 30)), Invalid());
        });

    private static KernelScenario Icmpv6NeighbourDiscoveryUntracked() => Scenario("icmpv6_nd_untracked",
        "ICMPv6 types conntrack leaves alone, forwarded by the gateway: neighbour solicitation (135) and MLD " +
        "query (130) to the server's global address; and router renumbering (138), which has no inverse. " +
        "Spec §8.2 step 2: ND/MLD → UNTRACKED; step 5/§8.3: 138 cannot start an entry → INVALID.",
        s => s
            .Send(new IcmpPacket(Client, true, 135, 0, 0, 0, PayloadLength: 16), Untracked())
            .Send(new IcmpPacket(Client, true, 130, 0, 0, 0, PayloadLength: 16), Untracked())
            .Send(new IcmpPacket(Client, true, 138, 0, 0, 0, PayloadLength: 16), Invalid()));

    private static KernelScenario GenericProtocolNewReply() => Scenario("generic_proto253_new_reply",
        "IP protocol 253 (reserved for experiments; no dedicated tracker, unlike GRE which this kernel " +
        "tracks with nf_conntrack_proto_gre). Spec §9: tuple is addresses + protocol; NEW, then " +
        "ESTABLISHED (reply), then ESTABLISHED.",
        s => s
            .Send(new GenericPacket(Client, false, 253, 64), NewOrig())
            .Send(new GenericPacket(Server, false, 253, 64), EstReply())
            .Send(new GenericPacket(Client, false, 253, 64), EstOrig()));
    private static KernelScenario UdpChecksums() => Scenario("udp_checksums",
        "UDP checksum handling with nf_conntrack_checksum = 1: a corrupted checksum, then checksum 0 (\"none\"), " +
        "over IPv4 and IPv6. Spec §7: a bad non-zero checksum → INVALID; a zero checksum is accepted for IPv4 " +
        "and (per the spec, although RFC 8200 forbids it) for IPv6 → NEW; the IPv4 reply is ESTABLISHED.",
        s => s
            .Send(new UdpPacket(Client, false, 40109, 514, 50) { BadChecksum = true }, Invalid())
            .Send(new UdpPacket(Client, false, 40109, 514, 50) { ZeroChecksum = true }, NewOrig())
            .Send(new UdpPacket(Server, false, 514, 40109, 20), EstReply())
            .Send(new UdpPacket(Client, true, 40206, 514, 50) { BadChecksum = true }, Invalid())
            .Send(new UdpPacket(Client, true, 40206, 514, 50) { ZeroChecksum = true }, NewOrig()));

    private static KernelScenario IcmpOtherTypes() => Scenario("icmp_other_types",
        "ICMP beyond echo: timestamp request (13) and reply (14); router advertisement (9), which has no " +
        "inverse; extended echo request (42, RFC 8335). Spec §8.1/§8.3: 13 NEW, 14 ESTABLISHED (reply); 9 " +
        "cannot start an entry → INVALID; type > 18 → INVALID [6.17; a patch to allow 42/43 circulated].",
        s => s
            .Send(new IcmpPacket(Client, false, 13, 0, 0x0B1D, 1, PayloadLength: 12), NewOrig())
            .Send(new IcmpPacket(Server, false, 14, 0, 0x0B1D, 1, PayloadLength: 12), EstReply())
            .Send(new IcmpPacket(Server, false, 9, 0, 0, 0, PayloadLength: 8), Invalid())
            .Send(new IcmpPacket(Client, false, 42, 0, 0x0B1E, 1, PayloadLength: 8), Invalid()));

    private static KernelScenario GreV0NewReply() => Scenario("gre_v0_new_reply",
        "GRE version 0 (a plain tunnel, not PPTP) both ways. This kernel has nf_conntrack_proto_gre built " +
        "in, so GRE is not handled by the generic tracker: spec §9 says 30 s, 180 s once a reply was seen " +
        "(see .diag.tsv); classification as generic: NEW, ESTABLISHED (reply), ESTABLISHED.",
        s => s
            .Send(new GenericPacket(Client, false, 47, 40, Fill: 0), NewOrig())
            .Send(new GenericPacket(Server, false, 47, 40, Fill: 0), EstReply())
            .Send(new GenericPacket(Client, false, 47, 40, Fill: 0), EstOrig()));
}
