using System.Buffers.Binary;
using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

/// <summary>
/// Random and mutated input with fixed seeds. Besides "no exception, terminates" (a hang fails the
/// timeout), every accepted packet must satisfy the invariants the tracker relies on.
/// </summary>
public class FuzzTests
{
    private const int Iterations = 100_000;
    private const int TimeoutMs = 120_000;

    private static byte[][] Seeds() =>
    [
        Tcp(Syn(false)), Tcp(Syn(true)), Tcp(DataSegment(false, 40)), Udp(false), Udp(true), Echo(false), Echo(true),
        Build(b => PacketBuilder.IcmpError(b, false, V4Router, V4Client, 3, 3, Tcp(DataSegment(false)))),
        Build(b => PacketBuilder.IcmpError(b, true, V6Router, V6Client, 1, 0, WithIpv6Extensions(Udp(true), (IpProto.Ah, 12)))),
        Build(b => PacketBuilder.Icmpv6Redirect(b, V6LinkLocalRouter, V6Client, Addr("fe80::2"), V6Server, Tcp(Syn(true)))),
        WithIpv6Extensions(WithIpv6Fragment(Tcp(DataSegment(true, 8)), 0, true), (IpProto.HopByHop, 8), (IpProto.Ipv6Route, 16)),
        WithIpv4Options(Udp(false), [1, 1, 1, 0]),
        KernelVectors.Bytes(KernelVectors.PortUnreachableV4),
        KernelVectors.Bytes(KernelVectors.SynV6),
    ];

    [Fact(Timeout = TimeoutMs)]
    public async Task Parse_RandomBytes_NeverThrowsAndInvariantsHold()
    {
        await Task.Run(() =>
        {
            var random = new Random(20250101);
            byte[] buffer = new byte[256];
            for (int i = 0; i < Iterations; i++)
            {
                random.NextBytes(buffer);
                // Bias towards plausible versions so the deeper layers get exercised too.
                int mode = i % 3;
                if (mode == 0)
                    buffer[0] = (byte)(0x45 + random.Next(11));
                else if (mode == 1)
                    buffer[0] = 0x60;
                ParseAndCheck(buffer.AsSpan(0, random.Next(buffer.Length + 1)));
            }
        });
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Parse_BitFlippedValidPackets_NeverThrowsAndInvariantsHold()
    {
        await Task.Run(() =>
        {
            var random = new Random(42);
            byte[][] seeds = Seeds();
            byte[] buffer = new byte[2048];
            for (int i = 0; i < Iterations; i++)
            {
                byte[] seed = seeds[i % seeds.Length];
                seed.CopyTo(buffer, 0);
                int flips = 1 + random.Next(4);
                for (int f = 0; f < flips; f++)
                    buffer[random.Next(seed.Length)] ^= (byte)(1 << random.Next(8));
                ParseAndCheck(buffer.AsSpan(0, i % 4 == 0 ? random.Next(seed.Length + 1) : seed.Length));
            }
        });
    }

    [Fact(Timeout = TimeoutMs)]
    public async Task Parse_LengthFieldsCorrupted_NeverThrowsAndInvariantsHold()
    {
        await Task.Run(() =>
        {
            var random = new Random(1234);
            byte[][] seeds = Seeds();
            byte[] buffer = new byte[2048];
            for (int i = 0; i < Iterations; i++)
            {
                byte[] seed = seeds[i % seeds.Length];
                seed.CopyTo(buffer, 0);
                Span<byte> p = buffer.AsSpan(0, seed.Length);
                bool v6 = p[0] >> 4 == 6;
                int l3 = v6 ? 40 : (p[0] & 0xF) * 4;
                ushort value = random.Next(4) switch
                {
                    0 => 0,
                    1 => ushort.MaxValue,
                    2 => (ushort)random.Next(seed.Length + 16),
                    _ => (ushort)random.Next(65536),
                };
                switch (random.Next(7))
                {
                    case 0: BinaryPrimitives.WriteUInt16BigEndian(p[(v6 ? 4 : 2)..], value); break; // IP length
                    case 1: if (!v6) p[0] = (byte)(0x40 | (value & 0xF)); break;                   // IHL
                    case 2: if (l3 + 13 < p.Length) p[l3 + 12] = (byte)value; break;                // TCP doff
                    case 3: if (l3 + 6 <= p.Length) BinaryPrimitives.WriteUInt16BigEndian(p[(l3 + 4)..], value); break; // UDP length
                    case 4: if (v6 && p.Length > 41) p[41] = (byte)value; break;                     // first ext-header length
                    case 5: if (l3 + 22 < p.Length) p[l3 + 21] = (byte)value; break;                // first TCP option length
                    default: p[v6 ? 6 : 9] = (byte)value; break;                                      // protocol / next header
                }
                ParseAndCheck(p);
            }
        });
    }

    [Fact]
    public void Parse_DegenerateTcpOptions_Terminates()
    {
        TcpSpec spec = DataSegment(false, 0);
        foreach (byte fill in new byte[] { 0, 1, 2, 3, 4, 5, 8, 0xFF })
        {
            byte[] options = new byte[40];
            options.AsSpan().Fill(fill);
            byte[] packet = Build(b => PacketBuilder.TcpWithOptions(b, spec, options));
            ParseAndCheck(packet);
        }
    }

    private static void ParseAndCheck(ReadOnlySpan<byte> packet)
    {
        InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket p);
        if (reason != InvalidReason.None)
            return;
        Assert.True(p.IpVersion is 4 or 6);
        Assert.Equal(p.IpTotalLength, p.L3HeaderLength + p.L4Length);
        Assert.True(p.CapturedLength <= packet.Length && p.CapturedLength <= p.IpTotalLength);
        Assert.True(p.L3HeaderLength <= p.CapturedLength);
        Assert.True(p.L4Length >= 0);
        if (p.Protocol == IpProto.Tcp)
        {
            Assert.InRange(p.TcpHeaderLength, 20, 60);
            Assert.True(p.L3HeaderLength + p.TcpHeaderLength <= p.CapturedLength);
            Assert.Equal(p.L4Length - p.TcpHeaderLength, p.TcpPayloadLength);
            Assert.True(p.TcpOptions.WindowScale <= 14);
            Assert.True(p.TcpOptions.SackBlockCount <= 4);
        }
        if (p.Protocol == IpProto.Udp)
            Assert.InRange(p.UdpLength, 8, p.L4Length);
        // Must not throw either, whatever the parser accepted.
        Checksums.VerifyTransport(packet, p);
    }
}
