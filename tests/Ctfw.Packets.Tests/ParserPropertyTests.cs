using CsCheck;
using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

/// <summary>
/// Property tests (CsCheck): every truncated or mutated packet is classified, parsed or INVALID with
/// a named reason, and never throws. CsCheck shrinks a failing input to a small one, which the
/// hand-rolled loops of <see cref="FuzzTests"/> do not. Each run draws new inputs; a failure prints the
/// seed that reproduces it (pass it as <c>seed:</c>). One thread and bounded iterations: a few seconds.
/// </summary>
public class ParserPropertyTests
{
    private const int Iterations = 20_000;

    private static readonly byte[][] s_seeds =
    [
        Tcp(Syn(false)), Tcp(Syn(true)), Tcp(DataSegment(false, 40)), Udp(false), Udp(true), Echo(false), Echo(true),
        Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 3, Tcp(DataSegment(false)))),
        Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 1, 0, WithIpv6Extensions(Udp(true), (IpProto.Ah, 12)))),
        WithIpv6Extensions(WithIpv6Fragment(Tcp(DataSegment(true, 8)), 0, true), (IpProto.HopByHop, 8), (IpProto.Ipv6Route, 16)),
        WithIpv4Options(Udp(false), [1, 1, 1, 0]),
        KernelVectors.Bytes(KernelVectors.SynV6),
    ];

    /// <summary>A seed packet with 0-6 byte overwrites and an optional cut.</summary>
    private static readonly Gen<byte[]> s_mutated =
        Gen.Select(
            Gen.Int[0, s_seeds.Length - 1],
            Gen.Select(Gen.Int[0, 1 << 16], Gen.Byte).Array[0, 6],
            Gen.Int[0, 2048],
            Gen.Bool,
            (seed, edits, cut, truncate) =>
            {
                byte[] packet = (byte[])s_seeds[seed].Clone();
                foreach ((int at, byte value) in edits)
                    packet[at % packet.Length] = value;
                return truncate ? packet[..(cut % (packet.Length + 1))] : packet;
            });

    [Fact]
    public void Parse_ArbitraryBytes_ClassifiedWithoutThrowing() =>
        Gen.Byte.Array[0, 200].Sample(AssertClassified, iter: Iterations, threads: 1);

    [Fact]
    public void Parse_IpVersionNibbleThenArbitraryBytes_ClassifiedWithoutThrowing() =>
        Gen.Select(Gen.OneOf((byte)0x45, (byte)0x46, (byte)0x4f, (byte)0x60), Gen.Byte.Array[0, 200],
                (first, rest) => (byte[])[first, .. rest])
            .Sample(AssertClassified, iter: Iterations, threads: 1);

    [Fact]
    public void Parse_MutatedValidPackets_ClassifiedWithoutThrowing() =>
        s_mutated.Sample(AssertClassified, iter: Iterations, threads: 1);

    [Fact]
    public void Parse_EveryPrefixOfMutatedPackets_ClassifiedWithoutThrowing() =>
        s_mutated.Sample(packet =>
        {
            for (int length = 0; length <= packet.Length; length++)
                AssertClassified(packet[..length]);
        }, iter: 500, threads: 1);

    [Fact]
    public void Parse_UnmutatedSeeds_AreParsed()
    {
        // Guards the generators: mutations of packets that do not even parse would test little.
        foreach (byte[] seed in s_seeds)
            Assert.Equal(InvalidReason.None, PacketParser.Parse(seed, out _));
    }

    private static void AssertClassified(byte[] packet)
    {
        InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket p);
        Assert.True((uint)reason < (uint)InvalidReasons.Count, $"reason {(int)reason} out of range");
        if (reason != InvalidReason.None)
        {
            Assert.NotEqual("unknown", reason.Name());
            return;
        }
        Assert.True(p.IpVersion is 4 or 6);
        Assert.True(p.CapturedLength <= packet.Length && p.L3HeaderLength <= p.CapturedLength);
        Assert.Equal(p.IpTotalLength, p.L3HeaderLength + p.L4Length);
        Checksums.VerifyTransport(packet, p);
    }
}
