using System.Buffers.Binary;
using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

public class PacketBuilderTests
{
    private static readonly IpAddress s_kernelLocal4 = Addr("10.99.0.1");
    private static readonly IpAddress s_kernelPeer4 = Addr("10.99.0.2");
    private static readonly IpAddress s_kernelLocal6 = Addr("fd00:99::1");
    private static readonly IpAddress s_kernelPeer6 = Addr("fd00:99::2");

    [Fact]
    public void Tcp_LinuxSynOptionsV4_MatchesKernelSegmentByteForByte()
    {
        byte[] kernel = KernelVectors.Bytes(KernelVectors.SynV4);
        TcpSpec spec = new()
        {
            Src = s_kernelLocal4, Dst = s_kernelPeer4, SrcPort = 0xe2c6, DstPort = 80, Seq = 0xd943f180,
            Flags = TcpFlags.Syn, Window = 0xfaf0, Mss = 1460, SackPermitted = true, Timestamp = true,
            TsVal = 0x3a6331a6, WindowScale = 10,
        };
        byte[] built = Tcp(spec);
        Assert.Equal(kernel.Length, built.Length);
        Assert.Equal(kernel.AsSpan(20).ToArray(), built.AsSpan(20).ToArray()); // TCP part incl. checksum
        Assert.Equal(kernel.AsSpan(12, 8).ToArray(), built.AsSpan(12, 8).ToArray());
    }

    [Fact]
    public void Tcp_LinuxSynOptionsV6_MatchesKernelSegmentByteForByte()
    {
        byte[] kernel = KernelVectors.Bytes(KernelVectors.SynV6);
        TcpSpec spec = new()
        {
            V6 = true, Src = s_kernelLocal6, Dst = s_kernelPeer6, SrcPort = 0xad0a, DstPort = 80, Seq = 0xdd1ccecd,
            Flags = TcpFlags.Syn, Window = 0xfd20, Mss = 1440, SackPermitted = true, Timestamp = true,
            TsVal = 0x3566168f, WindowScale = 10,
        };
        byte[] built = Tcp(spec);
        Assert.Equal(kernel.AsSpan(4).ToArray(), built.AsSpan(4).ToArray()); // all but version/class/flow label
    }

    [Fact]
    public void Tcp_RstWithoutOptions_MatchesKernelSegment()
    {
        byte[] kernel = KernelVectors.Bytes(KernelVectors.RstV4);
        TcpSpec spec = new()
        {
            Src = s_kernelLocal4, Dst = s_kernelPeer4, SrcPort = 9, DstPort = 40000, Seq = 0, Ack = 1001,
            Flags = TcpFlags.Rst | TcpFlags.Ack,
        };
        Assert.Equal(kernel.AsSpan(20).ToArray(), Tcp(spec).AsSpan(20).ToArray());
    }

    [Fact]
    public void IcmpError_KernelPortUnreachableV4_MatchesKernelMessage()
    {
        byte[] kernel = KernelVectors.Bytes(KernelVectors.PortUnreachableV4);
        byte[] built = Build(b => PacketBuilder.IcmpError(b, false, s_kernelLocal4, s_kernelPeer4, 3, 3, kernel.AsSpan(28)));
        Assert.Equal(kernel.AsSpan(20).ToArray(), built.AsSpan(20).ToArray());
    }

    [Fact]
    public void IcmpError_KernelPortUnreachableV6_MatchesKernelMessage()
    {
        byte[] kernel = KernelVectors.Bytes(KernelVectors.PortUnreachableV6);
        byte[] built = Build(b => PacketBuilder.IcmpError(b, true, s_kernelLocal6, s_kernelPeer6, 1, 4, kernel.AsSpan(48)));
        Assert.Equal(kernel.AsSpan(40).ToArray(), built.AsSpan(40).ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Udp_KernelPayloadCopiedIn_ReproducesKernelChecksum(bool v6)
    {
        byte[] kernel = KernelVectors.Bytes(v6 ? KernelVectors.UdpV6 : KernelVectors.UdpV4);
        int h = v6 ? 40 : 20;
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(kernel.AsSpan(h));
        int payload = kernel.Length - h - 8;
        byte[] built = Build(b => PacketBuilder.Udp(b, v6, v6 ? s_kernelLocal6 : s_kernelLocal4, v6 ? s_kernelPeer6 : s_kernelPeer4,
            sport, 5353, payload));
        kernel.AsSpan(h + 8).CopyTo(built.AsSpan(h + 8));
        PacketBuilder.RewriteTransportChecksum(built, ParseOk(built));
        Assert.Equal(kernel.AsSpan(h).ToArray(), built.AsSpan(h).ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Icmp_EchoReplyPayloadCopiedIn_ReproducesKernelChecksum(bool v6)
    {
        byte[] kernel = KernelVectors.Bytes(v6 ? KernelVectors.EchoReplyV6 : KernelVectors.EchoReplyV4);
        int h = v6 ? 40 : 20;
        int payload = kernel.Length - h - 8;
        byte[] built = v6
            ? Build(b => PacketBuilder.Icmpv6(b, s_kernelLocal6, s_kernelPeer6, 129, 0, 0x4321, 9, payload))
            : Build(b => PacketBuilder.Icmp(b, s_kernelLocal4, s_kernelPeer4, 0, 0, 0x1234, 7, payload));
        kernel.AsSpan(h + 8).CopyTo(built.AsSpan(h + 8));
        PacketBuilder.RewriteTransportChecksum(built, ParseOk(built));
        Assert.Equal(kernel.AsSpan(h).ToArray(), built.AsSpan(h).ToArray());
    }

    [Fact]
    public void Ipv4Header_AnyBuiltPacket_ChecksumMatchesReferenceAndKernelLayout()
    {
        byte[] kernel = KernelVectors.Bytes(KernelVectors.SynV4);
        Assert.Equal(0xFFFF, ReferenceChecksum.Sum(kernel.AsSpan(0, 20))); // the oracle agrees with the kernel
        foreach (byte[] p in new[] { Tcp(Syn(false)), Udp(false), Echo(false), Build(b => PacketBuilder.Generic(b, false, V4Client, V4Server, 47, 3)) })
        {
            Assert.Equal(0x45, p[0]);
            Assert.Equal(p.Length, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(2)));
            Assert.Equal(PacketBuilder.DefaultTtl, p[8]);
            Assert.Equal(0xFFFF, ReferenceChecksum.Sum(p.AsSpan(0, 20)));
        }
    }

    [Theory]
    [InlineData(false, IpProto.Tcp)]
    [InlineData(true, IpProto.Tcp)]
    [InlineData(false, IpProto.Udp)]
    [InlineData(true, IpProto.Udp)]
    [InlineData(false, IpProto.Icmp)]
    [InlineData(true, IpProto.Icmpv6)]
    public void Transport_BuiltPacket_ChecksumValidPerReferenceImplementation(bool v6, byte protocol)
    {
        for (int payload = 0; payload < 40; payload++)
        {
            TcpSpec spec = DataSegment(v6, payload);
            byte[] p = protocol switch
            {
                IpProto.Tcp => Tcp(spec),
                IpProto.Udp => Build(b => PacketBuilder.Udp(b, v6, Client(v6), Server(v6), 1, 2, payload, 0xA7)),
                _ => Echo(v6, 77, payload),
            };
            Assert.Equal(0xFFFF, ReferenceChecksum.TransportSum(p, v6, protocol, v6 ? 40 : 20));
        }
    }

    [Fact]
    public void Udp_ComputedChecksumZero_SentAsAllOnes()
    {
        // Search the source port for the one value whose checksum computes to zero; RFC 768 says send 0xFFFF.
        bool found = false;
        for (int sport = 0; sport <= ushort.MaxValue && !found; sport++)
        {
            byte[] p = Build(b => PacketBuilder.Udp(b, false, V4Client, V4Server, (ushort)sport, 53, 4));
            ushort field = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(26));
            Assert.NotEqual(0, field);
            if (field == 0xFFFF)
            {
                found = true;
                Assert.Equal(0xFFFF, ReferenceChecksum.TransportSum(p, false, IpProto.Udp, 20));
                Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(p, ParseOk(p)));
            }
        }
        Assert.True(found);
    }

    [Fact]
    public void Tcp_OptionsWithoutTimestamp_UseLinuxNopPadding()
    {
        TcpSpec spec = Syn(false);
        spec.Timestamp = false;
        byte[] p = Tcp(spec);
        // MSS; NOP,NOP,SACK_PERM; NOP,WSCALE
        Assert.Equal(new byte[] { 2, 4, 0x05, 0xB4, 1, 1, 4, 2, 1, 3, 3, 7 }, p.AsSpan(40, 12).ToArray());
        Assert.Equal(8, p[32] >> 4);
    }

    [Fact]
    public void Tcp_SackBlocksWithTimestamp_NopNopTsThenNopNopSack()
    {
        TcpSpec spec = DataSegment(false, 0);
        spec.SackBlockCount = 2;
        spec.SackEdges[0] = 100;
        spec.SackEdges[1] = 200;
        spec.SackEdges[2] = 300;
        spec.SackEdges[3] = 400;
        byte[] p = Tcp(spec);
        ReadOnlySpan<byte> o = p.AsSpan(40, p.Length - 40);
        Assert.Equal(new byte[] { 1, 1, 8, 10 }, o[..4].ToArray());
        Assert.Equal(new byte[] { 1, 1, 5, 18 }, o.Slice(12, 4).ToArray());
        Assert.Equal(400u, BinaryPrimitives.ReadUInt32BigEndian(o[28..]));
        Assert.Equal(32, o.Length);
    }

    [Fact]
    public void Tcp_SackSpanOverload_EqualsFixedFields()
    {
        TcpSpec spec = DataSegment(true, 3);
        spec.SackBlockCount = 3;
        uint[] edges = [1, 2, 3, 4, 5, 6];
        for (int i = 0; i < edges.Length; i++)
            spec.SackEdges[i] = edges[i];
        TcpSpec plain = spec;
        plain.SackBlockCount = 0;
        Assert.Equal(Tcp(spec), Build(b => PacketBuilder.Tcp(b, plain, edges)));
    }

    [Fact]
    public void Tcp_OptionsOver40Bytes_Throws()
    {
        TcpSpec spec = Syn(false);
        spec.SackBlockCount = 4;
        Assert.Throws<ArgumentException>(() => Tcp(spec));
    }

    [Fact]
    public void Builders_BufferTooSmall_Throw()
    {
        Assert.Throws<ArgumentException>(() => PacketBuilder.Udp(new byte[27], false, V4Client, V4Server, 1, 2, 0));
        Assert.Throws<ArgumentException>(() => PacketBuilder.Generic(new byte[70_000], false, V4Client, V4Server, 47, 65516));
        Assert.Equal(28, PacketBuilder.Udp(new byte[28], false, V4Client, V4Server, 1, 2, 0));
    }

    [Fact]
    public void Tcp_PayloadFillAndTtl_Honoured()
    {
        TcpSpec spec = DataSegment(false, 5);
        spec.Ttl = 3;
        byte[] p = Tcp(spec);
        Assert.Equal(3, p[8]);
        Assert.All(p.AsSpan(p.Length - 5).ToArray(), b => Assert.Equal(0x5A, b));
    }

    [Theory]
    [InlineData(false, 576)]
    [InlineData(true, 1280)]
    public void IcmpError_LongOffendingPacket_TruncatedToMinimumMtu(bool v6, int limit)
    {
        byte[] offending = Tcp(DataSegment(v6, 3000));
        byte[] error = Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), v6 ? (byte)2 : (byte)3, v6 ? (byte)0 : (byte)4, offending, rest: 1400));
        Assert.Equal(limit, error.Length);
        int h = v6 ? 40 : 20;
        Assert.Equal(offending.AsSpan(0, limit - h - 8).ToArray(), error.AsSpan(h + 8).ToArray());
        Assert.Equal(1400u, BinaryPrimitives.ReadUInt32BigEndian(error.AsSpan(h + 4)));
    }

    [Fact]
    public void Ipv4SetFragment_OffsetAndMf_WrittenWithValidHeaderChecksum()
    {
        byte[] p = Udp(false);
        PacketBuilder.Ipv4SetFragment(p, 1480, moreFragments: true);
        Assert.Equal(0x2000 | 185, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(6)));
        Assert.Equal(0xFFFF, ReferenceChecksum.Sum(p.AsSpan(0, 20)));
    }

    [Fact]
    public void Ipv6InsertExtensionHeader_Ah_LengthFieldInFourByteUnitsMinusTwo()
    {
        byte[] p = WithIpv6Extensions(Udp(true), (IpProto.Ah, 24));
        Assert.Equal(IpProto.Ah, p[6]);
        Assert.Equal(IpProto.Udp, p[40]);
        Assert.Equal(4, p[41]);
        Assert.Equal(p.Length - 40, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(4)));
    }

    [Fact]
    public void Builders_SteadyState_AllocateNothing()
    {
        byte[] buffer = new byte[2048];
        byte[] embedded = Tcp(Syn(false));
        TcpSpec spec = Syn(true);
        spec.SackBlockCount = 1;
        void Once()
        {
            PacketBuilder.Tcp(buffer, spec);
            PacketBuilder.Udp(buffer, true, V6Client, V6Server, 1, 2, 100);
            PacketBuilder.Icmp(buffer, V4Client, V4Server, 8, 0, 1, 1, 10);
            PacketBuilder.IcmpError(buffer, false, V4Router, V4Client, 3, 1, embedded);
            PacketBuilder.Generic(buffer, false, V4Client, V4Server, 50, 60);
        }
        Once();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
            Once();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
