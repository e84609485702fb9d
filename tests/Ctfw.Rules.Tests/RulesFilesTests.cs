using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>The example rulesets in rules/: every file loads, and each does what its comments say.</summary>
public class RulesFilesTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.GetFiles(T.RulesDirectory()).Order(StringComparer.Ordinal))
        {
            if (!path.EndsWith("README.md", StringComparison.Ordinal))
                data.Add(Path.GetFileName(path));
        }
        return data;
    }

    private static Ruleset LoadFile(string name)
    {
        string path = Path.Combine(T.RulesDirectory(), name);
        Assert.True(Ruleset.TryLoadFile(path, out Ruleset? rs, out IReadOnlyList<RuleError> errors), string.Join("\n", errors));
        return rs!;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void RulesFile_Loads_WithoutErrorsOrWarnings(string name)
    {
        Ruleset rs = LoadFile(name);
        Assert.Empty(rs.Warnings);
        Assert.Equal(3, rs.Chains.Count(c => c.Builtin is not null));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LabRules_RawTableAssignsFtpToTcp21AndTftpToUdp69Only(bool v6)
    {
        // The kernel gateway of the lab scenarios has exactly these raw rules (iptables and ip6tables).
        RawTable raw = LoadFile("lab.rules").Raw!;
        Assert.Equal(["-p tcp -m tcp --dport 21 -j CT --helper ftp", "-p udp -m udp --dport 69 -j CT --helper tftp"], raw.Rules.Select(r => r.Text));
        Assert.Equal([Verdict.Accept, Verdict.Accept], [raw.Policy(Hook.PreRouting), raw.Policy(Hook.Output)]);
        CtHelper Helper(TestPacket p)
        {
            var facts = new PacketFacts(Hook.PreRouting, ref p.Parsed, p.Bytes, p.Result) { In = IfName.Create("eth0") };
            RawVerdict v = raw.Evaluate(facts);
            Assert.Equal(Verdict.Accept, v.Verdict);
            return v.Helper;
        }
        Assert.Equal(CtHelper.Ftp, Helper(T.Tcp(v6, dport: 21)));
        Assert.Equal(CtHelper.Tftp, Helper(T.Udp(v6, dport: 69)));
        Assert.Equal(CtHelper.None, Helper(T.Tcp(v6, dport: 2121)));
        Assert.Equal(CtHelper.None, Helper(T.Udp(v6, dport: 21)));
        Assert.Equal(CtHelper.None, Helper(T.Tcp(v6, dport: 69)));
        Assert.Equal(CtHelper.None, Helper(T.Tcp(v6, sport: 21, dport: 40000)));
    }

    [Fact]
    public void RulesDirectory_HoldsTheThreeExamples()
    {
        var names = Directory.GetFiles(T.RulesDirectory()).Select(Path.GetFileName).ToHashSet();
        Assert.Subset(names, new HashSet<string?> { "accept-all.rules", "gateway.rules", "ecs-seed.rules", "README.md" });
    }

    [Fact]
    public void AcceptAll_AcceptsEverythingOnEveryHook()
    {
        Ruleset rs = LoadFile("accept-all.rules");
        foreach (Hook hook in (Hook[])[Hook.Input, Hook.Forward, Hook.Output])
        {
            Assert.Equal(Verdict.Accept, T.Eval(rs, T.Tcp(), hook, CtState.Invalid).Verdict);
            Assert.Equal(Verdict.Accept, T.Eval(rs, T.Udp(v6: true), hook).Verdict);
        }
    }

    [Fact]
    public void EcsSeed_PeersFinAfterTheEntryExpired_IsLoggedInvalidThenDroppedByPolicy()
    {
        // The case: conntrack forgot the connection (established timeout 20 s); the FIN is INVALID.
        Ruleset rs = LoadFile("ecs-seed.rules");
        TestPacket fin = T.Tcp(sport: 5001, dport: 40000, flags: TcpFlags.Fin | TcpFlags.Ack, seq: 10, ack: 20);
        Span<int> logs = stackalloc int[4];
        RuleVerdict v = T.Eval(rs, fin, Hook.Input, CtState.Invalid, logs: logs);
        Assert.Equal((Verdict.Drop, VerdictReason.Policy), (v.Verdict, v.Reason));
        Assert.Equal("[iptables] INPUT INVALID: ", rs.Rules[logs[0]].Log!.Prefix);
        Assert.Equal(1, v.LogCount);
    }

    [Fact]
    public void EcsSeed_OwnFinAfterTheEntryExpired_IsLoggedAndLeaves()
    {
        // Without the commented-out OUTPUT INVALID DROP, OUTPUT's policy lets the FIN out.
        Ruleset rs = LoadFile("ecs-seed.rules");
        TestPacket fin = T.Tcp(flags: TcpFlags.Fin | TcpFlags.Ack, seq: 10, ack: 20);
        Span<int> logs = stackalloc int[4];
        RuleVerdict v = T.Eval(rs, fin, Hook.Output, CtState.Invalid, outIf: "eth0", logs: logs);
        Assert.Equal((Verdict.Accept, VerdictReason.Policy), (v.Verdict, v.Reason));
        Assert.Equal("[iptables] OUTPUT INVALID: ", rs.Rules[logs[0]].Log!.Prefix);
    }

    [Theory]
    [InlineData(22, CtState.New, Verdict.Accept, "[iptables] INPUT NEW: ")]
    [InlineData(8088, CtState.New, Verdict.Accept, "[iptables] INPUT NEW: ")]
    [InlineData(8088, CtState.Established, Verdict.Accept, "[iptables] INPUT ESTABLISHED:")]
    [InlineData(3306, CtState.New, Verdict.Drop, "[iptables] INPUT NEW: ")]
    [InlineData(3306, CtState.Established, Verdict.Accept, "[iptables] INPUT ESTABLISHED:")]
    [InlineData(3306, CtState.Related, Verdict.Accept, "[iptables] INPUT RELATED: ")]
    public void EcsSeed_InboundTcp_ByPortAndState(int port, CtState state, Verdict expected, string prefix)
    {
        Ruleset rs = LoadFile("ecs-seed.rules");
        Span<int> logs = stackalloc int[4];
        RuleVerdict v = T.Eval(rs, T.Tcp(dport: (ushort)port), Hook.Input, state, logs: logs);
        Assert.Equal(expected, v.Verdict);
        Assert.Equal(prefix, rs.Rules[logs[0]].Log!.Prefix);
    }

    [Fact]
    public void EcsSeed_PingAndLoopback_AreAccepted()
    {
        Ruleset rs = LoadFile("ecs-seed.rules");
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Icmp(), Hook.Input, CtState.New).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Icmp(type: 13), Hook.Input, CtState.New).Verdict);
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Udp(), Hook.Input, CtState.New, inIf: "lo").Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Udp(), Hook.Forward, CtState.New).Verdict);
    }

    /// <summary>The seed's script, verbatim (shared/seeds/000_*.txt), minus the service/sysctl lines.</summary>
    private const string SeedScript = """
        iptables -P INPUT ACCEPT
        iptables -A INPUT -p tcp -m state --state NEW -j LOG --log-prefix "[iptables] INPUT NEW: "
        iptables -A INPUT -p TCP -m state --state ESTABLISHED -j LOG --log-prefix "[iptables] INPUT ESTABLISHED: "
        iptables -A INPUT -p TCP -m state --state RELATED -j LOG --log-prefix "[iptables] INPUT RELATED: "
        iptables -A INPUT -p TCP -m state --state INVALID -j LOG --log-prefix "[iptables] INPUT INVALID: "
        iptables -A INPUT -i lo -j ACCEPT
        iptables -A INPUT -p tcp --dport 22 -j ACCEPT
        iptables -A INPUT -p tcp --dport 21 -j ACCEPT
        iptables -A INPUT -p tcp --dport 80 -j ACCEPT
        iptables -A INPUT -p tcp --dport 443 -j ACCEPT
        iptables -A INPUT -p tcp --dport 8088 -m state --state NEW -j ACCEPT
        iptables -A INPUT -p icmp --icmp-type 8 -j ACCEPT
        iptables -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
        iptables -A OUTPUT -p tcp -m state --state NEW -j LOG --log-prefix "[iptables] OUTPUT NEW: "
        iptables -A OUTPUT -p TCP -m state --state ESTABLISHED -j LOG --log-prefix "[iptables] OUTPUT ESTABLISHED: "
        iptables -A OUTPUT -p TCP -m state --state RELATED -j LOG --log-prefix "[iptables] OUTPUT RELATED: "
        iptables -A OUTPUT -p TCP -m state --state INVALID -j LOG --log-prefix "[iptables] OUTPUT INVALID: "
        # iptables -A OUTPUT -m state --state INVALID -j DROP
        iptables -P INPUT DROP
        iptables -P OUTPUT ACCEPT
        iptables -P FORWARD DROP
        """;

    [Fact]
    public void EcsSeed_BehavesExactlyAsTheSeedsIptablesCommands()
    {
        // The commands fed to iptables-restore as they are (iptables-restore accepts -A/-P lines).
        string restore = "*filter\n" + string.Join('\n', SeedScript.Split('\n').Select(l => l.Replace("iptables ", "", StringComparison.Ordinal))) + "\nCOMMIT\n";
        Ruleset script = T.Load(restore, "seed-script");
        Assert.Equal(2, script.Warnings.Count); // the two ESTABLISHED prefixes (30 and 31 characters), cut to 29
        Ruleset file = LoadFile("ecs-seed.rules");
        Assert.Equal(script.Rules.Count, file.Rules.Count);

        TestPacket[] packets =
        [
            T.Tcp(dport: 22), T.Tcp(dport: 21), T.Tcp(dport: 80), T.Tcp(dport: 443), T.Tcp(dport: 8088), T.Tcp(dport: 3306),
            T.Tcp(flags: TcpFlags.Fin | TcpFlags.Ack), T.Tcp(v6: true), T.Udp(), T.Icmp(), T.Icmp(type: 0), T.Generic(false, IpProto.Gre),
        ];
        CtState[] states = [CtState.New, CtState.Established, CtState.Related, CtState.Invalid, CtState.Untracked];
        Span<int> a = stackalloc int[8], b = stackalloc int[8];
        int compared = 0;
        foreach (Hook hook in (Hook[])[Hook.Input, Hook.Forward, Hook.Output])
        foreach (TestPacket p in packets)
        foreach (CtState state in states)
        foreach (string inIf in new[] { "eth0", "lo" })
        {
            RuleVerdict x = T.Eval(script, p, hook, state, inIf: inIf, logs: a);
            RuleVerdict y = T.Eval(file, p, hook, state, inIf: inIf, logs: b);
            Assert.Equal((x.Verdict, x.Rule, x.LogCount), (y.Verdict, y.Rule, y.LogCount));
            for (int i = 0; i < x.LogCount; i++)
                Assert.Equal(script.Rules[a[i]].Log, file.Rules[b[i]].Log);
            compared++;
        }
        Assert.Equal(3 * packets.Length * states.Length * 2, compared);
    }

    [Theory]
    [InlineData("ssh from lan", Hook.Input, "eth1", 22, CtState.New, Verdict.Accept)]
    [InlineData("ssh from wan", Hook.Input, "eth0", 22, CtState.New, Verdict.Drop)]
    [InlineData("dns from lan", Hook.Input, "eth1", 53, CtState.New, Verdict.Accept)]
    [InlineData("ident", Hook.Input, "eth0", 113, CtState.New, Verdict.Reject)]
    [InlineData("reply to the gateway", Hook.Input, "eth0", 40000, CtState.Established, Verdict.Accept)]
    [InlineData("invalid", Hook.Input, "eth1", 22, CtState.Invalid, Verdict.Drop)]
    [InlineData("lan to wan", Hook.Forward, "eth1", 443, CtState.New, Verdict.Accept)]
    [InlineData("wan to lan", Hook.Forward, "eth0", 443, CtState.New, Verdict.Drop)]
    [InlineData("wan to lan reply", Hook.Forward, "eth0", 443, CtState.Established, Verdict.Accept)]
    [InlineData("own traffic", Hook.Output, "", 443, CtState.New, Verdict.Accept)]
    public void Gateway_TcpV4_ByInterfacePortAndState(string what, Hook hook, string inIf, int port, CtState state, Verdict expected)
    {
        Ruleset rs = LoadFile("gateway.rules");
        string outIf = hook == Hook.Forward ? (inIf == "eth1" ? "eth0" : "eth1") : hook == Hook.Output ? "eth0" : "";
        RuleVerdict v = T.Eval(rs, T.Tcp(dport: (ushort)port), hook, state, inIf: inIf, outIf: outIf);
        Assert.True(expected == v.Verdict, what);
    }

    [Fact]
    public void Gateway_DroppedPacket_IsLoggedWithTheGatewayPrefix()
    {
        Ruleset rs = LoadFile("gateway.rules");
        Span<int> logs = stackalloc int[4];
        RuleVerdict v = T.Eval(rs, T.Tcp(dport: 23), Hook.Input, CtState.New, logs: logs);
        Assert.Equal(Verdict.Drop, v.Verdict);
        Assert.Equal(1, v.LogCount);
        Assert.Equal(new LogOptions { Prefix = "ctfw drop: ", Level = 6 }, rs.Rules[logs[0]].Log);
    }

    [Fact]
    public void Gateway_Ipv6_NeighbourDiscoveryPingAndThePublishedServer()
    {
        Ruleset rs = LoadFile("gateway.rules");
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Icmp(v6: true, type: 135), Hook.Input, CtState.Invalid).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Icmp(v6: false, type: 13), Hook.Input, CtState.Invalid).Verdict);
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Icmp(v6: true), Hook.Input, CtState.New).Verdict);
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Icmp(v6: false), Hook.Input, CtState.New).Verdict);
        TestPacket toServer = T.Tcp(v6: true, dport: 443, dst: T.Addr("2001:db8:1::10"));
        Assert.Equal(Verdict.Accept, T.Eval(rs, toServer, Hook.Forward, CtState.New, inIf: "eth0", outIf: "eth1").Verdict);
        TestPacket toOther = T.Tcp(v6: true, dport: 443, dst: T.Addr("2001:db8:1::11"));
        Assert.Equal(Verdict.Drop, T.Eval(rs, toOther, Hook.Forward, CtState.New, inIf: "eth0", outIf: "eth1").Verdict);
        TestPacket v4ToServer = T.Tcp(dport: 443);
        Assert.Equal(Verdict.Drop, T.Eval(rs, v4ToServer, Hook.Forward, CtState.New, inIf: "eth0", outIf: "eth1").Verdict);
    }
}
