using Ctfw.Capture;
using Ctfw.Cli.Commands;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests;

/// <summary>`ctfw replay --rules`: the daemon's verdict per packet, the deciding rule, no state for dropped NEW packets, rule counters.</summary>
[Collection("Console")]
public sealed class ReplayRulesTests : IDisposable
{
    private static readonly IpAddress Client = IpAddress.FromV4(0xC000020A), Server = IpAddress.FromV4(0xC6336414); // 192.0.2.10, 198.51.100.20

    private const string Rules = """
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :FWD_NEW - [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -m conntrack --ctstate NEW -j FWD_NEW
        -A FWD_NEW -i lan0 -p tcp -m tcp --dport 80 -j ACCEPT
        -A FWD_NEW -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
        -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
        COMMIT
        """;

    private readonly List<string> _files = [];

    private static byte[] Tcp(bool fromClient, ushort cport, ushort sport, TcpFlags flags, uint seq, uint ack, int len = 0)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromClient ? Client : Server, Dst = fromClient ? Server : Client,
            SrcPort = fromClient ? cport : sport, DstPort = fromClient ? sport : cport,
            Seq = seq, Ack = ack, Flags = flags, Window = 65000, PayloadLength = len,
        });
        return buf[..n];
    }

    private string Temp(string text)
    {
        string path = Path.GetTempFileName();
        File.WriteAllText(path, text);
        _files.Add(path);
        return path;
    }

    private string Pcap(params byte[][] packets)
    {
        string path = Path.GetTempFileName();
        _files.Add(path);
        using var fs = File.Create(path);
        using var w = new PcapWriter(fs, LinkTypes.Raw);
        long t = 1_000_000_000;
        foreach (byte[] p in packets)
            w.Write(t += 1_000_000, p, p.Length);
        return path;
    }

    /// <summary>A handshake to port 80 and data; a SYN to 8080 (dropped by the policy) and the server's SYN/ACK; a SYN to 113 (rejected).</summary>
    private string Capture() => Pcap(
        Tcp(true, 40000, 80, TcpFlags.Syn, 1000, 0),
        Tcp(false, 40000, 80, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001),
        Tcp(true, 40000, 80, TcpFlags.Ack, 1001, 5001),
        Tcp(true, 40000, 80, TcpFlags.Ack | TcpFlags.Psh, 1001, 5001, len: 100),
        Tcp(true, 40001, 8080, TcpFlags.Syn, 7000, 0),
        Tcp(false, 40001, 8080, TcpFlags.Syn | TcpFlags.Ack, 9000, 7001),
        Tcp(true, 40002, 113, TcpFlags.Syn, 3000, 0));

    private static (int Code, string[] Lines, string Err) Replay(params string[] args)
    {
        var stdout = new StringWriter();
        TextWriter oldErr = Console.Error;
        var err = new StringWriter();
        Console.SetError(err);
        try
        {
            int code = ReplayCommand.Run(["replay", .. args], stdout);
            return (code, [.. stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))], err.ToString());
        }
        finally
        {
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void Rules_Tsv_AddsVerdictAndDecidingRuleColumns()
    {
        var (code, lines, _) = Replay("--rules", Temp(Rules), "--in", "lan0", "--out", "wan0", Capture());
        Assert.Equal(0, code);
        Assert.Equal(
        [
            "1\tNEW\tORIGINAL\tSYN_SENT\t-\tACCEPT\tFWD_NEW:1",
            "2\tESTABLISHED\tREPLY\tSYN_RECV\t-\tACCEPT\tFORWARD:2",
            "3\tESTABLISHED\tORIGINAL\tESTABLISHED\t-\tACCEPT\tFORWARD:2",
            "4\tESTABLISHED\tORIGINAL\tESTABLISHED\t-\tACCEPT\tFORWARD:2",
            "5\tNEW\tORIGINAL\tSYN_SENT\t-\tDROP\tFORWARD:policy",
            // The dropped SYN created no entry (the kernel never confirms it): the SYN/ACK has none to match.
            "6\tINVALID\t-\t-\ttcp-invalid-new\tDROP\tFORWARD:1",
            "7\tNEW\tORIGINAL\tSYN_SENT\t-\tREJECT\tFWD_NEW:2",
        ], lines);
    }

    [Fact]
    public void WithoutRules_ColumnsOneToFiveUnchangedAndEveryPacketAccepted()
    {
        var (code, lines, err) = Replay(Capture());
        Assert.Equal(0, code);
        Assert.Equal("5\tNEW\tORIGINAL\tSYN_SENT\t-", lines[4]);
        // Accepted, the SYN's entry exists and the SYN/ACK is its reply.
        Assert.Equal("6\tESTABLISHED\tREPLY\tSYN_RECV\t-", lines[5]);
        Assert.DoesNotContain("verdicts", err);
    }

    [Fact]
    public void Rules_Summary_PrintsVerdictCountsAndIptablesStyleCounters()
    {
        var (_, _, err) = Replay("--rules", Temp(Rules), "--in", "lan0", "--summary-only", Capture());
        Assert.Contains("verdicts (FORWARD in lan0, rules ", err);
        Assert.Contains("ACCEPT 4, DROP 2, REJECT 1", err);
        Assert.Contains("Chain FORWARD (policy DROP 1 packets, 40 bytes)", err);
        string[] lines = err.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("    3   ", StringComparison.Ordinal) && l.Contains("ACCEPT", StringComparison.Ordinal) && l.Contains("ctstate RELATED,ESTABLISHED", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("    1    40 REJECT", StringComparison.Ordinal));
        Assert.Contains("Chain FWD_NEW (1 references)", err);
    }

    [Fact]
    public void Rules_WithoutInterface_InterfaceRuleDoesNotMatch()
    {
        var (_, lines, _) = Replay("--rules", Temp(Rules), Capture());
        Assert.Equal("1\tNEW\tORIGINAL\tSYN_SENT\t-\tDROP\tFORWARD:policy", lines[0]);
    }

    [Fact]
    public void Rules_InputHook_UsesTheInputChain()
    {
        string pcap = Pcap(Tcp(true, 40003, 22, TcpFlags.Syn, 1, 0), Tcp(true, 40004, 23, TcpFlags.Syn, 1, 0));
        var (_, lines, _) = Replay("--rules", Temp(Rules), "--hook", "INPUT", pcap);
        Assert.Equal(["1\tNEW\tORIGINAL\tSYN_SENT\t-\tACCEPT\tINPUT:1", "2\tNEW\tORIGINAL\tSYN_SENT\t-\tDROP\tINPUT:policy"], lines);
    }

    [Fact]
    public void Rules_TextFormat_ShowsVerdictAndRule()
    {
        var (_, lines, _) = Replay("--rules", Temp(Rules), "--in", "lan0", "--format", "text", Capture());
        Assert.Contains("ACCEPT FWD_NEW:1", lines[0]);
        Assert.Contains("DROP   FORWARD:1", lines[5]);
        Assert.Contains("tcp-invalid-new", lines[5]);
    }

    [Fact]
    public void Rules_BadFile_NamesFileLineColumnAndReplaysNothing()
    {
        string bad = Temp("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --bogus 80 -j ACCEPT\nCOMMIT\n");
        var (code, lines, err) = Replay("--rules", bad, Capture());
        Assert.Equal(2, code);
        Assert.Empty(lines);
        Assert.Contains($"{bad}:3:", err);
        Assert.Contains("nothing replayed", err);
    }

    [Theory]
    [InlineData("--hook", "FORWARD")]
    [InlineData("--in", "eth0")]
    [InlineData("--out", "eth1")]
    public void FirewallOptions_WithoutRules_Refused(string option, string value)
    {
        var (code, _, err) = Replay(option, value, Capture());
        Assert.Equal(2, code);
        Assert.Contains("need --rules", err);
    }

    [Theory]
    [InlineData("--hook", "PREROUTING", "--hook takes FORWARD, INPUT or OUTPUT")]
    [InlineData("--in", "a-name-longer-than-15", "--in takes an interface name")]
    public void FirewallOptions_BadValues_Refused(string option, string value, string message)
    {
        var (code, _, err) = Replay("--rules", Temp(Rules), option, value, Capture());
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }

    public void Dispose()
    {
        foreach (string f in _files)
            File.Delete(f);
    }
}
