using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

public class AllocationTests
{
    [Fact]
    public void Parse_TenThousandMixedPacketsAfterWarmUp_AllocatesZeroBytes()
    {
        byte[][] packets =
        [
            Tcp(Syn(false)), Tcp(Syn(true)), Udp(false), Udp(true), Echo(false), Echo(true),
            Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 3, Tcp(DataSegment(false)))),
            Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 1, 0, WithIpv6Extensions(Udp(true), (IpProto.Ah, 12)))),
            Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, Tcp(Syn(true)))),
            WithIpv6Extensions(Tcp(DataSegment(true)), (IpProto.HopByHop, 8), (IpProto.Ipv6Frag, 8)),
            Tcp(DataSegment(false)).AsSpan(0, 30).ToArray(), // an invalid one too
        ];
        int sink = 0;
        for (int i = 0; i < 1000; i++)
            sink += (int)PacketParser.Parse(packets[i % packets.Length], out _);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++)
        {
            sink += (int)PacketParser.Parse(packets[i % packets.Length], out ParsedPacket p);
            sink += p.SrcPort;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.NotEqual(0, sink);
    }
}
