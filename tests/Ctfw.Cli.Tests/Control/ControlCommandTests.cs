using Ctfw.Cli.Control;
using Ctfw.Conntrack;

namespace Ctfw.Cli.Tests.Control;

/// <summary>`ctfw stats` and `ctfw conntrack` end to end, with CTFW_RUN_DIR pointed at a temporary directory.</summary>
[Collection("Console")]
public sealed class ControlCommandTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string? _oldRunDir = Environment.GetEnvironmentVariable(ControlPaths.RunDirectoryVariable);
    private readonly FakeControlTarget _target = new();

    public ControlCommandTests() => Environment.SetEnvironmentVariable(ControlPaths.RunDirectoryVariable, _dir.Path);

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(ControlPaths.RunDirectoryVariable, _oldRunDir);
        _dir.Dispose();
    }

    private static (int Code, string Out, string Err) Run(params string[] args) => ConsoleCapture.Run(args);

    /// <summary>A daemon under this test process's pid, so FindRunning sees it alive.</summary>
    private ControlServer StartOwn() => ControlServer.Start(ControlPaths.Default(Environment.ProcessId), _target);

    [Theory]
    [InlineData("stats")]
    [InlineData("conntrack", "-L")]
    [InlineData("conntrack", "-F")]
    public void NoInstance_ExitOne_DeadSocketsLeftInPlace(params string[] args)
    {
        // Beyond pid_max (2^22), so never a live process.
        string dead = _dir.File("ctfw-99999999.sock");
        File.WriteAllText(dead, "");
        var (code, output, err) = Run(args);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Equal($"ctfw: no running ctfw (no control socket in {_dir.Path})\n", err);
        Assert.True(File.Exists(dead)); // a reader never deletes; the next `ctfw run` on the path does, if it is its own
    }

    [Theory]
    [InlineData("stats")]
    [InlineData("conntrack", "-C")]
    public void TwoInstances_ExitTwo_ListsPids(params string[] args)
    {
        // Pid 1 and this process are alive; the files need not answer to be counted.
        File.WriteAllText(_dir.File("ctfw-1.sock"), "");
        using ControlServer own = StartOwn();
        var (code, _, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Equal($"ctfw: 2 ctfw instances are running (pids 1, {Environment.ProcessId}); choose one with --pid\n", err);
    }

    [Fact]
    public void TwoInstances_PidChooses()
    {
        File.WriteAllText(_dir.File("ctfw-1.sock"), "");
        _target.Counters.Add(new("packets", 5));
        using ControlServer own = StartOwn();
        var (code, output, _) = Run("stats", "--raw", "--pid", Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(0, code);
        Assert.Equal("packets 5\n", output);
    }

    [Fact]
    public void ConntrackListExpect_LinesOnStdout_CountOnStderr_CountAndFlush()
    {
        _target.ExpectationList.Add(ControlServerTests.FtpExpectation());
        using ControlServer own = StartOwn();
        var (code, output, err) = Run("conntrack", "-L", "expect");
        Assert.Equal(0, code);
        Assert.StartsWith("299 proto=6 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=50000 mask-src=", output, StringComparison.Ordinal);
        Assert.EndsWith(" class=0 helper=ftp\n", output, StringComparison.Ordinal);
        Assert.Equal("ctfw conntrack: 1 expectations have been shown.\n", err);
        (code, output, _) = Run("conntrack", "-L", "expect", "-o", "json");
        Assert.Equal(0, code);
        Assert.StartsWith("{\"family\":\"ipv4\"", output, StringComparison.Ordinal);
        (code, output, _) = Run("conntrack", "-C", "expect");
        Assert.Equal((0, "1\n"), (code, output));
        (code, _, err) = Run("conntrack", "-F", "expect");
        Assert.Equal(0, code);
        Assert.Equal("ctfw conntrack: expectation table has been emptied (1 expectations).\n", err);
        Assert.Empty(_target.ExpectationList);
    }

    [Theory]
    [InlineData("ctfw: the expect table takes -L, -C and -F\n", "conntrack", "-E", "expect")]
    [InlineData("ctfw: the expect table takes no filters\n", "conntrack", "-L", "expect", "-p", "tcp")]
    [InlineData("ctfw: -L expect takes -o json only\n", "conntrack", "-L", "expect", "-o", "extended")]
    [InlineData("ctfw: unknown table 'expectations' (expected conntrack or expect)\n", "conntrack", "-L", "expectations")]
    public void ConntrackExpect_BadUse_OneLineWhy(string message, params string[] args)
    {
        var (code, _, err) = Run(args);
        Assert.NotEqual(0, code);
        Assert.Equal(message, err);
    }

    [Fact]
    public void FindRunning_LiveAndDead_DeadLeftInPlace()
    {
        // Readers never delete: `ctfw stats` run by anyone leaves a dead daemon's socket for the next `ctfw run` on it.
        File.WriteAllText(_dir.File("ctfw-99999999.sock"), "");
        File.WriteAllText(_dir.File("not-ours.sock"), "");
        using ControlServer own = StartOwn();
        List<RunningInstance> running = ControlPaths.FindRunning();
        Assert.Equal([new RunningInstance(Environment.ProcessId, ControlPaths.Default(Environment.ProcessId))], running);
        Assert.True(File.Exists(_dir.File("ctfw-99999999.sock")));
        Assert.True(File.Exists(_dir.File("not-ours.sock")));
    }

    [Fact]
    public void FindRunning_DeadPidStillAnswering_Kept()
    {
        // A daemon in another pid namespace: its pid means nothing here, but it answers.
        string path = _dir.File("ctfw-99999998.sock");
        using var server = ControlServer.Start(path, _target);
        Assert.Equal([new RunningInstance(99999998, path)], ControlPaths.FindRunning());
    }

    [Fact]
    public void Stats_OneInstance_HumanReportAndRaw()
    {
        _target.Counters.AddRange([new("uptime_ms", 61_000), new("packets", 10), new("state.NEW", 10), new("rescue.adopted", 2)]);
        using ControlServer own = StartOwn();
        var (code, output, err) = Run("stats");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.Equal(StatsReport.Format(_target.Counters), output);
        Assert.StartsWith("uptime", output);
        Assert.Contains("\nrescue\n  adopted ", output);

        (code, output, _) = Run("stats", "--raw");
        Assert.Equal(0, code);
        Assert.Equal("uptime_ms 61000\npackets 10\nstate.NEW 10\nrescue.adopted 2\n", output);
    }

    [Fact]
    public void Stats_Json_TotalsAndRatesParseBack()
    {
        _target.Counters.AddRange([new("uptime_ms", 61_000), new("packets", 10), new("rate.1s.packets", 3), new("rate.60s.packets", 1)]);
        using ControlServer own = StartOwn();
        var (code, output, err) = Run("stats", "--json");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        Assert.Equal(10, doc.RootElement.GetProperty("counters").GetProperty("packets").GetInt64());
        Assert.Equal(3, doc.RootElement.GetProperty("rates").GetProperty("1s").GetProperty("packets").GetInt64());
        Assert.Equal(1, doc.RootElement.GetProperty("rates").GetProperty("60s").GetProperty("packets").GetInt64());
        Assert.False(doc.RootElement.GetProperty("counters").TryGetProperty("rate.1s.packets", out _));

        (code, _, err) = Run("stats", "--json", "--raw");
        Assert.Equal(2, code);
        Assert.Equal("ctfw: use --raw or --json, not both\n", err);
    }

    [Fact]
    public void Stats_ControlPath_UsedWithoutSearching()
    {
        string path = _dir.File("elsewhere.sock");
        _target.Counters.Add(new("packets", 9));
        using var server = ControlServer.Start(path, _target);
        var (code, output, _) = Run("stats", "--raw", "--control", path);
        Assert.Equal(0, code);
        Assert.Equal("packets 9\n", output);
    }

    [Fact]
    public void Stats_DaemonGone_ExitOne()
    {
        string path = _dir.File("gone.sock");
        var (code, _, err) = Run("stats", "--control", path);
        Assert.Equal(1, code);
        Assert.StartsWith($"ctfw: cannot connect to {path}: ", err);
    }

    [Fact]
    public void Stats_PidWithoutSocket_ExitOne()
    {
        var (code, _, err) = Run("stats", "--pid", "4242");
        Assert.Equal(1, code);
        Assert.Equal($"ctfw: no ctfw with pid 4242 (no control socket {_dir.File("ctfw-4242.sock")})\n", err);
    }

    [Fact]
    public void Conntrack_List_FilteredEntriesAndCountLine()
    {
        FlowInfo web = Flows.Tcp("10.0.0.1", 40000, "10.0.0.2", 80), ssh = Flows.Tcp("10.0.0.1", 40001, "10.0.0.3", 22);
        FlowInfo dns = Flows.Udp("10.0.0.1", 5353, "10.0.0.2", 53, CtStatus.Confirmed);
        _target.Add(web, ssh, dns);
        using ControlServer own = StartOwn();

        var (code, output, err) = Run("conntrack", "-L");
        Assert.Equal(0, code);
        Assert.Equal(ConntrackListing.Format(web) + "\n" + ConntrackListing.Format(ssh) + "\n" + ConntrackListing.Format(dns) + "\n", output);
        Assert.Equal("ctfw conntrack: 3 flow entries have been shown.\n", err);

        (code, output, err) = Run("conntrack", "-L", "-p", "tcp", "--dport", "22");
        Assert.Equal(0, code);
        Assert.Equal(ConntrackListing.Format(ssh) + "\n", output);
        Assert.Equal("ctfw conntrack: 1 flow entries have been shown.\n", err);

        // -L is the default command.
        (code, output, _) = Run("conntrack", "--status", "UNREPLIED");
        Assert.Equal(0, code);
        Assert.Equal(ConntrackListing.Format(dns) + "\n", output);
        Assert.Contains("[UNREPLIED]", output);
    }

    [Fact]
    public void Conntrack_Count_NumberOnStdout()
    {
        _target.Add(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2), Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2), Flows.Udp("::1", 1, "::2", 2));
        using ControlServer own = StartOwn();
        var (code, output, err) = Run("conntrack", "-C");
        Assert.Equal((0, "3\n", ""), (code, output, err));
        (code, output, _) = Run("conntrack", "--count", "-f", "ipv6");
        Assert.Equal((0, "1\n"), (code, output));
    }

    [Fact]
    public void Conntrack_Flush_EmptiesAndSaysHowMany()
    {
        _target.Add(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2), Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2));
        using ControlServer own = StartOwn();
        var (code, output, err) = Run("conntrack", "-F");
        Assert.Equal(0, code);
        Assert.Equal("", output);
        Assert.Equal("ctfw conntrack: connection tracking table has been emptied (2 entries).\n", err);
        Assert.Equal(0, _target.FlowCount);
    }

    [Theory]
    [InlineData("use one of -L, -C, -D and -F", "conntrack", "-L", "-F")]
    [InlineData("-F empties the whole table; filters apply to -L and -C", "conntrack", "-F", "-p", "tcp")]
    [InlineData("unknown option '--frob' for conntrack", "conntrack", "--frob")]
    [InlineData("unknown table 'tcp' (expected conntrack or expect)", "conntrack", "-L", "tcp")]
    [InlineData("-p tcpx: expected", "conntrack", "-p", "tcpx")]
    [InlineData("option --dport needs a value", "conntrack", "--dport")]
    [InlineData("--state is a TCP state and cannot match udp entries", "conntrack", "-p", "udp", "--state", "ESTABLISHED")]
    [InlineData("--pid x: expected a process id", "conntrack", "--pid", "x")]
    [InlineData("--pid 0: expected a process id", "stats", "--pid", "0")]
    [InlineData("use --pid or --control, not both", "stats", "--pid", "1", "--control", "/x.sock")]
    [InlineData("option --control needs a value", "stats", "--control")]
    [InlineData("unknown option '-L' for stats", "stats", "-L")]
    public void BadArguments_OneLine_ExitTwo(string message, params string[] args)
    {
        // A running daemon must not change the verdict on a bad command line.
        using ControlServer own = StartOwn();
        var (code, output, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains(message, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Equal(0, _target.Reloads);
    }

    [Theory]
    [InlineData("stats")]
    [InlineData("conntrack")]
    public void Help_PrintsUsage_ExitZero(string command)
    {
        var (code, output, _) = Run(command, "--help");
        Assert.Equal(0, code);
        Assert.StartsWith($"Usage: ctfw {command}", output);
        Assert.Contains("--pid N", output);
        Assert.Equal(output, Run("help", command).Out);
    }

    [Fact]
    public void MainHelp_ListsTheCommands()
    {
        string output = Run("--help").Out;
        Assert.Contains("\n  stats ", output);
        Assert.Contains("\n  conntrack ", output);
    }
}
