using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

/// <summary>One test (or theory) per reason the parser can return.</summary>
public class PacketParserInvalidTests
{
    [Fact]
    public void Parse_Empty_Truncated() => Assert.Equal(InvalidReason.Truncated, Reason([]));

    [Theory]
    [InlineData(false, 19)]
    [InlineData(false, 1)]
    [InlineData(true, 39)]
    [InlineData(true, 1)]
    public void Parse_ShorterThanFixedIpHeader_Truncated(bool v6, int length) =>
        Assert.Equal(InvalidReason.Truncated, Reason(Udp(v6).AsSpan(0, length)));

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x55)]
    [InlineData(0xF5)]
    public void Parse_VersionNotFourOrSix_BadIpVersion(byte first)
    {
        byte[] packet = Udp(false);
        packet[0] = first;
        Assert.Equal(InvalidReason.BadIpVersion, Reason(packet));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void Ipv4_IhlBelowFive_BadIpv4HeaderLength(int ihl)
    {
        byte[] packet = Udp(false);
        packet[0] = (byte)(0x40 | ihl);
        Assert.Equal(InvalidReason.BadIpv4HeaderLength, Reason(packet));
    }

    [Fact]
    public void Ipv4_IhlBeyondCapturedBytes_BadIpv4HeaderLength()
    {
        byte[] packet = Udp(false, 0);
        packet[0] = 0x4F; // 60-byte header, 28-byte packet
        Assert.Equal(InvalidReason.BadIpv4HeaderLength, Reason(packet));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(19)]
    public void Ipv4_TotalLengthBelowHeader_BadIpv4TotalLength(int total)
    {
        byte[] packet = Udp(false);
        WriteU16(packet, 2, total);
        Assert.Equal(InvalidReason.BadIpv4TotalLength, Reason(packet));
    }

    [Fact]
    public void Ipv4_TotalLengthOfBareHeader_UdpHeaderTruncated()
    {
        byte[] packet = Udp(false);
        WriteU16(packet, 2, 20);
        Assert.Equal(InvalidReason.UdpHeaderTruncated, Reason(packet)); // lengths come from the IP header
    }

    [Fact]
    public void Ipv6_JumboPayloadLengthZero_BadIpv6PayloadLength()
    {
        byte[] packet = Udp(true);
        WriteU16(packet, 4, 0);
        Assert.Equal(InvalidReason.BadIpv6PayloadLength, Reason(packet));
    }

    [Fact]
    public void Ipv6_ExtensionHeaderLongerThanPayload_BadIpv6PayloadLength()
    {
        byte[] packet = WithIpv6Extensions(Udp(true), (IpProto.Ipv6DestOpts, 8));
        packet[41] = 10; // 88 bytes claimed, 46 bytes of payload
        Assert.Equal(InvalidReason.BadIpv6PayloadLength, Reason(packet));
    }

    [Fact]
    public void Ipv6_PayloadShorterThanExtensionHeader_BadIpv6PayloadLength()
    {
        byte[] packet = WithIpv6Extensions(Build(b => PacketBuilder.Generic(b, true, V6Client, V6Server, IpProto.Tcp, 1)), (IpProto.HopByHop, 8));
        WriteU16(packet, 4, 4); // payload says 4 bytes: the 8-byte header does not fit
        Assert.Equal(InvalidReason.BadIpv6PayloadLength, Reason(packet));
    }

    [Fact]
    public void Ipv4_NonZeroFragmentOffset_NonFirstFragment()
    {
        byte[] packet = Tcp(DataSegment(false));
        PacketBuilder.Ipv4SetFragment(packet, 8, moreFragments: true);
        Assert.Equal(InvalidReason.NonFirstFragment, PacketParser.Parse(packet, out ParsedPacket p));
        Assert.Equal(V4Client, p.Src); // L3 is still reported
        Assert.Equal(0, p.SrcPort);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Ipv6_FragmentHeaderWithOffset_NonFirstFragment(bool more)
    {
        byte[] packet = WithIpv6Fragment(Udp(true), 1232, more);
        Assert.Equal(InvalidReason.NonFirstFragment, Reason(packet));
    }

    [Fact]
    public void Ipv6_ChainCutByCapture_BadIpv6ExtensionHeader()
    {
        byte[] packet = WithIpv6Extensions(Tcp(DataSegment(true)), (IpProto.HopByHop, 8), (IpProto.Ipv6DestOpts, 16));
        Assert.Equal(InvalidReason.BadIpv6ExtensionHeader, Reason(packet.AsSpan(0, 49)));
    }

    [Fact]
    public void Ipv6_NoNextHeader_BadIpv6ExtensionHeader()
    {
        byte[] packet = Build(b => PacketBuilder.Generic(b, true, V6Client, V6Server, IpProto.Ipv6NoNext, 8));
        Assert.Equal(InvalidReason.BadIpv6ExtensionHeader, Reason(packet));
        byte[] chained = WithIpv6Extensions(packet, (IpProto.Ipv6DestOpts, 8));
        Assert.Equal(InvalidReason.BadIpv6ExtensionHeader, Reason(chained));
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 19)]
    [InlineData(true, 3)]
    [InlineData(true, 19)]
    public void Tcp_FewerThanTwentyHeaderBytes_TcpHeaderTruncated(bool v6, int l4Bytes)
    {
        byte[] packet = Tcp(DataSegment(v6));
        InvalidReason r = PacketParser.Parse(packet.AsSpan(0, (v6 ? 40 : 20) + l4Bytes), out ParsedPacket p);
        Assert.Equal(InvalidReason.TcpHeaderTruncated, r);
        Assert.Equal(l4Bytes >= 4 ? 40000 : 0, p.SrcPort);
    }

    [Fact]
    public void Tcp_IpLengthShorterThanTcpHeader_TcpHeaderTruncated()
    {
        byte[] packet = Tcp(DataSegment(false, 0));
        WriteU16(packet, 2, 20 + 19);
        Assert.Equal(InvalidReason.TcpHeaderTruncated, Reason(packet));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void Tcp_DataOffsetBelowFive_TcpBadDataOffset(int doff)
    {
        byte[] packet = Tcp(DataSegment(false));
        packet[32] = (byte)(doff << 4);
        Assert.Equal(InvalidReason.TcpBadDataOffset, Reason(packet));
    }

    [Fact]
    public void Tcp_DataOffsetBeyondIpLength_TcpBadDataOffset()
    {
        byte[] packet = Tcp(DataSegment(true, 0)); // 32-byte header, no payload
        packet[52] = 0x90; // 36 bytes claimed
        byte[] longer = [.. packet, 1, 1, 1, 1]; // even when those bytes were captured
        Assert.Equal(InvalidReason.TcpBadDataOffset, Reason(longer));
    }

    [Fact]
    public void Tcp_OptionsNotCaptured_TcpBadDataOffset()
    {
        byte[] packet = Tcp(Syn(false));
        Assert.Equal(InvalidReason.TcpBadDataOffset, Reason(packet.AsSpan(0, 20 + 39)));
    }

    [Theory]
    [InlineData(false, 7)]
    [InlineData(true, 0)]
    public void Udp_FewerThanEightBytes_UdpHeaderTruncated(bool v6, int l4Bytes) =>
        Assert.Equal(InvalidReason.UdpHeaderTruncated, Reason(Udp(v6).AsSpan(0, (v6 ? 40 : 20) + l4Bytes)));

    [Theory]
    [InlineData(false, 0)]
    [InlineData(false, 7)]
    [InlineData(true, 39)] // > 38 bytes of L4
    [InlineData(true, 0xFFFF)]
    public void Udp_LengthFieldOutOfRange_UdpBadLength(bool v6, int length)
    {
        byte[] packet = Udp(v6, 30);
        WriteU16(packet, (v6 ? 40 : 20) + 4, length);
        Assert.Equal(InvalidReason.UdpBadLength, Reason(packet));
    }

    [Fact]
    public void Udp_LengthFieldShorterThanIpPayload_Accepted()
    {
        byte[] packet = Udp(false, 30);
        WriteU16(packet, 24, 20);
        Assert.Equal(20, ParseOk(packet).UdpLength);
    }

    [Theory]
    [InlineData(false, 7)]
    [InlineData(true, 4)]
    [InlineData(true, 0)]
    public void Icmp_FewerThanEightBytes_IcmpHeaderTruncated(bool v6, int l4Bytes) =>
        Assert.Equal(InvalidReason.IcmpHeaderTruncated, Reason(Echo(v6).AsSpan(0, (v6 ? 40 : 20) + l4Bytes)));

    [Fact]
    public void IcmpError_InnerIpHeaderCut_IcmpErrorBadInner()
    {
        byte[] inner = Tcp(DataSegment(false));
        byte[] error = Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 11, 0, inner.AsSpan(0, 19)));
        Assert.Equal(InvalidReason.IcmpErrorBadInner, Reason(error));
    }

    [Fact]
    public void IcmpError_InnerNonFirstFragment_IcmpErrorBadInner()
    {
        byte[] inner = Udp(false);
        PacketBuilder.Ipv4SetFragment(inner, 16, false);
        byte[] error = Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 1, inner));
        Assert.Equal(InvalidReason.IcmpErrorBadInner, Reason(error));
    }

    [Fact]
    public void L4Truncated_SctpWithoutPorts_L4Truncated()
    {
        byte[] packet = Build(b => PacketBuilder.Generic(b, false, V4Client, V4Server, IpProto.Sctp, 3));
        Assert.Equal(InvalidReason.L4Truncated, Reason(packet));
    }

    [Fact]
    public void Parse_AnyInput_ReturnsOnlyParseReasons()
    {
        // Tracker-level reasons (flags, checksums, state) must never come out of the parser.
        InvalidReason[] parserReasons =
        [
            InvalidReason.None, InvalidReason.Truncated, InvalidReason.BadIpVersion, InvalidReason.BadIpv4HeaderLength,
            InvalidReason.BadIpv4TotalLength, InvalidReason.BadIpv6PayloadLength, InvalidReason.NonFirstFragment,
            InvalidReason.BadIpv6ExtensionHeader, InvalidReason.TcpHeaderTruncated, InvalidReason.TcpBadDataOffset,
            InvalidReason.UdpHeaderTruncated, InvalidReason.UdpBadLength, InvalidReason.IcmpHeaderTruncated,
            InvalidReason.IcmpErrorBadInner, InvalidReason.L4Truncated,
        ];
        var seen = new HashSet<InvalidReason>();
        var random = new Random(7);
        byte[] buffer = new byte[120];
        foreach (byte[] seed in new[] { Tcp(Syn(false)), Tcp(Syn(true)), Udp(false), Udp(true), Echo(false), Echo(true) })
        {
            for (int i = 0; i < 20_000; i++)
            {
                int n = Math.Min(seed.Length, buffer.Length);
                seed.AsSpan(0, n).CopyTo(buffer);
                buffer[random.Next(n)] = (byte)random.Next(256);
                buffer[random.Next(n)] ^= (byte)(1 << random.Next(8));
                seen.Add(PacketParser.Parse(buffer.AsSpan(0, random.Next(n + 1)), out _));
            }
        }
        Assert.Subset(parserReasons.ToHashSet(), seen);
        Assert.True(seen.Count >= 10, string.Join(",", seen));
    }
}
