using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

public class Ipv6ExtensionHeaderTests
{
    [Fact]
    public void Chain_AllKindsBeforeTcp_SkippedToTransport()
    {
        byte[] packet = WithIpv6Extensions(Tcp(DataSegment(true, 20)),
            (IpProto.HopByHop, 8), (IpProto.Ipv6Route, 24), (IpProto.Ipv6DestOpts, 16), (IpProto.Ah, 24), (IpProto.Ipv6DestOpts, 8));
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(IpProto.Tcp, p.Protocol);
        Assert.Equal(40 + 8 + 24 + 16 + 24 + 8, p.L3HeaderLength);
        Assert.Equal(32 + 20, p.L4Length);
        Assert.Equal(20, p.TcpPayloadLength);
        Assert.Equal(40000, p.SrcPort);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, p));
    }

    [Theory]
    [InlineData(12)]
    [InlineData(16)]
    [InlineData(20)]
    [InlineData(1024)]
    public void Ah_LengthIsLenPlusTwoTimesFour(int ahLength)
    {
        byte[] packet = WithIpv6Extensions(Udp(true), (IpProto.Ah, ahLength));
        Assert.Equal((packet[41] + 2) * 4, ahLength);
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(40 + ahLength, p.L3HeaderLength);
        Assert.Equal(5353, p.SrcPort);
    }

    [Fact]
    public void Options_LengthIsLenPlusOneTimesEight()
    {
        byte[] packet = WithIpv6Extensions(Udp(true), (IpProto.HopByHop, 2048));
        Assert.Equal(255, packet[41]);
        Assert.Equal(40 + 2048, ParseOk(packet).L3HeaderLength);
    }

    [Fact]
    public void Fragment_FirstWithMore_IsFirstFragmentAndL4Parsed()
    {
        byte[] packet = WithIpv6Extensions(WithIpv6Fragment(Udp(true), 0, more: true), (IpProto.HopByHop, 8));
        ParsedPacket p = ParseOk(packet);
        Assert.True(p.IsFirstFragment);
        Assert.Equal(IpProto.Udp, p.Protocol);
        Assert.Equal(56, p.L3HeaderLength);
        Assert.Equal(53, p.DstPort);
    }

    [Fact]
    public void Fragment_AtomicOffsetZeroNoMore_NotAFragment()
    {
        ParsedPacket p = ParseOk(WithIpv6Fragment(Udp(true), 0, more: false));
        Assert.False(p.IsFirstFragment);
        Assert.Equal(IpProto.Udp, p.Protocol);
    }

    [Fact]
    public void Fragment_NonFirstAfterOtherHeaders_NonFirstFragment()
    {
        byte[] packet = WithIpv6Extensions(WithIpv6Fragment(Tcp(DataSegment(true)), 8, more: true), (IpProto.HopByHop, 8), (IpProto.Ipv6Route, 8));
        Assert.Equal(InvalidReason.NonFirstFragment, Reason(packet));
    }

    [Fact]
    public void Fragment_ReservedBitsSet_StillFirstFragment()
    {
        byte[] packet = WithIpv6Fragment(Udp(true), 0, more: true);
        packet[43] |= 0x06; // the two reserved bits next to M: masked off like the kernel's ~0x7
        Assert.True(ParseOk(packet).IsFirstFragment);
    }

    [Fact]
    public void Fragment_OnlyOffsetWordCapturedAndNonFirst_NonFirstFragment()
    {
        byte[] packet = WithIpv6Fragment(Udp(true), 64, more: false);
        Assert.Equal(InvalidReason.NonFirstFragment, Reason(packet.AsSpan(0, 44)));
        Assert.Equal(InvalidReason.BadIpv6ExtensionHeader, Reason(packet.AsSpan(0, 43)));
    }

    [Fact]
    public void Fragment_WithAhAndDestOpts_KernelOrderWalked()
    {
        byte[] packet = WithIpv6Extensions(Echo(true), (IpProto.HopByHop, 8), (IpProto.Ipv6Frag, 8), (IpProto.Ah, 16), (IpProto.Ipv6DestOpts, 8));
        packet[40 + 8 + 3] = 1; // M flag on the fragment header
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(IpProto.Icmpv6, p.Protocol);
        Assert.True(p.IsFirstFragment);
        Assert.Equal(128, p.IcmpType);
        Assert.Equal(80, p.L3HeaderLength);
    }

    [Fact]
    public void Chain_EveryCutInsideHeaders_BadIpv6ExtensionHeader()
    {
        byte[] packet = WithIpv6Extensions(Udp(true), (IpProto.HopByHop, 8), (IpProto.Ah, 12), (IpProto.Ipv6DestOpts, 16));
        for (int n = 40; n < 40 + 36; n++)
            Assert.Equal(InvalidReason.BadIpv6ExtensionHeader, Reason(packet.AsSpan(0, n)));
        Assert.Equal(InvalidReason.UdpHeaderTruncated, Reason(packet.AsSpan(0, 76)));
    }

    [Fact]
    public void Chain_NextHeaderNoNextAfterHeaders_BadIpv6ExtensionHeader()
    {
        byte[] packet = WithIpv6Extensions(Udp(true), (IpProto.HopByHop, 8));
        packet[40] = IpProto.Ipv6NoNext;
        Assert.Equal(InvalidReason.BadIpv6ExtensionHeader, Reason(packet));
    }

    [Fact]
    public void Chain_Esp_IsTransportNotExtension()
    {
        byte[] packet = WithIpv6Extensions(Build(b => PacketBuilder.Generic(b, true, V6Client, V6Server, IpProto.Esp, 24)), (IpProto.Ipv6DestOpts, 8));
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(IpProto.Esp, p.Protocol);
        Assert.Equal(48, p.L3HeaderLength);
    }

    [Fact]
    public void Chain_LongChainOfEightByteHeaders_Terminates()
    {
        byte[] packet = Build(b => PacketBuilder.Generic(b, true, V6Client, V6Server, IpProto.Ipv6DestOpts, 8000));
        for (int i = 40; i < packet.Length; i += 8)
            packet[i] = IpProto.Ipv6DestOpts; // every header points at another
        Assert.Equal(InvalidReason.BadIpv6PayloadLength, Reason(packet));
    }
}
