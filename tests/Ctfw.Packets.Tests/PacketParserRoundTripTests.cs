using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

public class PacketParserRoundTripTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tcp_SynWithAllOptions_EveryFieldRoundTrips(bool v6)
    {
        TcpSpec spec = Syn(v6);
        spec.Ttl = 17;
        byte[] packet = Tcp(spec);
        ParsedPacket p = ParseOk(packet);

        Assert.Equal(v6 ? 6 : 4, p.IpVersion);
        Assert.Equal(IpProto.Tcp, p.Protocol);
        Assert.Equal(spec.Src, p.Src);
        Assert.Equal(spec.Dst, p.Dst);
        Assert.Equal(17, p.Ttl);
        Assert.Equal(v6 ? 40 : 20, p.L3HeaderLength);
        Assert.Equal(40, p.L4Length);
        Assert.Equal(packet.Length, p.IpTotalLength);
        Assert.Equal(packet.Length, p.CapturedLength);
        Assert.False(p.IsFirstFragment);
        Assert.Equal(40000, p.SrcPort);
        Assert.Equal(443, p.DstPort);
        Assert.Equal(spec.Seq, p.Seq);
        Assert.Equal(0u, p.AckSeq);
        Assert.Equal(spec.Window, p.Window);
        Assert.Equal(TcpFlags.Syn, p.TcpFlags);
        Assert.Equal(40, p.TcpHeaderLength);
        Assert.Equal(0, p.TcpPayloadLength);

        TcpOptions o = p.TcpOptions;
        Assert.Equal(1460, o.Mss);
        Assert.True(o.HasWindowScale);
        Assert.Equal(7, o.WindowScale);
        Assert.True(o.SackPermitted);
        Assert.True(o.HasTimestamp);
        Assert.Equal(0xA1B2C3D4u, o.TsVal);
        Assert.Equal(0u, o.TsEcr);
        Assert.Equal(0, o.SackBlockCount);
        Assert.Equal(0u, o.SackLatest);
        Assert.False(o.Malformed);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Tcp_DataWithSackBlocks_PayloadLengthAndSackLatest(bool v6)
    {
        TcpSpec spec = DataSegment(v6, 1000);
        spec.SackBlockCount = 3;
        uint[] edges = [spec.Ack + 100, spec.Ack + 200, spec.Ack + 500, spec.Ack + 900, spec.Ack + 300, spec.Ack + 400];
        for (int i = 0; i < edges.Length; i++)
            spec.SackEdges[i] = edges[i];
        ParsedPacket p = ParseOk(Tcp(spec));

        Assert.Equal(60, p.TcpHeaderLength); // 20 + NOP,NOP,TS(12) + NOP,NOP,SACK(2+2+24)
        Assert.Equal(1000, p.TcpPayloadLength);
        Assert.Equal(60 + 1000, p.L4Length);
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh, p.TcpFlags);
        Assert.Equal(spec.Ack, p.AckSeq);
        Assert.Equal(3, p.TcpOptions.SackBlockCount);
        Assert.Equal(spec.Ack + 900, p.TcpOptions.SackLatest);
        Assert.True(p.TcpOptions.HasTimestamp);
        Assert.Equal(7u, p.TcpOptions.TsVal);
        Assert.Equal(9u, p.TcpOptions.TsEcr);
        Assert.False(p.TcpOptions.HasWindowScale);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Udp_Datagram_PortsLengthChecksum(bool v6)
    {
        byte[] packet = Udp(v6, 30);
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(IpProto.Udp, p.Protocol);
        Assert.Equal(5353, p.SrcPort);
        Assert.Equal(53, p.DstPort);
        Assert.Equal(38, p.UdpLength);
        Assert.Equal(38, p.L4Length);
        Assert.Equal((ushort)(packet[^32] << 8 | packet[^31]), p.UdpChecksum);
        Assert.NotEqual(0, p.UdpChecksum);
    }

    [Theory]
    [InlineData(false, 8, 0)]
    [InlineData(false, 13, 0)]
    [InlineData(false, 0, 0)]
    [InlineData(true, 128, 0)]
    [InlineData(true, 139, 1)]
    [InlineData(true, 129, 0)]
    public void Icmp_QueryTypes_IdTypeCodeAndTupleIds(bool v6, byte type, byte code)
    {
        byte[] packet = v6
            ? Build(b => PacketBuilder.Icmpv6(b, V6Client, V6Server, type, code, 0xBEEF, 3, 20))
            : Build(b => PacketBuilder.Icmp(b, V4Client, V4Server, type, code, 0xBEEF, 3, 20));
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(v6 ? IpProto.Icmpv6 : IpProto.Icmp, p.Protocol);
        Assert.Equal(type, p.IcmpType);
        Assert.Equal(code, p.IcmpCode);
        Assert.Equal(0xBEEF, p.IcmpId);
        Assert.Equal(0xBEEF, p.SrcPort);
        Assert.Equal(type << 8 | code, p.DstPort);
        Assert.False(p.Inner.Present);
        Assert.Equal(28, p.L4Length);
    }

    [Theory]
    [InlineData(false, (byte)47)]
    [InlineData(true, (byte)47)]
    [InlineData(false, IpProto.Esp)]
    [InlineData(false, IpProto.Ah)] // AH is an L4 protocol for IPv4
    [InlineData(true, (byte)254)]
    public void Generic_UnknownProtocol_NoPortsLengthsFromHeader(bool v6, byte protocol)
    {
        byte[] packet = Build(b => PacketBuilder.Generic(b, v6, Client(v6), Server(v6), protocol, 33, 0xFF));
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(protocol, p.Protocol);
        Assert.Equal(0, p.SrcPort);
        Assert.Equal(0, p.DstPort);
        Assert.Equal(33, p.L4Length);
        Assert.Equal(packet.Length, p.IpTotalLength);
    }

    [Theory]
    [InlineData(false, IpProto.Sctp)]
    [InlineData(true, IpProto.UdpLite)]
    public void PortedGenericProtocols_PortsRead(bool v6, byte protocol)
    {
        byte[] packet = Build(b => PacketBuilder.Generic(b, v6, Client(v6), Server(v6), protocol, 12));
        packet[v6 ? 40 : 20] = 0x12;
        packet[v6 ? 41 : 21] = 0x34;
        packet[v6 ? 43 : 23] = 0x56;
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(0x1234, p.SrcPort);
        Assert.Equal(0x0056, p.DstPort);
    }

    [Fact]
    public void Ipv4_WithOptions_HeaderLengthIncludesOptions()
    {
        byte[] packet = WithIpv4Options(Tcp(DataSegment(false, 10)), [0x94, 0x04, 0x00, 0x00]); // router alert
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(24, p.L3HeaderLength);
        Assert.Equal(32 + 10, p.L4Length);
        Assert.Equal(10, p.TcpPayloadLength);
        Assert.Equal(40000, p.SrcPort);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Padding_BytesBeyondIpLength_Ignored(bool v6)
    {
        byte[] packet = Udp(v6, 2);
        byte[] padded = [.. packet, .. new byte[18]];
        ParsedPacket p = ParseOk(padded);
        Assert.Equal(packet.Length, p.CapturedLength);
        Assert.Equal(packet.Length, p.IpTotalLength);
        Assert.Equal(10, p.L4Length);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(padded, p));
    }

    [Fact]
    public void Ipv4_FirstFragmentWithMf_L4ParsedAndFlagged()
    {
        byte[] packet = Tcp(DataSegment(false, 50));
        PacketBuilder.Ipv4SetFragment(packet, 0, moreFragments: true);
        ParsedPacket p = ParseOk(packet);
        Assert.True(p.IsFirstFragment);
        Assert.Equal(40000, p.SrcPort);
    }

    [Fact]
    public void Ipv4_LastFragmentOffsetZeroNoMf_NotAFragment()
    {
        byte[] packet = Udp(false);
        PacketBuilder.Ipv4SetFragment(packet, 0, moreFragments: false);
        Assert.False(ParseOk(packet).IsFirstFragment);
    }

    [Fact]
    public void HeaderOnlyCapture_TcpPayloadMissing_LengthsFromIpHeader()
    {
        byte[] packet = Tcp(DataSegment(true, 1400));
        ParsedPacket p = ParseOk(packet.AsSpan(0, 40 + 32));
        Assert.Equal(1400, p.TcpPayloadLength);
        Assert.Equal(40 + 32 + 1400, p.IpTotalLength);
        Assert.Equal(72, p.CapturedLength);
    }

    [Fact]
    public void KernelVectors_AllParse_WithExpectedFields()
    {
        ParsedPacket syn = ParseOk(KernelVectors.Bytes(KernelVectors.SynV4));
        Assert.Equal(0xe2c6, syn.SrcPort);
        Assert.Equal(80, syn.DstPort);
        Assert.Equal(1460, syn.TcpOptions.Mss);
        Assert.Equal(10, syn.TcpOptions.WindowScale);
        Assert.True(syn.TcpOptions.SackPermitted);
        Assert.Equal(0x3a6331a6u, syn.TcpOptions.TsVal);

        ParsedPacket syn6 = ParseOk(KernelVectors.Bytes(KernelVectors.SynV6));
        Assert.Equal(Addr("fd00:99::1"), syn6.Src);
        Assert.Equal(1440, syn6.TcpOptions.Mss);

        ParsedPacket rst = ParseOk(KernelVectors.Bytes(KernelVectors.RstV4));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.TcpFlags);
        Assert.Equal(1001u, rst.AckSeq);

        ParsedPacket rs = ParseOk(KernelVectors.Bytes(KernelVectors.RouterSolicitation));
        Assert.Equal(133, rs.IcmpType);
        Assert.Equal(255, rs.Ttl);
        Assert.False(rs.Inner.Present);

        ParsedPacket udp6 = ParseOk(KernelVectors.Bytes(KernelVectors.UdpV6));
        Assert.Equal(5353, udp6.DstPort);
        Assert.Equal(14, udp6.UdpLength);

        ParsedPacket echo = ParseOk(KernelVectors.Bytes(KernelVectors.EchoReplyV4));
        Assert.Equal(0, echo.IcmpType);
        Assert.Equal(0x1234, echo.IcmpId);
    }
}
