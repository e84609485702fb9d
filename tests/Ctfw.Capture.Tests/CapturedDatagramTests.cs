using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Capture.Tests;

public class CapturedDatagramTests
{
    private static readonly byte[] s_mac = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

    private static IpAddress V4(string text) => IpAddress.TryParse(text, out IpAddress a, out _) ? a : throw new ArgumentException(text);

    private static byte[] Tcp(int payload = 0, bool v6 = false, TcpFlags flags = TcpFlags.Ack)
    {
        var buffer = new byte[128 + payload];
        var spec = new TcpSpec
        {
            V6 = v6,
            Src = v6 ? V4("fd00::1") : V4("10.0.0.1"),
            Dst = v6 ? V4("fd00::2") : V4("10.0.0.2"),
            SrcPort = 40000, DstPort = 80, Seq = 1000, Ack = 2000, Flags = flags, Window = 502,
            PayloadLength = payload, PayloadFill = 0x5A,
        };
        return buffer[..PacketBuilder.Tcp(buffer, spec)];
    }

    /// <summary>An Ethernet II frame, zero-padded to the 60-byte minimum as a NIC sends it (no FCS).</summary>
    private static byte[] Ethernet(byte[] ip)
    {
        byte[] frame = [.. s_mac, ip[0] >> 4 == 6 ? (byte)0x86 : (byte)0x08, ip[0] >> 4 == 6 ? (byte)0xDD : (byte)0x00, .. ip];
        return frame.Length >= 60 ? frame : [.. frame, .. new byte[60 - frame.Length]];
    }

    /// <summary>What Linux leaves in the checksum field for the NIC: the folded pseudo-header sum, computed here word by word.</summary>
    private static ushort OffloadSeed(byte[] ip, int l4Length)
    {
        bool v6 = ip[0] >> 4 == 6;
        uint sum = 0;
        ReadOnlySpan<byte> addresses = v6 ? ip.AsSpan(8, 32) : ip.AsSpan(12, 8);
        for (int i = 0; i < addresses.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(addresses[i..]);
        sum += v6 ? ip[6] : ip[9];
        sum += (uint)l4Length;
        while (sum > 0xFFFF)
            sum = (sum & 0xFFFF) + (sum >> 16);
        return (ushort)sum;
    }

    [Fact]
    public void Get_SixtyByteFrameCarryingFortyByteAck_TrimsThePadding()
    {
        byte[] ip = Tcp();
        byte[] frame = Ethernet(ip);
        Assert.Equal(60, frame.Length);
        Assert.Equal(40, ip.Length);

        Assert.Equal(LinkResult.Ip, CapturedDatagram.Get(LinkTypes.Ethernet, frame, ChecksumPolicy.Auto, out CapturedDatagram d));

        Assert.Equal(ip, d.Packet.ToArray());
        Assert.True(d.IsWhole);
        Assert.True(d.VerifyChecksum);
        Assert.Equal(ChecksumResult.Valid, Verify(d.Packet));
    }

    [Fact]
    public void Get_PaddedFrameWithNonZeroPadding_ChecksumsOnlyTheDatagram()
    {
        byte[] frame = Ethernet(Tcp());
        frame.AsSpan(54).Fill(0xEE);  // some NICs pad with garbage, not zeros

        CapturedDatagram.Get(LinkTypes.Ethernet, frame, ChecksumPolicy.Verify, out CapturedDatagram d);

        Assert.Equal(40, d.Packet.Length);
        Assert.Equal(ChecksumResult.Valid, Verify(d.Packet));
    }

    [Fact]
    public void Get_PaddedIpv6Frame_TrimsToFortyPlusPayloadLength()
    {
        byte[] ip = Tcp(v6: true);
        byte[] frame = [.. Ethernet(ip), 0, 0, 0, 0];  // FCS-like trailer

        CapturedDatagram.Get(LinkTypes.Ethernet, frame, ChecksumPolicy.Auto, out CapturedDatagram d);

        Assert.Equal(ip, d.Packet.ToArray());
        Assert.True(d.IsWhole);
    }

    [Fact]
    public void Get_EveryPrefixOfADataSegment_NeverVerifiesUntilWholeAndNeverThrows()
    {
        byte[] ip = Tcp(payload: 100);
        byte[] frame = Ethernet(ip);
        foreach (ChecksumPolicy policy in Enum.GetValues<ChecksumPolicy>())
        {
            for (int length = 0; length <= frame.Length; length++)
            {
                LinkResult link = CapturedDatagram.Get(LinkTypes.Ethernet, frame.AsSpan(0, length), policy, out CapturedDatagram d);
                bool whole = length == frame.Length;
                if (link != LinkResult.Ip)
                {
                    Assert.True(length <= 14, $"prefix {length}: {link}");
                    continue;
                }
                Assert.Equal(whole, d.IsWhole);
                Assert.Equal(whole && policy != ChecksumPolicy.Off, d.VerifyChecksum);
                Assert.Equal(Math.Min(length - 14, ip.Length), d.Packet.Length);
            }
        }
    }

    [Fact]
    public void Get_WholeDatagramInRecordCutOnlyInPadding_IsWhole()
    {
        // tcpdump -s 54 of a padded 60-byte frame: caplen 54 < len 60, but all 40 datagram bytes are there.
        byte[] frame = Ethernet(Tcp());

        CapturedDatagram.Get(LinkTypes.Ethernet, frame.AsSpan(0, 54), ChecksumPolicy.Auto, out CapturedDatagram d);

        Assert.True(d.IsWhole);
        Assert.True(d.VerifyChecksum);
    }

    [Theory]
    [InlineData(false, IpProto.Tcp)]
    [InlineData(true, IpProto.Tcp)]
    [InlineData(false, IpProto.Udp)]
    [InlineData(true, IpProto.Udp)]
    public void Get_ChecksumHoldingTheOffloadSeed_AutoSkipsVerifyChecksOffSkips(bool v6, byte protocol)
    {
        byte[] ip = protocol == IpProto.Tcp ? Tcp(payload: 10, v6: v6) : Udp(v6);
        int header = v6 ? 40 : 20;
        int field = header + (protocol == IpProto.Tcp ? 16 : 6);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(field), OffloadSeed(ip, ip.Length - header));
        byte[] frame = Ethernet(ip);

        CapturedDatagram.Get(LinkTypes.Ethernet, frame, ChecksumPolicy.Auto, out CapturedDatagram auto);
        CapturedDatagram.Get(LinkTypes.Ethernet, frame, ChecksumPolicy.Verify, out CapturedDatagram verify);
        CapturedDatagram.Get(LinkTypes.Ethernet, frame, ChecksumPolicy.Off, out CapturedDatagram off);

        Assert.Equal(ChecksumResult.Invalid, Verify(auto.Packet));
        Assert.True(auto.ChecksumPending);
        Assert.False(auto.VerifyChecksum);
        Assert.True(verify.VerifyChecksum);
        Assert.False(off.VerifyChecksum);
    }

    [Fact]
    public void Get_CorruptChecksumOtherThanTheSeed_AutoStillVerifies()
    {
        byte[] ip = Tcp(payload: 10);
        ushort seed = OffloadSeed(ip, ip.Length - 20);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(36), (ushort)(seed ^ 0x0101));

        CapturedDatagram.Get(LinkTypes.Raw, ip, ChecksumPolicy.Auto, out CapturedDatagram d);

        Assert.False(d.ChecksumPending);
        Assert.True(d.VerifyChecksum);
    }

    [Fact]
    public void Get_IcmpWithSeedLikeChecksum_IsNotTakenForOffload()
    {
        // ICMP has no pseudo-header and Linux does not offload it: a bad ICMP checksum is always bad.
        var buffer = new byte[64];
        byte[] ip = buffer[..PacketBuilder.Icmp(buffer, V4("10.0.0.1"), V4("10.0.0.2"), 8, 0, 1, 1)];
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(22), OffloadSeed(ip, ip.Length - 20));

        CapturedDatagram.Get(LinkTypes.Raw, ip, ChecksumPolicy.Auto, out CapturedDatagram d);

        Assert.False(d.ChecksumPending);
        Assert.True(d.VerifyChecksum);
    }

    [Theory]
    [InlineData(0)]    // TSO super-packet captured on the sender: no length
    [InlineData(19)]   // below the header
    public void Get_Ipv4TotalLengthThatCannotBeRight_IsNotWholeAndNotTrimmed(ushort total)
    {
        byte[] ip = Tcp();
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), total);

        CapturedDatagram.Get(LinkTypes.Raw, ip, ChecksumPolicy.Verify, out CapturedDatagram d);

        Assert.False(d.IsWhole);
        Assert.False(d.VerifyChecksum);
        Assert.Equal(ip.Length, d.Packet.Length);
    }

    [Fact]
    public void Get_NotIpFrame_ReportsLinkResultAndEmptyPacket()
    {
        byte[] arp = [.. s_mac, 0x08, 0x06, .. new byte[46]];

        Assert.Equal(LinkResult.NotIp, CapturedDatagram.Get(LinkTypes.Ethernet, arp, ChecksumPolicy.Auto, out CapturedDatagram d));
        Assert.True(d.Packet.IsEmpty);
        Assert.False(d.VerifyChecksum);
    }

    [Fact]
    public void Get_PaddedCutAndSeededFrames_AllocatesNothing()
    {
        byte[] padded = Ethernet(Tcp());
        byte[] data = Ethernet(Tcp(payload: 300));
        byte[] seeded = Tcp(payload: 10);
        BinaryPrimitives.WriteUInt16BigEndian(seeded.AsSpan(36), OffloadSeed(seeded, seeded.Length - 20));
        int verified = 0;
        void Run()
        {
            for (int i = 0; i < 1000; i++)
            {
                CapturedDatagram.Get(LinkTypes.Ethernet, padded, ChecksumPolicy.Auto, out CapturedDatagram a);
                CapturedDatagram.Get(LinkTypes.Ethernet, data.AsSpan(0, 96), ChecksumPolicy.Auto, out CapturedDatagram b);
                CapturedDatagram.Get(LinkTypes.Raw, seeded, ChecksumPolicy.Auto, out CapturedDatagram c);
                verified += (a.VerifyChecksum ? 1 : 0) + (b.VerifyChecksum ? 1 : 0) + (c.VerifyChecksum ? 1 : 0);
            }
        }
        Run();  // JIT and tiering out of the measurement

        long before = GC.GetAllocatedBytesForCurrentThread();
        Run();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(2000, verified);  // only the padded ACK, in both runs
    }

    [Theory]
    [InlineData("auto", ChecksumPolicy.Auto)]
    [InlineData("verify", ChecksumPolicy.Verify)]
    [InlineData("off", ChecksumPolicy.Off)]
    public void ChecksumPolicyNames_KnownName_ParsesAndRoundTrips(string text, ChecksumPolicy expected)
    {
        Assert.True(ChecksumPolicyNames.TryParse(text, out ChecksumPolicy policy));
        Assert.Equal(expected, policy);
        Assert.Equal(text, policy.Name());
    }

    [Theory]
    [InlineData("")]
    [InlineData("on")]
    [InlineData("Auto")]
    public void ChecksumPolicyNames_UnknownName_IsRejected(string text) =>
        Assert.False(ChecksumPolicyNames.TryParse(text, out _));

    private static byte[] Udp(bool v6)
    {
        var buffer = new byte[128];
        return buffer[..PacketBuilder.Udp(buffer, v6, v6 ? V4("fd00::1") : V4("10.0.0.1"), v6 ? V4("fd00::2") : V4("10.0.0.2"), 5353, 53, 12, 0x33)];
    }

    private static ChecksumResult Verify(ReadOnlySpan<byte> ip)
    {
        Assert.Equal(InvalidReason.None, PacketParser.Parse(ip, out ParsedPacket p));
        return Checksums.VerifyTransport(ip, p);
    }
}
