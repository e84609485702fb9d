using System.Buffers.Binary;
using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

public class ChecksumTests
{
    public static TheoryData<string> KernelPackets() => new()
    {
        KernelVectors.SynV4, KernelVectors.SynV6, KernelVectors.UdpV4, KernelVectors.UdpV6,
        KernelVectors.PortUnreachableV4, KernelVectors.PortUnreachableV6, KernelVectors.EchoReplyV4,
        KernelVectors.EchoReplyV6, KernelVectors.RstV4, KernelVectors.RouterSolicitation,
    };

    public static TheoryData<int> BuiltKinds() => new() { 0, 1, 2, 3, 4, 5, 6, 7, 8 };

    private static byte[] BuiltKind(int kind) => kind switch
    {
        0 => Tcp(Syn(false)),
        1 => Tcp(DataSegment(true, 77)),
        2 => Udp(false, 13),
        3 => Udp(true, 0),
        4 => Echo(false, payload: 5),
        5 => Echo(true, payload: 0),
        6 => Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 4, Tcp(Syn(false)))),
        7 => Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 1, 4, Udp(true, 100))),
        _ => WithIpv6Extensions(Tcp(Syn(true)), (IpProto.HopByHop, 8), (IpProto.Ah, 16)),
    };

    [Theory]
    [MemberData(nameof(KernelPackets))]
    public void VerifyTransport_KernelGeneratedPacket_Valid(string hex)
    {
        byte[] packet = KernelVectors.Bytes(hex);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, ParseOk(packet)));
    }

    [Theory]
    [MemberData(nameof(KernelPackets))]
    public void VerifyTransport_KernelPacketAnyCoveredBitFlipped_Invalid(string hex)
    {
        byte[] packet = KernelVectors.Bytes(hex);
        ParsedPacket p = ParseOk(packet);
        bool pseudo = p.Protocol != IpProto.Icmp;
        for (int i = pseudo ? (p.IsV6 ? 8 : 12) : p.L3HeaderLength; i < packet.Length; i++)
        {
            if (i < p.L3HeaderLength && i >= (p.IsV6 ? 40 : 20))
                continue; // IPv4 options or IPv6 extension headers are outside the checksum
            for (int bit = 0; bit < 8; bit++)
            {
                byte[] copy = (byte[])packet.Clone();
                copy[i] ^= (byte)(1 << bit);
                if (PacketParser.Parse(copy, out ParsedPacket q) != InvalidReason.None)
                    continue;
                Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyTransport(copy, q));
            }
        }
    }

    [Theory]
    [MemberData(nameof(BuiltKinds))]
    public void VerifyTransport_BuiltPacketCorruptedPayloadWord_Invalid(int kind)
    {
        byte[] packet = BuiltKind(kind);
        ParsedPacket p = ParseOk(packet);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, p));
        packet[^1] ^= 0x80;
        packet[p.L3HeaderLength + 1] ^= 0x01;
        Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyTransport(packet, p));
    }

    [Theory]
    [MemberData(nameof(BuiltKinds))]
    public void VerifyTransport_NotFullyCaptured_NotVerifiable(int kind)
    {
        byte[] packet = BuiltKind(kind);
        ParsedPacket p = ParseOk(packet);
        ReadOnlySpan<byte> cut = packet.AsSpan(0, packet.Length - 1);
        if (PacketParser.Parse(cut, out ParsedPacket q) == InvalidReason.None)
            Assert.Equal(ChecksumResult.NotVerifiable, Checksums.VerifyTransport(cut, q));
        Assert.Equal(ChecksumResult.NotVerifiable, Checksums.VerifyTransport(cut, p));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void VerifyTransport_UdpChecksumZero_ValidForBothFamilies(bool v6)
    {
        byte[] packet = Udp(v6);
        WriteU16(packet, (v6 ? 40 : 20) + 6, 0);
        packet[^1] ^= 0xFF; // content no longer matters
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, ParseOk(packet)));
    }

    [Fact]
    public void VerifyTransport_UdpAllOnesForZeroSum_ValidAndZeroComplementInvalid()
    {
        byte[] packet = Udp(false, 0);
        // Force the one's-complement sum to -0 by choosing the checksum word, then flip its representation.
        WriteU16(packet, 26, 0);
        ushort computed = ReferenceChecksum.TransportSum(packet, false, IpProto.Udp, 20);
        WriteU16(packet, 26, (ushort)~computed);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, ParseOk(packet)));
        WriteU16(packet, 26, (ushort)~computed ^ 0x0100);
        Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyTransport(packet, ParseOk(packet)));
    }

    [Fact]
    public void VerifyTransport_GenericProtocol_NotVerifiable()
    {
        byte[] packet = Build(b => PacketBuilder.Generic(b, false, V4Client, V4Server, 47, 20));
        Assert.Equal(ChecksumResult.NotVerifiable, Checksums.VerifyTransport(packet, ParseOk(packet)));
    }

    [Fact]
    public void VerifyTransport_Icmpv4ChecksumExcludesPseudoHeader()
    {
        byte[] packet = Echo(false);
        ParsedPacket p = ParseOk(packet);
        packet[12] ^= 0x55; // source address is not covered for ICMPv4
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, p));
    }

    [Fact]
    public void VerifyTransport_UsesIpLengthNotUdpLength()
    {
        // The kernel's nf_checksum covers skb->len - dataoff: a short UDP length field does not shrink it.
        byte[] packet = Udp(false, 10);
        WriteU16(packet, 24, 8);
        Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyTransport(packet, ParseOk(packet)));
        PacketBuilder.RewriteTransportChecksum(packet, ParseOk(packet));
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, ParseOk(packet)));
        Assert.Equal(0xFFFF, ReferenceChecksum.TransportSum(packet, false, IpProto.Udp, 20));
    }

    [Fact]
    public void InternetChecksum_RandomDataEveryLengthAndOffset_EqualsReference()
    {
        var random = new Random(1071);
        byte[] data = new byte[600];
        for (int round = 0; round < 20; round++)
        {
            random.NextBytes(data);
            if (round % 5 == 0)
                data.AsSpan().Fill(0xFF); // worst case for carries
            for (int start = 0; start < 10; start += 2)
            {
                for (int length = 0; length < 300; length++)
                {
                    ReadOnlySpan<byte> slice = data.AsSpan(start, length);
                    Assert.Equal((ushort)~ReferenceChecksum.Sum(slice), Checksums.InternetChecksum(slice));
                }
            }
        }
    }

    [Fact]
    public void InternetChecksum_MaximumSizeAllOnes_FoldsCorrectly()
    {
        byte[] data = new byte[65535];
        data.AsSpan().Fill(0xFF);
        Assert.Equal((ushort)~ReferenceChecksum.Sum(data), Checksums.InternetChecksum(data));
        BinaryPrimitives.WriteUInt16BigEndian(data, 0x0001);
        Assert.Equal((ushort)~ReferenceChecksum.Sum(data), Checksums.InternetChecksum(data));
    }

    [Fact]
    public void VerifyTransport_SteadyState_AllocatesNothing()
    {
        byte[] tcp = Tcp(DataSegment(true, 1000));
        ParsedPacket p = ParseOk(tcp);
        Checksums.VerifyTransport(tcp, p);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
            Checksums.VerifyTransport(tcp, p);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
