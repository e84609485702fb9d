using Ctfw.Capture;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests;

/// <summary>`ctfw replay` end to end on captures written here: formats, link types, damage, truncation.</summary>
[Collection("Console")]
public class ReplayTests
{
    private static readonly IpAddress A = IpAddress.FromV4(0x0A000001), B = IpAddress.FromV4(0x0A000002);

    private static byte[] Tcp(TcpFlags flags, uint seq, uint ack, bool fromA = true, int len = 0)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromA ? A : B, Dst = fromA ? B : A, SrcPort = fromA ? (ushort)1234 : (ushort)80, DstPort = fromA ? (ushort)80 : (ushort)1234,
            Seq = seq, Ack = ack, Flags = flags, Window = 65000, PayloadLength = len,
        });
        return buf[..n];
    }

    private static string WritePcap(int linkType, params (long Ns, byte[] Frame, int Caplen)[] packets)
    {
        string path = Path.GetTempFileName();
        using (var fs = File.Create(path))
        using (var w = new PcapWriter(fs, linkType))
        {
            foreach (var (ns, frame, caplen) in packets)
                w.Write(ns, frame.AsSpan(0, caplen), frame.Length);
        }
        return path;
    }

    private static (int Code, string Out, string Err) Run(params string[] args) => ConsoleCapture.Run(args);

    private static string[] ReplayLines(string pcap, params string[] extra)
    {
        var output = new StringWriter();
        var settings = new Conntrack.ConntrackSettings();
        foreach (string s in extra)
            Assert.Null(settings.SetAssignment(s));
        var replayer = new Commands.Replayer(settings, text: false, output);
        using var reader = CaptureReader.Open(pcap);
        while (reader.TryRead(out CaptureRecord r))
            replayer.Process(r);
        return output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public void Handshake_RawIp_TsvLines()
    {
        byte[] syn = Tcp(TcpFlags.Syn, 100, 0), synAck = Tcp(TcpFlags.Syn | TcpFlags.Ack, 500, 101, fromA: false), ack = Tcp(TcpFlags.Ack, 101, 501);
        string pcap = WritePcap(LinkTypes.Raw, (1_000_000_000, syn, syn.Length), (1_001_000_000, synAck, synAck.Length), (1_002_000_000, ack, ack.Length));
        Assert.Equal(
            ["1\tNEW\tORIGINAL\tSYN_SENT\t-", "2\tESTABLISHED\tREPLY\tSYN_RECV\t-", "3\tESTABLISHED\tORIGINAL\tESTABLISHED\t-"],
            ReplayLines(pcap));
        File.Delete(pcap);
    }

    [Fact]
    public void TruncatedCapture_HeadersOnly_ClassifiesByIpLength()
    {
        byte[] syn = Tcp(TcpFlags.Syn, 100, 0), synAck = Tcp(TcpFlags.Syn | TcpFlags.Ack, 500, 101, fromA: false);
        byte[] data = Tcp(TcpFlags.Ack | TcpFlags.Psh, 101, 501, len: 1000), ack = Tcp(TcpFlags.Ack, 501, 1101, fromA: false);
        // 54 bytes captured of each: IP + TCP headers only. The ACK of 1000 bytes must still be in window.
        string pcap = WritePcap(LinkTypes.Raw, (1, syn, 40), (2, synAck, 40), (3, data, 40), (4, ack, 40));
        string[] lines = ReplayLines(pcap);
        Assert.Equal("4\tESTABLISHED\tREPLY\tESTABLISHED\t-", lines[3]);
        File.Delete(pcap);
    }

    [Fact]
    public void Expiry_UsesPacketTimestampsAsClock()
    {
        byte[] syn = Tcp(TcpFlags.Syn, 100, 0), synAck = Tcp(TcpFlags.Syn | TcpFlags.Ack, 500, 101, fromA: false), ack = Tcp(TcpFlags.Ack, 101, 501);
        byte[] fin = Tcp(TcpFlags.Fin | TcpFlags.Ack, 101, 501);
        const long S = 1_000_000_000;
        string pcap = WritePcap(LinkTypes.Raw, (10 * S, syn, syn.Length), (10 * S, synAck, synAck.Length), (10 * S, ack, ack.Length), (13 * S, fin, fin.Length));
        Assert.Equal("4\tINVALID\t-\t-\ttcp-invalid-new", ReplayLines(pcap, "nf_conntrack_tcp_timeout_established=2")[3]);
        Assert.Equal("4\tESTABLISHED\tORIGINAL\tFIN_WAIT\t-", ReplayLines(pcap)[3]);
        File.Delete(pcap);
    }

    [Fact]
    public void Ethernet_NonIpFrame_Skipped()
    {
        byte[] syn = Tcp(TcpFlags.Syn, 100, 0);
        byte[] eth = new byte[14 + syn.Length];
        eth[12] = 0x08; eth[13] = 0x00;
        syn.CopyTo(eth, 14);
        byte[] arp = new byte[42];
        arp[12] = 0x08; arp[13] = 0x06;
        string pcap = WritePcap(LinkTypes.Ethernet, (1, arp, arp.Length), (2, eth, eth.Length));
        Assert.Equal(["1\tSKIP\t-\t-\tnot-ip", "2\tNEW\tORIGINAL\tSYN_SENT\t-"], ReplayLines(pcap));
        File.Delete(pcap);
    }

    [Fact]
    public void DamagedFile_ReportsOffset_ExitThree()
    {
        byte[] syn = Tcp(TcpFlags.Syn, 100, 0);
        string pcap = WritePcap(LinkTypes.Raw, (1, syn, syn.Length), (2, syn, syn.Length));
        long full = new FileInfo(pcap).Length;
        using (var fs = new FileStream(pcap, FileMode.Open))
            fs.SetLength(full - 5); // cut into the second record
        var (code, _, err) = Run("replay", "--summary-only", pcap);
        Assert.Equal(3, code);
        Assert.Contains("damaged at byte offset", err);
        Assert.Contains("replay: 1 records", err);
        File.Delete(pcap);
    }
}
