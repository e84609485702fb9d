using System.Net.Sockets;
using System.Text;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Issue 14 part 2: `ctfw run` under a service manager, played by a datagram socket of the test's
/// own at $NOTIFY_SOCKET (a path: abstract names are per network namespace, the daemon runs in the
/// lab's gateway). READY=1 comes only once the NFQUEUE jumps are in; WATCHDOG=1 keeps coming while
/// the workers go round; SIGHUP gives RELOADING=1 then READY=1; SIGTERM gives STOPPING=1.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class SystemdNotifyLiveTests
{
    private const string Rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    [Fact]
    public void Run_UnderANotifySocket_ReadyAfterTheJumps_WatchdogWhileWorking_ReloadingAndStopping()
    {
        using var lab = new GatewayLab();
        DirectoryInfo dir = Directory.CreateTempSubdirectory("ctfw-notify-live-");
        try
        {
            string rules = Path.Combine(dir.FullName, "r.rules");
            File.WriteAllText(rules, Rules);
            string notify = Path.Combine(dir.FullName, "notify");
            using var manager = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { ReceiveTimeout = 30_000 };
            manager.Bind(new UnixDomainSocketEndPoint(notify));

            using ChildProcess daemon = CtfwProcess.StartCommand(
                "ip", "netns", "exec", lab.Gateway, "env", $"NOTIFY_SOCKET={notify}", "WATCHDOG_USEC=400000",
                "dotnet", CtfwProcess.Dll, "run", "--rules", rules, "--queue", "17", "--install", "FORWARD");

            string first = Receive(manager);
            // At READY the jump is there: what a unit's After=/Requires= dependents rely on.
            string iptables = Tool.RunIn(lab.Gateway, "iptables-save");
            Assert.StartsWith("READY=1\nSTATUS=filtering queue 17 with 0 rules", first, StringComparison.Ordinal);
            Assert.Contains("NFQUEUE", iptables, StringComparison.Ordinal);
            Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(10)), daemon.StdErr);

            // Every 200 ms (half of WATCHDOG_USEC), while the idle worker goes round its receive timeout.
            for (int i = 0; i < 3; i++)
                Assert.Equal("WATCHDOG=1", Receive(manager));

            Assert.True(daemon.Signal(1)); // SIGHUP
            Assert.Matches(@"^RELOADING=1\nMONOTONIC_USEC=\d+$", NextNotWatchdog(manager));
            Assert.StartsWith("READY=1\nSTATUS=reloaded", NextNotWatchdog(manager), StringComparison.Ordinal);

            Assert.True(daemon.Signal(ChildProcess.SigTerm));
            Assert.StartsWith("STOPPING=1\n", NextNotWatchdog(manager), StringComparison.Ordinal);
            Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Run_WithoutANotifySocket_NoWordOfSystemd()
    {
        using var lab = new GatewayLab();
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-notify-none-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        File.WriteAllText(rules, Rules);
        try
        {
            using ChildProcess daemon = CtfwProcess.StartCommand(
                "ip", "netns", "exec", lab.Gateway, "env", "-u", "NOTIFY_SOCKET", "WATCHDOG_USEC=soon",
                "dotnet", CtfwProcess.Dll, "run", "--rules", rules, "--queue", "18");
            Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), daemon.StdErr);
            // A malformed watchdog variable is reported, not fatal.
            Assert.Contains("ctfw: warning: WATCHDOG_USEC=soon is not a positive number of microseconds", daemon.StdErr, StringComparison.Ordinal);
            Assert.True(daemon.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            File.Delete(rules);
        }
    }

    private static string Receive(Socket manager)
    {
        byte[] buffer = new byte[4096];
        return Encoding.UTF8.GetString(buffer, 0, manager.Receive(buffer));
    }

    /// <summary>
    /// The next message other than a watchdog ping, within 30 s: the pings come every 200 ms, so the
    /// socket's own timeout never fires while they do. (A daemon started with SIGHUP ignored — under
    /// nohup, say — never reloads; the test must fail then, not hang.)
    /// </summary>
    private static string NextNotWatchdog(Socket manager)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            string message = Receive(manager);
            if (message != "WATCHDOG=1")
                return message;
        }
        throw new TimeoutException("30 s of watchdog pings and nothing else (was the signal ignored? a parent's nohup makes SIGHUP ignored for the daemon too)");
    }
}
