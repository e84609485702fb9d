namespace Ctfw.Daemon.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PrivilegedCollection
{
    public const string Name = "Privileged";
}

/// <summary>`ctfw run` as a process in a gateway namespace, judged by real sockets on both sides.</summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class RunCommandLiveTests
{
    private const string Ruleset = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
        -4 -A FORWARD -p icmp -m icmp --icmp-type echo-request -j ACCEPT
        -6 -A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 9090 -j REJECT --reject-with tcp-reset
        -A FORWARD -j DROP
        COMMIT

        """;

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Run_GatewayRuleset_AcceptsDropsRejectsAndCleansUpOnSigterm()
    {
        using var lab = new GatewayLab();
        string rules = WriteRules();
        try
        {
            foreach (int port in (int[])[8080, 9090, 9091])
                lab.Listen(port);
            // Sanity: without ctfw every port answers, so each failure below is ctfw's doing.
            Assert.Equal("hello", await lab.TryEcho(lab.ServerV4, 9091, "hello", TimeSpan.FromSeconds(5)));
            Assert.True(lab.Ping(lab.ServerV4), "IPv4 ping without ctfw");

            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "7", "--install", "FORWARD");
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);
            Assert.Contains("CTFW", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);

            Assert.Equal("ping-v4", await lab.TryEcho(lab.ServerV4, 8080, "ping-v4", TimeSpan.FromSeconds(5)));
            Assert.Equal("ping-v6", await lab.TryEcho(lab.ServerV6, 8080, "ping-v6", TimeSpan.FromSeconds(5)));
            Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 9091, "x", TimeSpan.FromSeconds(2)));
            Assert.Equal("timeout", await lab.TryEcho(lab.ServerV6, 9091, "x", TimeSpan.FromSeconds(2)));
            Assert.Equal("refused", await lab.TryEcho(lab.ServerV4, 9090, "x", TimeSpan.FromSeconds(5)));
            Assert.Equal("refused", await lab.TryEcho(lab.ServerV6, 9090, "x", TimeSpan.FromSeconds(5)));
            bool ping4 = lab.Ping(lab.ServerV4), ping6 = lab.Ping(lab.ServerV6);

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
            string stderr = ctfw.StdErr;
            Assert.True(ping4 && ping6, $"ping through the gateway: IPv4 {ping4}, IPv6 {ping6}\n{stderr}");
            Assert.Contains("ctfw: verdicts: accept", stderr, StringComparison.Ordinal);
            Assert.Matches(@"reject [1-9]\d* \(answers sent [1-9]", stderr);
            foreach (string tool in (string[])["iptables-save", "ip6tables-save"])
                Assert.DoesNotContain("ctfw:", Tool.RunIn(lab.Gateway, tool), StringComparison.Ordinal);
            // With ctfw gone (and its rules) traffic flows again.
            Assert.Equal("after", await lab.TryEcho(lab.ServerV4, 9091, "after", TimeSpan.FromSeconds(5)));
        }
        finally
        {
            File.Delete(rules);
        }
    }

    [Fact]
    public void Run_SecondInstanceOnTheSameQueue_FailsWithOneClearLine()
    {
        using var lab = new GatewayLab();
        string rules = WriteRules();
        try
        {
            using var first = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "9");
            Assert.True(first.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), first.StdErr);

            using var second = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "9", "--install", "FORWARD");
            int? status = second.WaitForExit(s_startTimeout);
            Assert.NotNull(status);
            Assert.NotEqual(0, status);
            Assert.Contains("queue 9 is already bound by another process", second.StdErr, StringComparison.Ordinal);
            // It failed before touching iptables.
            Assert.DoesNotContain("ctfw:", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);

            first.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, first.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            File.Delete(rules);
        }
    }

    private static string WriteRules()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-daemon-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        File.WriteAllText(path, Ruleset);
        return path;
    }
}

/// <summary>`ctfw run` failures that need no privileges.</summary>
public sealed class RunCommandTests
{
    [Fact]
    public void Run_RulesWithErrors_PrintsFileLineColumnAndExits2()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-bad-{Guid.NewGuid():N}.rules");
        File.WriteAllText(path, "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport nonsense -j ACCEPT\nCOMMIT\n");
        try
        {
            using var ctfw = CtfwProcess.Start(null, "run", "--rules", path, "--queue", "3");
            Assert.Equal(2, ctfw.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.Contains($"{path}:3:", ctfw.StdErr, StringComparison.Ordinal);
            Assert.DoesNotContain("ctfw: running", ctfw.StdErr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
