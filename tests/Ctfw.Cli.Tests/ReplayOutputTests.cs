using Ctfw.Capture;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests;

/// <summary>What `ctfw replay` prints: a header, aligned text columns, one name for conntrack's own drops, clear open errors.</summary>
[Collection("Console")]
public sealed class ReplayOutputTests
{
    private static string Kernel(string name) => Path.Combine(KernelRecordingReplayTests.DataDirectory, name + ".pcap");

    private static (int Code, string Out, string Err) Replay(params string[] args)
    {
        var stdout = new StringWriter();
        TextWriter err = Console.Error;
        var captured = new StringWriter();
        Console.SetError(captured);
        try
        {
            int code = Commands.ReplayCommand.Run(["replay", .. args], stdout);
            return (code, stdout.ToString(), captured.ToString());
        }
        finally
        {
            Console.SetError(err);
        }
    }

    [Theory]
    [InlineData("tsv", "#index\tctstate\tdirection\ttcp_state\treason")]
    [InlineData("text", "#  INDEX")]
    public void Replay_AnyFormat_HeaderLineFirst(string format, string header)
    {
        var (code, output, _) = Replay("--format", format, Kernel("tcp_handshake_data_close"));
        Assert.Equal(0, code);
        Assert.StartsWith(header, output, StringComparison.Ordinal);
        Assert.Single(output.Split('\n'), l => l.StartsWith('#'));
    }

    [Fact]
    public void Replay_TsvWithRules_HeaderNamesVerdictAndRule()
    {
        string rules = Path.Combine(KernelRecordingReplayTests.DataDirectory, "..", "..", "..", "rules", "lab.rules");
        var (code, output, _) = Replay("--rules", rules, Kernel("tcp_handshake_data_close"));
        Assert.Equal(0, code);
        Assert.StartsWith("#index\tctstate\tdirection\ttcp_state\treason\tverdict\trule\n", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Replay_Text_ColumnsAlignOnEveryLine(bool withRules)
    {
        // TCP lines (long addresses, flags, sequence numbers) once pushed every column after the packet out of line.
        string rules = Path.Combine(KernelRecordingReplayTests.DataDirectory, "..", "..", "..", "rules", "lab.rules");
        List<string> lines = [];
        foreach (string capture in (string[])["tcp_handshake_data_close", "tcp6_handshake_data_close", "udp6_new_reply", "icmp_echo", "icmpv6_echo"])
        {
            string[] args = withRules ? ["--format", "text", "--rules", rules, Kernel(capture)] : ["--format", "text", Kernel(capture)];
            var (code, output, _) = Replay(args);
            Assert.Equal(0, code);
            lines.AddRange(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        string header = lines[0];
        string[] titles = withRules ? ["TIME", "CTSTATE", "DIRECTION", "TCP", "TARGET", "RULE", "REASON", "PACKET"] : ["TIME", "CTSTATE", "DIRECTION", "TCP", "REASON", "PACKET"];
        int[] starts = [.. titles.Skip(1).Select(t => header.IndexOf(" " + t, StringComparison.Ordinal) + 1)];
        Assert.All(starts, s => Assert.True(s > 0));
        Assert.Contains(lines, l => l.Contains(" tcp ", StringComparison.Ordinal));
        foreach (string line in lines.Where(l => !l.StartsWith('#')))
        {
            foreach (int start in starts)
            {
                // Each column begins where its title does: a space before it, a value at it.
                Assert.True(line.Length > start && line[start - 1] == ' ' && line[start] != ' ', $"column at {start} out of line:\n{header}\n{line}");
            }
        }
    }

    [Fact]
    public void Replay_ConntrackDrop_NamedDroppedAsInStatsAndTheDaemon()
    {
        // Conntrack's own drop (table full) was DROP in replay, DROPPED in stats and conntrack-drop in the daemon's summary.
        IpAddress a = IpAddress.FromV4(0x0A000001), b = IpAddress.FromV4(0x0A000002);
        string pcap = Path.GetTempFileName();
        using (var fs = File.Create(pcap))
        using (var w = new PcapWriter(fs, LinkTypes.Raw))
        {
            for (ushort port = 1000; port < 1003; port++)
            {
                var buf = new byte[128];
                int n = PacketBuilder.Udp(buf, false, a, b, port, 53, 8);
                w.Write(1_000_000_000L + port, buf.AsSpan(0, n), n);
            }
        }
        try
        {
            var (code, output, err) = Replay("--set", "nf_conntrack_max=1", pcap);
            Assert.Equal(0, code);
            string[] states = [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(l => l.Split('\t')[1])];
            Assert.Equal("NEW", states[0]);
            Assert.Contains("DROPPED", states);
            Assert.DoesNotContain("DROP", states);
            Assert.Contains("DROPPED ", err, StringComparison.Ordinal);
            Assert.Equal("DROPPED", Conntrack.CtNames.Name(Conntrack.CtState.Dropped));
            Assert.Equal("DROPPED", Daemon.DaemonControl.StateName(Conntrack.CtState.Dropped));
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void Replay_Directory_SaysItIsADirectoryExitOne()
    {
        // It once said "Access to the path '/tmp' is denied".
        string dir = Path.GetTempPath().TrimEnd('/');
        var (code, _, err) = ConsoleCapture.Run("replay", dir);
        Assert.Equal(1, code);
        Assert.Equal($"ctfw: cannot open '{dir}': it is a directory, not a capture file\n", err);
    }

    [Fact]
    public void Replay_MissingFile_NoSuchFileExitOne()
    {
        var (code, _, err) = ConsoleCapture.Run("replay", "/nonexistent/file.pcap");
        Assert.Equal(1, code);
        Assert.Equal("ctfw: cannot open '/nonexistent/file.pcap': no such file\n", err);
    }

    [Theory]
    [InlineData("replay", "--rescue", "--rescue-window", "0", "x.pcap")]
    [InlineData("run", "--rules", "x.rules", "--rescue", "--rescue-window", "0")]
    public void RescueWindowZero_RunAndReplay_RefusedAlike(params string[] args)
    {
        // replay took 0 (tombstones that die at once) where run refused it.
        var (code, _, err) = ConsoleCapture.Run(args);
        Assert.Equal(2, code);
        Assert.Equal("ctfw: --rescue-window 0: expected 1..86400 seconds\n", err);
    }

    [Theory]
    [InlineData("replay", "--rescue-window", "60", "x.pcap")]
    [InlineData("run", "--rules", "x.rules", "--rescue-window", "60")]
    public void RescueWindowWithoutRescue_RunAndReplay_RefusedAlike(params string[] args)
    {
        var (code, _, err) = ConsoleCapture.Run(args);
        Assert.Equal(2, code);
        Assert.Equal("ctfw: --rescue-window needs --rescue\n", err);
    }
}
