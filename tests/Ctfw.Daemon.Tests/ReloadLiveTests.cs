using System.Net.Sockets;
using Ctfw.Linux;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Reload without a restart: SIGHUP and `ctfw reload` swap in the edited rules file at once, flows
/// keep their state, a file with an error leaves the old rules in force, and a signal whose default
/// action would kill the process ends it through the same cleanup as SIGTERM. Issue 12 part 5 case d:
/// a long-lived TCP conversation and UDP stream under a strict ruleset go on untouched through a
/// SIGHUP whose new rule works at once, and break when the same rules are applied by a restart.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class ReloadLiveTests(ITestOutputHelper output)
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

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)] // the operator applies the edited rules by a restart (no state file) instead
    public async Task EditedRules_SighupOrRestart_NewRuleAtOnceConversationKeptOnlyBySighup(bool sighup)
    {
        const int TcpPort = 5004, UdpPort = 5005, NewPort = 5006;
        using var lab = new GatewayLab();
        lab.Listen(NewPort);
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-reload-{tag}.rules");
        File.WriteAllText(rules, Conversation.StrictRules(lab, TcpPort, UdpPort));
        string[] args = ["run", "--rules", rules, "--queue", "14", "--install", "FORWARD", "--set", "nf_conntrack_tcp_loose=0"];
        var startTimeout = TimeSpan.FromSeconds(30);
        var echoTimeout = TimeSpan.FromSeconds(3);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(100));
        try
        {
            using ChildProcess first = CtfwProcess.Start(lab.Gateway, args);
            Assert.True(first.WaitForLine(OutputStream.StdErr, "ctfw: running", startTimeout), first.StdErr);
            await using Conversation conversation = await Conversation.StartAsync(lab, TcpPort, UdpPort, cts.Token);
            Assert.True(await conversation.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(20)), conversation.Report().Describe());
            Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, NewPort, "early", echoTimeout));

            File.WriteAllText(rules, Conversation.StrictRules(lab, TcpPort, UdpPort,
                $"-A FORWARD -d {lab.ServerV4}/32 -p tcp -m tcp --dport {NewPort} --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT"));
            ChildProcess? second = null;
            try
            {
                conversation.MarkEvent();
                if (sighup)
                {
                    Assert.True(first.Signal(1)); // SIGHUP
                    Assert.True(first.WaitForLine(OutputStream.StdErr, "ctfw: reload: ", TimeSpan.FromSeconds(20)), first.StdErr);
                }
                else
                {
                    Assert.True(first.Signal(ChildProcess.SigTerm));
                    Assert.Equal(0, first.WaitForExit(startTimeout));
                    second = CtfwProcess.Start(lab.Gateway, args);
                    Assert.True(second.WaitForLine(OutputStream.StdErr, "ctfw: running", startTimeout), second.StdErr);
                }
                Assert.Equal("now", await lab.TryEcho(lab.ServerV4, NewPort, "now", echoTimeout)); // the new rule, at once

                if (sighup)
                {
                    bool kept = await conversation.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(20));
                    if (!kept && first.Signal(ChildProcess.SigTerm))
                        first.WaitForExit(startTimeout); // for its summary: what it judged INVALID, and why
                    Assert.True(kept, $"{conversation.Report().Describe()}\n{first.StdErr}");
                    ConversationReport report = await conversation.StopAsync();
                    Conversation.RecordGap(output, "d-sighup-reload", report);
                    Assert.True(report.Intact, report.Describe());
                }
                else
                {
                    // The restarted ctfw has no entries: the client's segments are INVALID, the pushes NEW from outside.
                    bool[] progress = await Task.WhenAll(
                        conversation.WaitForProgressAsync(1, 0, TimeSpan.FromSeconds(5)),
                        conversation.WaitForProgressAsync(0, 1, TimeSpan.FromSeconds(5)));
                    ConversationReport report = await conversation.StopAsync(TimeSpan.Zero);
                    Conversation.RecordGap(output, "d-restart-instead-of-reload", report);
                    Assert.False(progress[0], "TCP kept going: " + report.Describe());
                    Assert.False(progress[1], "UDP pushes kept arriving: " + report.Describe());
                }
                ChildProcess running = second ?? first;
                Assert.True(running.Signal(ChildProcess.SigTerm));
                Assert.Equal(0, running.WaitForExit(startTimeout));
            }
            finally
            {
                second?.Dispose();
            }
        }
        finally
        {
            cts.Cancel();
            File.Delete(rules);
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task Sighup_EditedRules_NewRuleAtOnceFlowKeptUntilDeletedBadFileKeepsOldRulesOtherSignalCleansUp()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        var servers = new List<Socket>();
        try
        {
            foreach (int port in (int[])[5353, 5360])
                servers.Add(RunUdpLiveTests.UdpEcho(lab, port, v6: false, stop.Token));
            using var daemon = new LiveDaemon(lab, "reload", Before, 14);
            ChildProcess ctfw = daemon.Process;
            string rules = daemon.RulesPath, control = daemon.ControlPath;

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
        }
    }
}
