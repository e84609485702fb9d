using System.Buffers.Binary;
using System.Net;
using System.Reflection;
using Ctfw.Capture;
using Ctfw.Packets;
using PacketDotNet;
using PacketDotNet.Utils;
using Xunit.Abstractions;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests.Differential;

/// <summary>
/// ctfw's <see cref="PacketParser"/> against PacketDotNet, an independent parser (tests only, never
/// on the per-packet path): every packet the kernel recordings hold, a set of built packets covering
/// each header type, and mutations of both. <see cref="SecondOpinion"/> says what is compared and what
/// is excluded by design.
/// </summary>
public sealed class DifferentialParserTests(ITestOutputHelper output)
{
    private const int MutationsPerSeed = 200;

    private static readonly string s_kernelData = Path.Combine(
        typeof(DifferentialParserTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CtfwRepoRoot").Value!,
        "tests", "data", "kernel");

    [Fact]
    public void KernelRecordings_EveryPacket_BothParsersAgree()
    {
        var opinion = new SecondOpinion();
        foreach ((string label, byte[] packet) in RecordedPackets())
            opinion.Compare(packet, label);
        output.WriteLine(opinion.Summary);
        opinion.AssertAgreement();
        Assert.True(Directory.GetFiles(s_kernelData, "*.pcap").Length >= 60, "the kernel recordings are missing");
        Assert.True(opinion.Accepted >= 400, opinion.Summary);
    }

    [Fact]
    public void BuiltPackets_EveryHeaderType_BothParsersAgree()
    {
        var opinion = new SecondOpinion();
        foreach ((string label, byte[] packet) in BuiltSeeds())
            opinion.Compare(packet, label);
        output.WriteLine(opinion.Summary);
        opinion.AssertAgreement();
        Assert.Equal(BuiltSeeds().Count(), opinion.Accepted);
    }

    [Fact]
    public void MutatedPackets_BitFlipsTruncationsAndLengthFields_BothParsersAgree()
    {
        var opinion = new SecondOpinion();
        var random = new Random(20261206);
        List<(string Label, byte[] Packet)> seeds = [.. BuiltSeeds(), .. RecordedPackets().Where((_, i) => i % 4 == 0)];
        foreach ((string label, byte[] seed) in seeds)
        {
            for (int m = 0; m < MutationsPerSeed; m++)
            {
                byte[] packet = Mutate(seed, random, out string how);
                opinion.Compare(packet, $"{label} {how}");
            }
        }
        output.WriteLine(opinion.Summary);
        opinion.AssertAgreement();
        // The mutations must reach both sides of the comparison, not only rejections.
        Assert.True(opinion.Accepted > opinion.Packets / 10, opinion.Summary);
        Assert.True(opinion.RejectedCorroborated > opinion.Packets / 10, opinion.Summary);
    }

    [Fact]
    public void PacketDotNetCraftedTcpSyn_WithOptions_CtfwReadsEveryField()
    {
        // PacketDotNet 1.4.8's TcpPacket(sport, dport) has a fixed 20-byte header and throws when
        // options are set; starting from a 40-byte segment with data offset 10 leaves them room.
        byte[] header = new byte[40];
        header[12] = 10 << 4;
        var tcp = new TcpPacket(new ByteArraySegment(header))
        {
            SourcePort = 40000,
            DestinationPort = 443,
            SequenceNumber = 0xFFFF_FFF0,
            WindowSize = 64240,
            Synchronize = true,
            // MSS 1460, SACK-permitted, timestamps 0xA1B2C3D4/0, NOP, window scale 7 (Linux's SYN layout).
            Options = [2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0xA1, 0xB2, 0xC3, 0xD4, 0, 0, 0, 0, 1, 3, 3, 7],
        };
        var ip = new IPv4Packet(IPAddress.Parse("192.0.2.10"), IPAddress.Parse("198.51.100.20")) { PayloadPacket = tcp, TimeToLive = 63 };
        ip.UpdateCalculatedValues();
        tcp.UpdateTcpChecksum();
        ip.UpdateIPChecksum();
        byte[] bytes = ip.Bytes;

        ParsedPacket p = ParseOk(bytes);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(bytes, p));
        Assert.Equal((V4Client, V4Server, (byte)63), (p.Src, p.Dst, p.Ttl));
        Assert.Equal((40000, 443), ((int)p.SrcPort, (int)p.DstPort));
        Assert.Equal(0xFFFF_FFF0u, p.Seq);
        Assert.Equal(TcpFlags.Syn, p.TcpFlags);
        Assert.Equal(40, p.TcpHeaderLength);
        Assert.Equal(0, p.TcpPayloadLength);
        Assert.Equal((1460, true, true, 0xA1B2C3D4u, true, (byte)7),
            ((int)p.TcpOptions.Mss, p.TcpOptions.SackPermitted, p.TcpOptions.HasTimestamp, p.TcpOptions.TsVal, p.TcpOptions.HasWindowScale, p.TcpOptions.WindowScale));
    }

    [Fact]
    public void PacketDotNetCraftedIpv6Udp_CtfwReadsLengthsAndChecksumVerifies()
    {
        var udp = new UdpPacket(5353, 53) { PayloadData = [.. Enumerable.Repeat((byte)0x33, 30)] };
        var ip = new IPv6Packet(IPAddress.Parse("2001:db8::10"), IPAddress.Parse("2001:db8:1::20")) { PayloadPacket = udp, HopLimit = 64 };
        ip.UpdateCalculatedValues();
        udp.UpdateUdpChecksum();
        byte[] bytes = ip.Bytes;

        ParsedPacket p = ParseOk(bytes);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(bytes, p));
        Assert.Equal((V6Client, V6Server, (byte)IpProto.Udp), (p.Src, p.Dst, p.Protocol));
        Assert.Equal((5353, 53, 38), ((int)p.SrcPort, (int)p.DstPort, (int)p.UdpLength));
        Assert.Equal((40, 78, 38), (p.L3HeaderLength, p.IpTotalLength, p.L4Length));

        // One bit of payload flipped: PacketDotNet's checksum no longer holds, and ctfw sees that too.
        bytes[^1] ^= 1;
        Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyTransport(bytes, ParseOk(bytes)));
    }

    private static IEnumerable<(string Label, byte[] Packet)> RecordedPackets()
    {
        foreach (string path in Directory.GetFiles(s_kernelData, "*.pcap").Order(StringComparer.Ordinal))
        {
            using CaptureReader reader = CaptureReader.Open(path);
            List<(string, byte[])> packets = [];
            while (reader.TryRead(out CaptureRecord record))
            {
                if (CapturedDatagram.Get(record, ChecksumPolicy.Off, out CapturedDatagram datagram) == LinkResult.Ip)
                    packets.Add(($"{Path.GetFileName(path)}#{record.Index + 1}", datagram.Packet.ToArray()));
            }
            Assert.Null(reader.Error);
            foreach ((string, byte[]) packet in packets)
                yield return packet;
        }
    }

    private static IEnumerable<(string Label, byte[] Packet)> BuiltSeeds()
    {
        foreach (bool v6 in new[] { false, true })
        {
            string f = v6 ? "v6" : "v4";
            yield return ($"{f} tcp syn", Tcp(Syn(v6)));
            yield return ($"{f} tcp data", Tcp(DataSegment(v6, 40)));
            yield return ($"{f} tcp fin/ack", Tcp(DataSegment(v6, 0) with { Flags = TcpFlags.Fin | TcpFlags.Ack }));
            yield return ($"{f} udp", Udp(v6));
            yield return ($"{f} echo", Echo(v6));
            yield return ($"{f} icmp error for tcp", Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), v6 ? (byte)1 : (byte)3, 3, Tcp(DataSegment(v6)))));
            yield return ($"{f} icmp error for udp", Build(b => PacketBuilder.IcmpError(b, v6, Router(v6), Client(v6), v6 ? (byte)3 : (byte)11, 0, Udp(v6))));
        }
        yield return ("v4 options", WithIpv4Options(Udp(false), [1, 1, 1, 0]));
        yield return ("v4 first fragment", FirstFragmentV4());
        yield return ("v6 hop-by-hop, routing, destination options", WithIpv6Extensions(Tcp(Syn(true)), (IpProto.HopByHop, 8), (IpProto.Ipv6Route, 24), (IpProto.Ipv6DestOpts, 16)));
        yield return ("v6 first fragment", WithIpv6Fragment(Udp(true), 0, true));
        yield return ("v6 atomic fragment", WithIpv6Fragment(Tcp(DataSegment(true, 8)), 0, false));
    }

    private static byte[] FirstFragmentV4()
    {
        byte[] packet = Tcp(DataSegment(false, 100));
        PacketBuilder.Ipv4SetFragment(packet, 0, moreFragments: true);
        return packet;
    }

    private static byte[] Mutate(byte[] seed, Random random, out string how)
    {
        byte[] packet = (byte[])seed.Clone();
        switch (random.Next(4))
        {
            case 0:
                int flips = 1 + random.Next(4);
                for (int i = 0; i < flips; i++)
                    packet[random.Next(packet.Length)] ^= (byte)(1 << random.Next(8));
                how = $"{flips} bit flips";
                return packet;
            case 1:
                int length = random.Next(packet.Length + 1);
                how = $"truncated to {length}";
                return packet[..length];
            case 2:
                // A length field of the IP or L4 header set to a random value.
                int[] offsets = (packet[0] >> 4) == 6 ? [4] : [2];
                int l3 = PacketParser.Parse(packet, out ParsedPacket p) == InvalidReason.None ? p.L3HeaderLength : 0;
                int at = l3 > 0 && p.Protocol == IpProto.Udp && random.Next(2) == 0 ? l3 + 4 : offsets[0];
                ushort value = (ushort)random.Next(0x10000);
                BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(at), value);
                how = $"u16 at {at} = {value}";
                return packet;
            default:
                // Header length nibbles: IPv4 IHL, TCP data offset.
                int l3h = (packet[0] >> 4) == 4 ? (packet[0] & 0xF) * 4 : 40;
                if (random.Next(2) == 0 || packet.Length <= l3h + 12)
                {
                    packet[0] = (byte)(packet[0] & 0xF0 | random.Next(16));
                    how = $"ihl/traffic class nibble {packet[0] & 0xF}";
                }
                else
                {
                    packet[l3h + 12] = (byte)(random.Next(16) << 4 | packet[l3h + 12] & 0xF);
                    how = $"byte {l3h + 12} high nibble {packet[l3h + 12] >> 4}";
                }
                return packet;
        }
    }
}
