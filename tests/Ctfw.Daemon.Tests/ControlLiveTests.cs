using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Issue 14 part 7 against a live daemon: the rates `ctfw stats` reports rise under traffic and fall
/// back to zero after it; who may use the control socket (root: everything; uid 65534 outside the
/// groups: refused, and told so by `ctfw stats` as "permission denied").
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class ControlLiveTests : IDisposable
{
    private const string Nobody = "65534";
    private const string AcceptAll = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("ctfw-control-");
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public ControlLiveTests(Xunit.Abstractions.ITestOutputHelper output)
    {
        _output = output;
        File.WriteAllText(Path.Combine(_dir.FullName, "r.rules"), AcceptAll);
        // Others may walk in (to reach the socket, or be refused by its mode) and run a copy of the
        // build: the checkout may sit where nobody cannot read, e.g. under /root.
        Tool.Run(["cp", "-a", Path.GetDirectoryName(CtfwProcess.Dll)!, Path.Combine(_dir.FullName, "bin")]);
        Tool.Run(["chmod", "-R", "a+rX", _dir.FullName]);
    }

    public void Dispose() => _dir.Delete(recursive: true);

    private string Control => Path.Combine(_dir.FullName, "run", "c.sock");

    private ChildProcess StartDaemon(GatewayLab lab, ushort queue, params string[] extra) =>
        CtfwProcess.Start(lab.Gateway, ["run", "--rules", Path.Combine(_dir.FullName, "r.rules"), "--queue", queue.ToString(CultureInfo.InvariantCulture),
            "--install", "FORWARD", "--control", Control, .. extra]);

    private Dictionary<string, long> Stats()
    {
        ToolResult stats = CtfwProcess.Run(TimeSpan.FromSeconds(30), "stats", "--raw", "--control", Control);
        Assert.True(stats.ExitCode == 0, stats.StdErr);
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in stats.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = line.Split(' ');
            values[parts[0]] = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return values;
    }

    /// <summary>`ctfw ARGS` as uid/gid 65534 with <paramref name="groups"/> (none: --clear-groups).</summary>
    private ToolResult AsNobody(string groups, params string[] args) => Tool.Run(checkExit: false, TimeSpan.FromSeconds(30),
        ["setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", groups.Length == 0 ? "--clear-groups" : $"--groups={groups}",
         "env", $"HOME={_dir.FullName}", "DOTNET_CLI_HOME=" + _dir.FullName,
         "dotnet", Path.Combine(_dir.FullName, "bin", Path.GetFileName(CtfwProcess.Dll)), .. args]);

    [Fact(Timeout = 120_000)]
    public async Task Rates_UnderTraffic_RiseThenBackToZero()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        using Socket sink = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            socket.Bind(new IPEndPoint(IPAddress.Any, 5400));
            return socket;
        });
        using ChildProcess daemon = StartDaemon(lab, 22);
        Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), daemon.StdErr);

        // About 500 datagrams a second through the gateway for 3 s.
        using Socket sender = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        sender.Connect(new IPEndPoint(lab.ServerV4, 5400));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.ElapsedMilliseconds < 3000)
        {
            sender.Send("x"u8);
            await Task.Delay(2);
        }
        Dictionary<string, long> busy = Stats();
        _output.WriteLine($"under traffic: packets {busy["packets"]}, rate 1s {busy["rate.1s.packets"]}/s, 10s {busy["rate.10s.packets"]}/s, 60s {busy["rate.60s.packets"]}/s");
        Assert.InRange(busy["rate.1s.packets"], 50, 100_000);
        Assert.InRange(busy["rate.10s.packets"], 20, 100_000);
        Assert.True(busy["rate.1s.verdict.accept"] > 0);
        Assert.True(busy["rate.1s.state.NEW"] > 0); // one way, never answered: every packet of the flow is NEW

        // Quiet: the last second's rate goes back to 0; the last minute's still shows the burst.
        await Task.Delay(3000);
        Dictionary<string, long> quiet = Stats();
        _output.WriteLine($"3 s after: packets {quiet["packets"]}, rate 1s {quiet["rate.1s.packets"]}/s, 10s {quiet["rate.10s.packets"]}/s, 60s {quiet["rate.60s.packets"]}/s");
        Assert.Equal(0, quiet["rate.1s.packets"]);
        Assert.True(quiet["rate.60s.packets"] > 0);
        Assert.True(quiet["packets"] >= busy["packets"]);

        // The report and --json show them next to the totals.
        ToolResult report = CtfwProcess.Run(TimeSpan.FromSeconds(30), "stats", "--control", Control);
        Assert.Contains(" since start; last 1s 0/s, 10s ", report.StdOut);

        Assert.True(daemon.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void NoGroups_RootAdmin_OtherUidToldPermissionDenied()
    {
        using var lab = new GatewayLab();
        using ChildProcess daemon = StartDaemon(lab, 23);
        Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), daemon.StdErr);

        ToolResult flush = CtfwProcess.Run(TimeSpan.FromSeconds(30), "conntrack", "-F", "--control", Control);
        Assert.True(flush.ExitCode == 0, flush.StdErr);
        Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: control: flush by uid 0 (root) pid ", TimeSpan.FromSeconds(10)), daemon.StdErr);

        // The socket directory is 0700: uid 65534 cannot reach the socket, and is told so.
        ToolResult denied = AsNobody("", "stats", "--control", Control);
        Assert.Equal(1, denied.ExitCode);
        Assert.StartsWith($"ctfw: permission denied: cannot reach the control socket {Control}; it is for root", denied.StdErr);

        Assert.True(daemon.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void Groups_RootAdmin_ReadMemberReadsButCannotFlush_AdminMemberFlushes_NonMemberDenied()
    {
        // Two temporary groups (removed whatever happens); the clients are uid 65534 given them by setpriv.
        string suffix = Guid.NewGuid().ToString("N")[..6];
        string read = $"ctfwt-r-{suffix}", admin = $"ctfwt-a-{suffix}";
        Tool.Run(["groupadd", read]);
        try
        {
            Tool.Run(["groupadd", admin]);
            try
            {
                string readGid = Gid(read), adminGid = Gid(admin);
                using var lab = new GatewayLab();
                using ChildProcess daemon = StartDaemon(lab, 24, "--control-group", read, "--control-admin-group", admin);
                Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), daemon.StdErr);
                Assert.Equal($"660 {read}", Tool.Run("stat", "-c", "%a %G", Control).Trim());
                Assert.Equal($"750 {read}", Tool.Run("stat", "-c", "%a %G", Path.GetDirectoryName(Control)!).Trim());

                // Root: admin.
                ToolResult rootFlush = CtfwProcess.Run(TimeSpan.FromSeconds(30), "conntrack", "-F", "--control", Control);
                Assert.True(rootFlush.ExitCode == 0, rootFlush.StdErr);

                // A member of the read-only group: reads, is refused a change with the message.
                ToolResult stats = AsNobody(readGid, "stats", "--raw", "--control", Control);
                Assert.True(stats.ExitCode == 0, stats.StdErr);
                Assert.Contains("\ncontrol.connections ", stats.StdOut);
                ToolResult rules = AsNobody(readGid, "rules", "--control", Control);
                Assert.True(rules.ExitCode == 0, rules.StdErr);
                ToolResult denied = AsNobody(readGid, "conntrack", "-F", "--control", Control);
                Assert.Equal(1, denied.ExitCode);
                Assert.Contains($"permission denied: flush needs the admin role (root or group {admin})", denied.StdErr);
                Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: control: flush denied to uid 65534", TimeSpan.FromSeconds(10)), daemon.StdErr);

                // A member of both: an admin.
                ToolResult flush = AsNobody($"{readGid},{adminGid}", "conntrack", "-F", "--control", Control);
                Assert.True(flush.ExitCode == 0, flush.StdErr);
                Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: control: flush by uid 65534", TimeSpan.FromSeconds(10)), daemon.StdErr);

                // In neither: the 0750 directory keeps it out, and `ctfw stats` says who may come in.
                ToolResult outsider = AsNobody("", "stats", "--control", Control);
                Assert.Equal(1, outsider.ExitCode);
                Assert.Contains($"ctfw: permission denied: cannot reach the control socket {Control}; it is for root and members of group {read}", outsider.StdErr);

                Assert.True(daemon.Signal(ChildProcess.SigTerm));
                Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
                _output.WriteLine(string.Join('\n', daemon.StdErr.Split('\n').Where(l => l.Contains("control:", StringComparison.Ordinal))));
            }
            finally
            {
                Tool.Run(checkExit: false, ["groupdel", admin]);
            }
        }
        finally
        {
            Tool.Run(checkExit: false, ["groupdel", read]);
        }
    }

    [Fact]
    public void JournalStream_MatchingStderr_LinesCarryPriorities_OtherwisePlain()
    {
        using var lab = new GatewayLab();
        string rules = Path.Combine(_dir.FullName, "r.rules");
        // As systemd does it: JOURNAL_STREAM names the device and inode of the stream on fd 2 (here the
        // test's pipe, found by stat -L of the shell's own fd 2).
        using ChildProcess journal = CtfwProcess.StartCommand("ip", "netns", "exec", lab.Gateway, "sh", "-c",
            "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$0\" \"$@\"",
            "dotnet", CtfwProcess.Dll, "run", "--rules", rules, "--queue", "25", "--install", "FORWARD", "--control", Control, "--control-group", "nogroup");
        Assert.True(journal.WaitForLine(OutputStream.StdErr, "<6>ctfw: running", TimeSpan.FromSeconds(30)), journal.StdErr);
        Assert.True(CtfwProcess.Run(TimeSpan.FromSeconds(30), "conntrack", "-F", "--control", Control).ExitCode == 0);
        Assert.True(journal.WaitForLine(OutputStream.StdErr, "<5>ctfw: control: flush by uid 0 (root) pid ", TimeSpan.FromSeconds(10)), journal.StdErr);
        Assert.True(journal.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, journal.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.All(journal.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), line => Assert.Matches(@"^<[3-7]>", line));

        // A stale JOURNAL_STREAM (stderr redirected since): lines as they are.
        using ChildProcess plain = CtfwProcess.StartCommand("ip", "netns", "exec", lab.Gateway, "env", "JOURNAL_STREAM=1:1",
            "dotnet", CtfwProcess.Dll, "run", "--rules", rules, "--queue", "25", "--install", "FORWARD", "--control", Control);
        Assert.True(plain.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), plain.StdErr);
        Assert.True(plain.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, plain.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.DoesNotContain("<6>", plain.StdErr, StringComparison.Ordinal);
        Assert.StartsWith("ctfw: ", plain.StdErr, StringComparison.Ordinal);
    }

    private static string Gid(string group) => Tool.Run("getent", "group", group).Split(':')[2];
}
