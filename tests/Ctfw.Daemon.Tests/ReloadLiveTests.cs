using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Reload without a restart: SIGHUP and `ctfw reload` swap in the edited rules file at once, flows
/// keep their state, a file with an error leaves the old rules in force, and a signal whose default
/// action would kill the process ends it through the same cleanup as SIGTERM.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class ReloadLiveTests
{
    private const string Header = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    // Before: NEW UDP only to 5353. After: no NEW to 5353 any more (its flow lives on only if its
    // state survived the reload), NEW to 5360 allowed.
    private const string Before = Header + """
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p udp -m udp --dport 5353 -m conntrack --ctstate NEW -j ACCEPT
        COMMIT

        """;

    private const string After = Header + """
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p udp -m udp --dport 5360 -m conntrack --ctstate NEW -j ACCEPT
        COMMIT

        """;

    private const string Broken = Header + "-A FORWARD -p udp --no-such-option 1 -j ACCEPT\nCOMMIT\n";

    [Fact(Timeout = 180_000)]
    public async Task Sighup_EditedRules_NewRuleAtOnceFlowKeptUntilDeletedBadFileKeepsOldRulesOtherSignalCleansUp()
    {
        using var lab = new GatewayLab();
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-reload-{tag}.rules");
        string control = Path.Combine(Path.GetTempPath(), $"ctfw-reload-{tag}.sock");
        File.WriteAllText(rules, Before);
        using var stop = new CancellationTokenSource();
        var servers = new List<Socket>();
        try
        {
            foreach (int port in (int[])[5353, 5360])
                servers.Add(RunUdpLiveTests.UdpEcho(lab, port, v6: false, stop.Token));
            using ChildProcess ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "14", "--install", "FORWARD", "--control", control);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), ctfw.StdErr);

            // One long-lived flow to 5353 (the same client socket throughout).
            using Socket flow = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
                () => new Socket(lab.ServerV4.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
            flow.Connect(new System.Net.IPEndPoint(lab.ServerV4, 5353));
            Assert.Equal("one", await Talk.Say(flow, "one"));
            Assert.Equal("timeout", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5360, "early"));

            File.WriteAllText(rules, After);
            Assert.True(ctfw.Signal(1)); // SIGHUP
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: reload: ", TimeSpan.FromSeconds(20)), ctfw.StdErr);
            Assert.Contains("counters kept for 1 unchanged rules", ctfw.StdErr);
            Assert.Equal("now", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5360, "now"));  // the new rule, at once
            Assert.Equal("two", await Talk.Say(flow, "two"));                                          // the old flow kept its state
            Assert.Equal("timeout", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5353, "fresh")); // NEW to 5353 no longer allowed

            // The tightened rules leave the old flow alive until its entry goes: `conntrack -D` ends it.
            ToolResult delete = CtfwProcess.Run(TimeSpan.FromSeconds(30), "conntrack", "-D", "-p", "udp", "--dport", "5353", "--control", control);
            Assert.Equal(0, delete.ExitCode);
            Assert.Contains("dport=5353", delete.StdOut);
            Assert.Contains("1 flow entries have been deleted", delete.StdErr);
            Assert.Equal("timeout", await Talk.Say(flow, "three"));

            File.WriteAllText(rules, Broken);
            ToolResult reload = CtfwProcess.Run(TimeSpan.FromSeconds(30), "reload", "--control", control);
            Assert.Equal(1, reload.ExitCode);
            Assert.Contains($"{rules}:5:", reload.StdErr);
            Assert.Contains("the old rules stay in force", reload.StdErr);
            Assert.Equal("still", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5360, "still"));

            ToolResult stats = CtfwProcess.Run(TimeSpan.FromSeconds(30), "stats", "--raw", "--control", control);
            Assert.Contains("rules.reloads 1\n", stats.StdOut);
            Assert.Contains("rules.reload_failures 1\n", stats.StdOut);

            // SIGUSR1's default action would kill the process and leave the NFQUEUE jumps behind.
            Assert.True(ctfw.Signal(10));
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
            Assert.Contains("ctfw: stopped after", ctfw.StdErr);
            Assert.DoesNotContain("NFQUEUE", Tool.RunIn(lab.Gateway, "iptables-save"));
            Assert.False(File.Exists(control));
        }
        finally
        {
            stop.Cancel();
            foreach (Socket s in servers)
                s.Dispose();
            File.Delete(rules);
        }
    }
}
