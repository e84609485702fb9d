using System.Buffers.Binary;
using Ctfw.Capture;
using Ctfw.Cli.Commands;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests;

/// <summary>`ctfw replay` on captures as real tools write them: Ethernet padding, snap lengths, offloaded checksums, `--checksums`.</summary>
[Collection("Console")]
public class ReplayChecksumTests
{
    private static readonly IpAddress A = IpAddress.FromV4(0x0A000001), B = IpAddress.FromV4(0x0A000002);
    private static readonly byte[] s_macs = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    private const long Second = 1_000_000_000;

    private static byte[] Tcp(TcpFlags flags, uint seq, uint ack, bool fromA = true, int len = 0)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromA ? A : B, Dst = fromA ? B : A, SrcPort = fromA ? (ushort)1234 : (ushort)80, DstPort = fromA ? (ushort)80 : (ushort)1234,
            Seq = seq, Ack = ack, Flags = flags, Window = 65000, PayloadLength = len, PayloadFill = 0x41,
        });
        return buf[..n];
    }

    private static byte[] Ethernet(byte[] ip, int minimum = 60)
    {
        byte[] frame = [.. s_macs, 0x08, 0x00, .. ip];
        return frame.Length >= minimum ? frame : [.. frame, .. Enumerable.Repeat((byte)0xEE, minimum - frame.Length)];
    }

    /// <summary>A handshake and a data segment with its ACK, server side 80, as a list of IP packets.</summary>
    private static List<byte[]> Connection() =>
    [
        Tcp(TcpFlags.Syn, 100, 0),
        Tcp(TcpFlags.Syn | TcpFlags.Ack, 500, 101, fromA: false),
        Tcp(TcpFlags.Ack, 101, 501),
        Tcp(TcpFlags.Ack | TcpFlags.Psh, 101, 501, len: 300),
        Tcp(TcpFlags.Ack, 501, 401, fromA: false),
    ];

    private static string WritePcap(int linkType, IEnumerable<(byte[] Frame, int Caplen)> records)
    {
        string path = Path.GetTempFileName();
        using var fs = File.Create(path);
        using var w = new PcapWriter(fs, linkType);
        long t = Second;
        foreach ((byte[] frame, int caplen) in records)
            w.Write(t += 1_000_000, frame.AsSpan(0, caplen), frame.Length);
        return path;
    }

    private static string[] Replay(string pcap, ChecksumPolicy policy = ChecksumPolicy.Auto)
    {
        var output = new StringWriter();
        var replayer = new Replayer(new ConntrackSettings(), text: false, output, rescue: null, checksums: policy);
        using (var reader = CaptureReader.Open(pcap))
        {
            while (reader.TryRead(out CaptureRecord r))
                replayer.Process(r);
            Assert.Null(reader.Error);
        }
        File.Delete(pcap);
        return output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Sets the TCP checksum field to what Linux leaves for checksum offload: the folded pseudo-header sum.</summary>
    private static byte[] WithOffloadSeed(byte[] ip)
    {
        byte[] copy = [.. ip];
        uint sum = 0;
        for (int i = 12; i < 20; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(copy.AsSpan(i));
        sum += IpProto.Tcp + (uint)(copy.Length - 20);
        while (sum > 0xFFFF)
            sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(36), (ushort)sum);
        return copy;
    }

    private static byte[] WithCorruptChecksum(byte[] ip)
    {
        byte[] copy = [.. ip];
        copy[37] ^= 0x5A;
        return copy;
    }

    [Fact]
    public void Replay_SixtyBytePaddedFrames_ClassifyAsTheUnpaddedPackets()
    {
        List<byte[]> packets = Connection();
        Assert.Contains(packets, p => p.Length == 40);  // the ACKs: 54-byte frames, padded to 60

        string[] raw = Replay(WritePcap(LinkTypes.Raw, packets.Select(p => (p, p.Length))));
        string[] padded = Replay(WritePcap(LinkTypes.Ethernet, packets.Select(p => Ethernet(p)).Select(f => (f, f.Length))));

        Assert.Equal(raw, padded);
        Assert.Equal("5\tESTABLISHED\tREPLY\tESTABLISHED\t-", padded[4]);
    }

    [Fact]
    public void Replay_EveryPrefixOfARecordCutBySnapLength_NeverBadChecksumNeverThrows()
    {
        List<byte[]> packets = Connection();
        byte[] data = Ethernet(packets[3]);
        string[] whole = Replay(WritePcap(LinkTypes.Ethernet, packets.Select(p => Ethernet(p)).Select(f => (f, f.Length))));
        for (int caplen = 0; caplen < data.Length; caplen++)
        {
            var records = packets.Select(p => Ethernet(p)).Select(f => (f, f.Length)).ToList();
            records[3] = (data, caplen);
            string[] lines = Replay(WritePcap(LinkTypes.Ethernet, records), ChecksumPolicy.Verify);

            Assert.Equal(5, lines.Length);
            Assert.All(lines, l => Assert.DoesNotContain("bad-checksum", l, StringComparison.Ordinal));
            // Once the IP and TCP headers are in, the cut record is the same packet to the tracker.
            if (caplen >= 14 + 40)
                Assert.Equal(whole, lines);
        }
    }

    [Fact]
    public void Replay_CutRecordsWithStaleChecksums_AreNotFlaggedInAnyMode()
    {
        // A cut record's checksum covers bytes that are not there; even a wrong one must not count.
        List<byte[]> packets = Connection();
        packets[3] = WithCorruptChecksum(packets[3]);
        foreach (ChecksumPolicy policy in Enum.GetValues<ChecksumPolicy>())
        {
            string[] lines = Replay(WritePcap(LinkTypes.Raw, packets.Select((p, i) => (p, i == 3 ? 60 : p.Length))), policy);
            Assert.Equal("4\tESTABLISHED\tORIGINAL\tESTABLISHED\t-", lines[3]);
        }
    }

    [Theory]
    [InlineData(ChecksumPolicy.Auto, "ESTABLISHED", "INVALID")]
    [InlineData(ChecksumPolicy.Verify, "INVALID", "INVALID")]
    [InlineData(ChecksumPolicy.Off, "ESTABLISHED", "ESTABLISHED")]
    public void Replay_ChecksumPolicy_DecidesOffloadSeedAndCorruptChecksums(ChecksumPolicy policy, string seeded, string corrupt)
    {
        List<byte[]> packets = Connection();
        packets[3] = WithOffloadSeed(packets[3]);
        packets.Add(WithCorruptChecksum(Tcp(TcpFlags.Ack, 401, 501)));

        string[] lines = Replay(WritePcap(LinkTypes.Raw, packets.Select(p => (p, p.Length))), policy);

        Assert.StartsWith($"4\t{seeded}\t", lines[3], StringComparison.Ordinal);
        Assert.StartsWith($"6\t{corrupt}\t", lines[5], StringComparison.Ordinal);
        Assert.Equal(seeded == "INVALID", lines[3].EndsWith("tcp-bad-checksum", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("auto", "ESTABLISHED")]
    [InlineData("verify", "INVALID")]
    [InlineData("off", "ESTABLISHED")]
    public void ReplayCommand_ChecksumsOption_ReachesTheReplayer(string mode, string expected)
    {
        List<byte[]> packets = Connection();
        packets[3] = WithOffloadSeed(packets[3]);
        string pcap = WritePcap(LinkTypes.Raw, packets.Select(p => (p, p.Length)));

        var stdout = new StringWriter();
        int code = ReplayCommand.Run(["replay", "--checksums", mode, pcap], stdout);
        File.Delete(pcap);

        Assert.Equal(0, code);
        Assert.StartsWith($"4\t{expected}\t", stdout.ToString().Split('\n')[4], StringComparison.Ordinal);
    }

    [Fact]
    public void ReplayCommand_UnknownChecksumsValue_FailsWithUsageError()
    {
        (int code, _, string err) = ConsoleCapture.Run("replay", "--checksums", "maybe", "x.pcap");

        Assert.Equal(2, code);
        Assert.Contains("--checksums takes auto, verify or off", err, StringComparison.Ordinal);
    }

    [Fact]
    public void ReplayCommand_Help_DocumentsChecksums()
    {
        (int code, string output, _) = ConsoleCapture.Run("replay", "--help");

        Assert.Equal(0, code);
        Assert.Contains("--checksums auto|verify|off", output, StringComparison.Ordinal);
    }
}
