using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

/// <summary>
/// Every prefix 0..n of a valid packet. The expected reason for each prefix length follows from the
/// header layout alone (where each header starts and how long it is), written down per case below;
/// from the first length at which every header is present, parsing must succeed with exactly the
/// fields of the full packet, because lengths come from the IP header, not the capture.
/// </summary>
public class TruncationLadderTests
{
    public static TheoryData<string> Cases() => [.. s_cases.Keys];

    private static readonly Dictionary<string, (byte[] Packet, (int From, InvalidReason Reason)[] Steps)> s_cases = new()
    {
        ["tcp4-options-payload"] = (Tcp(DataSegment(false, 60)),
            [(0, InvalidReason.Truncated), (20, InvalidReason.TcpHeaderTruncated), (40, InvalidReason.TcpBadDataOffset), (52, InvalidReason.None)]),
        ["tcp4-ip-options"] = (WithIpv4Options(Tcp(Syn(false)), [0x94, 4, 0, 0, 1, 1, 1, 0]),
            [(0, InvalidReason.Truncated), (20, InvalidReason.BadIpv4HeaderLength), (28, InvalidReason.TcpHeaderTruncated), (48, InvalidReason.TcpBadDataOffset), (68, InvalidReason.None)]),
        ["tcp6-syn"] = (Tcp(Syn(true)),
            [(0, InvalidReason.Truncated), (40, InvalidReason.TcpHeaderTruncated), (60, InvalidReason.TcpBadDataOffset), (80, InvalidReason.None)]),
        ["tcp4-kernel-syn"] = (KernelVectors.Bytes(KernelVectors.SynV4),
            [(0, InvalidReason.Truncated), (20, InvalidReason.TcpHeaderTruncated), (40, InvalidReason.TcpBadDataOffset), (60, InvalidReason.None)]),
        ["udp4"] = (Udp(false, 40),
            [(0, InvalidReason.Truncated), (20, InvalidReason.UdpHeaderTruncated), (28, InvalidReason.None)]),
        ["udp6"] = (Udp(true, 40),
            [(0, InvalidReason.Truncated), (40, InvalidReason.UdpHeaderTruncated), (48, InvalidReason.None)]),
        ["echo4"] = (Echo(false),
            [(0, InvalidReason.Truncated), (20, InvalidReason.IcmpHeaderTruncated), (28, InvalidReason.None)]),
        ["echo6"] = (Echo(true),
            [(0, InvalidReason.Truncated), (40, InvalidReason.IcmpHeaderTruncated), (48, InvalidReason.None)]),
        ["icmp4-error-tcp"] = (Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 1, Tcp(DataSegment(false)))),
            [(0, InvalidReason.Truncated), (20, InvalidReason.IcmpHeaderTruncated), (28, InvalidReason.IcmpErrorBadInner), (52, InvalidReason.None)]),
        ["icmp4-error-echo"] = (Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 11, 0, Echo(false))),
            [(0, InvalidReason.Truncated), (20, InvalidReason.IcmpHeaderTruncated), (28, InvalidReason.IcmpErrorBadInner), (56, InvalidReason.None)]),
        ["icmp6-error-udp"] = (KernelVectors.Bytes(KernelVectors.PortUnreachableV6),
            [(0, InvalidReason.Truncated), (40, InvalidReason.IcmpHeaderTruncated), (48, InvalidReason.IcmpErrorBadInner), (92, InvalidReason.None)]),
        ["icmp6-error-chain-echo"] = (Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 3, 0, WithIpv6Extensions(Echo(true), (IpProto.HopByHop, 8)))),
            [(0, InvalidReason.Truncated), (40, InvalidReason.IcmpHeaderTruncated), (48, InvalidReason.IcmpErrorBadInner), (48 + 48 + 8, InvalidReason.None)]),
        ["redirect6-udp"] = (Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, Udp(true))),
            [(0, InvalidReason.Truncated), (40, InvalidReason.IcmpHeaderTruncated), (48, InvalidReason.None), (82, InvalidReason.IcmpErrorBadInner), (88 + 44, InvalidReason.None)]),
        ["tcp6-ext-chain"] = (WithIpv6Extensions(Tcp(DataSegment(true, 10)), (IpProto.HopByHop, 8), (IpProto.Ipv6DestOpts, 16), (IpProto.Ah, 12)),
            [(0, InvalidReason.Truncated), (40, InvalidReason.BadIpv6ExtensionHeader), (76, InvalidReason.TcpHeaderTruncated), (96, InvalidReason.TcpBadDataOffset), (108, InvalidReason.None)]),
        ["udp6-first-fragment"] = (WithIpv6Fragment(Udp(true), 0, more: true),
            [(0, InvalidReason.Truncated), (40, InvalidReason.BadIpv6ExtensionHeader), (48, InvalidReason.UdpHeaderTruncated), (56, InvalidReason.None)]),
        ["generic4"] = (Build(b => PacketBuilder.Generic(b, false, V4Client, V4Server, 47, 30)),
            [(0, InvalidReason.Truncated), (20, InvalidReason.None)]),
        ["sctp6"] = (Build(b => PacketBuilder.Generic(b, true, V6Client, V6Server, IpProto.Sctp, 30)),
            [(0, InvalidReason.Truncated), (40, InvalidReason.L4Truncated), (44, InvalidReason.None)]),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Parse_EveryPrefix_ExpectedReasonOrFullFields(string name)
    {
        (byte[] packet, (int From, InvalidReason Reason)[] steps) = s_cases[name];
        ParsedPacket full = ParseOk(packet);
        int stepIndex = 0;
        for (int n = 0; n <= packet.Length; n++)
        {
            while (stepIndex + 1 < steps.Length && steps[stepIndex + 1].From <= n)
                stepIndex++;
            InvalidReason expected = steps[stepIndex].Reason;
            InvalidReason actual = PacketParser.Parse(packet.AsSpan(0, n), out ParsedPacket parsed);
            Assert.True(expected == actual, $"{name}: prefix {n}: expected {expected}, got {actual}");
            if (actual == InvalidReason.None && stepIndex == steps.Length - 1)
            {
                ParsedPacket want = full;
                want.CapturedLength = n;
                Assert.Equal(want, parsed);
            }
            if (actual == InvalidReason.None)
                Assert.Equal(n, parsed.CapturedLength);
        }
    }
}
