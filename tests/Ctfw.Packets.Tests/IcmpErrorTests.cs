using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

public class IcmpErrorTests
{
    public static TheoryData<bool, byte> ErrorTypes() => new()
    {
        { false, 3 }, { false, 4 }, { false, 5 }, { false, 11 }, { false, 12 },
        { true, 1 }, { true, 2 }, { true, 3 }, { true, 4 }, { true, 127 },
    };

    [Theory]
    [MemberData(nameof(ErrorTypes))]
    public void Error_EmbeddedTcp_InnerTupleAsSent(bool v6, byte type)
    {
        byte[] offending = Tcp(DataSegment(v6));
        byte[] error = Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), type, 0, offending));
        ParsedPacket p = ParseOk(error);
        Assert.Equal(type, p.IcmpType);
        Assert.True(p.Inner.Present);
        Assert.Equal(IpProto.Tcp, p.Inner.Protocol);
        Assert.Equal(Client(v6), p.Inner.Src);
        Assert.Equal(Server(v6), p.Inner.Dst);
        Assert.Equal(40000, p.Inner.SrcId);
        Assert.Equal(443, p.Inner.DstId);
        Assert.Equal(Router(v6), p.Src);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Error_EmbeddedUdpFromKernel_InnerTuple(bool v6)
    {
        ParsedPacket p = ParseOk(KernelVectors.Bytes(v6 ? KernelVectors.PortUnreachableV6 : KernelVectors.PortUnreachableV4));
        Assert.True(p.Inner.Present);
        Assert.Equal(IpProto.Udp, p.Inner.Protocol);
        Assert.Equal(Addr(v6 ? "fd00:99::2" : "10.99.0.2"), p.Inner.Src);
        Assert.Equal(Addr(v6 ? "fd00:99::1" : "10.99.0.1"), p.Inner.Dst);
        Assert.Equal(40000, p.Inner.SrcId);
        Assert.Equal(9, p.Inner.DstId);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Error_EmbeddedEcho_InnerIdAndTypeCode(bool v6)
    {
        byte[] echo = Echo(v6, id: 0x7777);
        byte[] error = Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), v6 ? (byte)3 : (byte)11, 0, echo));
        ParsedPacket p = ParseOk(error);
        Assert.Equal(v6 ? IpProto.Icmpv6 : IpProto.Icmp, p.Inner.Protocol);
        Assert.Equal(0x7777, p.Inner.SrcId);
        Assert.Equal((v6 ? 128 : 8) << 8, p.Inner.DstId);
    }

    [Theory]
    [InlineData(false, 3, false)]
    [InlineData(false, 4, true)] // TCP/UDP need only the ports
    [InlineData(true, 3, false)]
    [InlineData(true, 4, true)]
    public void Error_InnerPortsNeedFourBytes(bool v6, int innerL4Bytes, bool ok)
    {
        byte[] offending = Udp(v6);
        int quoted = (v6 ? 40 : 20) + innerL4Bytes;
        byte[] error = Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), 3, 0, offending.AsSpan(0, quoted)));
        Assert.Equal(ok ? InvalidReason.None : InvalidReason.IcmpErrorBadInner, Reason(error));
    }

    [Theory]
    [InlineData(false, 7)]
    [InlineData(true, 7)]
    public void Error_InnerIcmpNeedsEightBytes_IcmpErrorBadInner(bool v6, int icmpBytes)
    {
        byte[] echo = Echo(v6);
        byte[] error = Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), 3, 0, echo.AsSpan(0, (v6 ? 40 : 20) + icmpBytes)));
        Assert.Equal(InvalidReason.IcmpErrorBadInner, Reason(error));
    }

    [Fact]
    public void Error_InnerIpv6NonFirstFragment_IcmpErrorBadInner()
    {
        byte[] inner = WithIpv6Fragment(Udp(true), 8, more: false);
        byte[] error = Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 1, 0, inner));
        Assert.Equal(InvalidReason.IcmpErrorBadInner, Reason(error));
    }

    [Fact]
    public void Error_InnerIpv6ExtensionChain_Walked()
    {
        byte[] inner = WithIpv6Extensions(Tcp(DataSegment(true)), (IpProto.HopByHop, 8), (IpProto.Ah, 16));
        byte[] error = Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 2, 0, inner));
        ParsedPacket p = ParseOk(error);
        Assert.Equal(IpProto.Tcp, p.Inner.Protocol);
        Assert.Equal(443, p.Inner.DstId);
    }

    [Fact]
    public void Error_InnerIpv4WithOptions_PortsAfterOptions()
    {
        byte[] inner = WithIpv4Options(Udp(false), [1, 1, 1, 0]);
        byte[] error = Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 3, inner));
        Assert.Equal(53, ParseOk(error).Inner.DstId);
    }

    [Fact]
    public void Error_InnerIpv4IhlBelowFive_IcmpErrorBadInner()
    {
        byte[] inner = Udp(false);
        inner[0] = 0x44;
        byte[] error = Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 3, inner));
        Assert.Equal(InvalidReason.IcmpErrorBadInner, Reason(error));
    }

    [Fact]
    public void Error_InnerGenericProtocol_NoIdsButPresent()
    {
        byte[] inner = Build(b => PacketBuilder.Generic(b, false, V4Client, V4Server, IpProto.Esp, 0));
        ParsedPacket p = ParseOk(Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 1, inner)));
        Assert.True(p.Inner.Present);
        Assert.Equal(IpProto.Esp, p.Inner.Protocol);
        Assert.Equal(0, p.Inner.SrcId);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(18)]
    [InlineData(42)]
    public void Icmpv4_NonErrorTypes_NoInnerParsed(byte type)
    {
        byte[] packet = Build(b => PacketBuilder.Icmp(b, V4Client, V4Server, type, 0, 1, 1, 0));
        Assert.False(ParseOk(packet).Inner.Present);
    }

    [Fact]
    public void Icmpv4InsideIpv6_ErrorTypeNotTreatedAsError()
    {
        byte[] packet = Build(b => PacketBuilder.IcmpAnyFamily(b, true, IpProto.Icmp, V6Client, V6Server, 3, 1, 0, 0, 0));
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(IpProto.Icmp, p.Protocol);
        Assert.Equal(3, p.IcmpType);
        Assert.False(p.Inner.Present);
    }

    [Fact]
    public void Icmpv6InsideIpv4_ErrorTypeNotTreatedAsError()
    {
        byte[] packet = Build(b => PacketBuilder.IcmpAnyFamily(b, false, IpProto.Icmpv6, V4Client, V4Server, 1, 0, 0, 0, 0));
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(IpProto.Icmpv6, p.Protocol);
        Assert.False(p.Inner.Present);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, p));
    }

    [Fact]
    public void Redirect_WithRedirectedHeader_InnerParsed()
    {
        byte[] offending = Tcp(DataSegment(true));
        byte[] redirect = Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, offending));
        ParsedPacket p = ParseOk(redirect);
        Assert.Equal(137, p.IcmpType);
        Assert.True(p.Inner.Present);
        Assert.Equal(IpProto.Tcp, p.Inner.Protocol);
        Assert.Equal(V6Client, p.Inner.Src);
        Assert.Equal(443, p.Inner.DstId);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(redirect, p));
    }

    [Theory]
    [InlineData(1, 255, "fe80::1")]  // code != 0
    [InlineData(0, 64, "fe80::1")]   // hop limit != 255
    [InlineData(0, 255, "2001:db8::1")] // not link-local
    public void Redirect_PreconditionsFail_InnerLeftForTracker(byte code, byte hopLimit, string source)
    {
        byte[] offending = Tcp(DataSegment(true));
        byte[] redirect = Build(b => PacketBuilder.Icmpv6Redirect(b, Addr(source), V6Client, Addr("fe80::2"), V6Server, offending, code, hopLimit));
        ParsedPacket p = ParseOk(redirect);
        Assert.False(p.Inner.Present);
    }

    [Fact]
    public void Redirect_NoOptionsOrOtherFirstOption_InnerLeftForTracker()
    {
        byte[] bare = Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, []));
        Assert.False(ParseOk(bare).Inner.Present);

        byte[] withHeader = Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, Udp(true)));
        withHeader[80] = 2; // target link-layer address option first
        Assert.False(ParseOk(withHeader).Inner.Present);
        withHeader[80] = 4;
        withHeader[81] = 0; // zero-length option
        Assert.False(ParseOk(withHeader).Inner.Present);
    }

    [Fact]
    public void Redirect_RedirectedHeaderTooShort_IcmpErrorBadInner()
    {
        byte[] redirect = Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, Udp(true).AsSpan(0, 40)));
        Assert.Equal(InvalidReason.IcmpErrorBadInner, Reason(redirect.AsSpan(0, redirect.Length - 40 + 30)));
    }
}
