using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>Chain traversal as ipt_do_table: first match, jumps, goto, RETURN, policies, LOG, counters.</summary>
public class EvaluationTests
{
    [Fact]
    public void Evaluate_TwoMatchingRules_FirstOneWins()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp -j ACCEPT\n-A INPUT -p tcp -j DROP", input: "DROP");
        RuleVerdict v = T.Eval(rs, T.Tcp());
        Assert.Equal(Verdict.Accept, v.Verdict);
        Assert.Equal(0, v.Rule);
        Assert.Equal(VerdictReason.Rule, v.Reason);
    }

    [Theory]
    [InlineData("ACCEPT", Verdict.Accept)]
    [InlineData("DROP", Verdict.Drop)]
    public void Evaluate_NoRuleMatches_ChainPolicyDecides(string policy, Verdict expected)
    {
        Ruleset rs = T.Table("-A INPUT -p udp -j REJECT", input: policy);
        RuleVerdict v = T.Eval(rs, T.Tcp());
        Assert.Equal(expected, v.Verdict);
        Assert.Equal(-1, v.Rule);
        Assert.Equal(VerdictReason.Policy, v.Reason);
        Assert.Equal(expected, rs.Policy(Hook.Input));
    }

    [Fact]
    public void Evaluate_EachHook_RunsItsOwnChain()
    {
        Ruleset rs = T.Table("-A INPUT -j ACCEPT\n-A FORWARD -j REJECT\n-A OUTPUT -j DROP", input: "DROP", forward: "DROP", output: "ACCEPT");
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Tcp(), Hook.Input).Verdict);
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp(), Hook.Forward).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp(), Hook.Output).Verdict);
    }

    [Fact]
    public void Evaluate_JumpToChainThatEnds_ResumesAfterTheJump()
    {
        Ruleset rs = T.Table("-A INPUT -j U\n-A INPUT -p tcp -j REJECT\n-A U -p udp -j ACCEPT", chains: ":U - [0:0]\n");
        RuleVerdict v = T.Eval(rs, T.Tcp());
        Assert.Equal(Verdict.Reject, v.Verdict);
        Assert.Equal(1, v.Rule);
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Udp()).Verdict);
    }

    [Fact]
    public void Evaluate_ReturnInUserChain_ResumesAfterTheJump()
    {
        Ruleset rs = T.Table("-A INPUT -j U\n-A INPUT -j REJECT\n-A U -p tcp -j RETURN\n-A U -j DROP", chains: ":U - [0:0]\n");
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Udp()).Verdict);
    }

    [Fact]
    public void Evaluate_ReturnInBuiltinChain_GoesToThePolicy()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp -j RETURN\n-A INPUT -j ACCEPT", input: "DROP");
        RuleVerdict v = T.Eval(rs, T.Tcp());
        Assert.Equal(Verdict.Drop, v.Verdict);
        Assert.Equal(VerdictReason.Policy, v.Reason);
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Udp()).Verdict);
    }

    [Fact]
    public void Evaluate_NestedJumps_ReturnLevelByLevel()
    {
        Ruleset rs = T.Table(
            "-A INPUT -j A\n-A INPUT -j LOG\n-A INPUT -j REJECT\n-A A -j B\n-A A -p udp -j DROP\n-A B -p tcp -j RETURN\n-A B -j C\n-A C -j RETURN\n-A C -j ACCEPT",
            chains: ":A - [0:0]\n:B - [0:0]\n:C - [0:0]\n");
        Span<int> logs = stackalloc int[4];
        RuleVerdict tcp = T.Eval(rs, T.Tcp(), logs: logs);
        Assert.Equal(Verdict.Reject, tcp.Verdict);
        Assert.Equal(1, tcp.LogCount);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Udp()).Verdict);
        Assert.Equal(3, rs.MaxCallDepth);
    }

    [Fact]
    public void Evaluate_GotoChainThatEnds_ReturnsToTheCallerOfTheGotoChain()
    {
        // INPUT -g U: U's end returns past INPUT itself, i.e. to INPUT's policy, skipping INPUT's next rule.
        Ruleset rs = T.Table("-A INPUT -g U\n-A INPUT -j ACCEPT\n-A U -p udp -j REJECT", input: "DROP", chains: ":U - [0:0]\n");
        RuleVerdict v = T.Eval(rs, T.Tcp());
        Assert.Equal(Verdict.Drop, v.Verdict);
        Assert.Equal(VerdictReason.Policy, v.Reason);
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Udp()).Verdict);
    }

    [Fact]
    public void Evaluate_GotoFromCalledChain_ReturnsAfterTheOriginalJump()
    {
        Ruleset rs = T.Table("-A INPUT -j A\n-A INPUT -j REJECT\n-A A -g B\n-A A -j ACCEPT\n-A B -p udp -j DROP",
            input: "ACCEPT", chains: ":A - [0:0]\n:B - [0:0]\n");
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Udp()).Verdict);
        Assert.Equal(1, rs.MaxCallDepth);
    }

    [Fact]
    public void Evaluate_GotoDoesNotGrowTheStack_SoLongGotoChainsLoad()
    {
        const int n = 100;
        string chains = string.Concat(Enumerable.Range(0, n).Select(i => $":C{i} - [0:0]\n"));
        string body = "-A INPUT -g C0\n" + string.Concat(Enumerable.Range(0, n - 1).Select(i => $"-A C{i} -g C{i + 1}\n")) + $"-A C{n - 1} -j REJECT";
        Ruleset rs = T.Table(body, chains: chains);
        Assert.Equal(0, rs.MaxCallDepth);
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp()).Verdict);
    }

    [Fact]
    public void Load_JumpsNested64Deep_LoadsAnd65DoNot()
    {
        static string Nest(int n) =>
            string.Concat(Enumerable.Range(0, n).Select(i => $":C{i} - [0:0]\n"))
            + "-A INPUT -j C0\n" + string.Concat(Enumerable.Range(0, n - 1).Select(i => $"-A C{i} -j C{i + 1}\n")) + $"-A C{n - 1} -j DROP\n";
        Ruleset rs = T.Table(Nest(64));
        Assert.Equal(64, rs.MaxCallDepth);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal("rules.v4:2:1: chain 'INPUT' nests jumps 65 deep; at most 64 are allowed", T.TableError(Nest(65)));
    }

    [Fact]
    public void Load_DiamondOfChains_BoundsStepsByEveryPath()
    {
        // INPUT -> A twice, A -> B twice: B's 2 entries are visited up to 4 times.
        Ruleset rs = T.Table("-A INPUT -j A\n-A INPUT -j A\n-A A -j B\n-A A -j B\n-A B -j LOG",
            chains: ":A - [0:0]\n:B - [0:0]\n");
        Span<int> logs = stackalloc int[8];
        RuleVerdict v = T.Eval(rs, T.Tcp(), logs: logs);
        Assert.Equal(4, v.LogCount);
        // INPUT: 2 rules + end; each A: 2 rules + end + 2 × B (1 rule + end).
        Assert.Equal(3 + 2 * (3 + 2 * 2), rs.MaxStepsPerPacket);
    }

    [Fact]
    public void Evaluate_FamilyRestrictedRules_SkipTheOtherFamily()
    {
        Ruleset rs = T.Table("-4 -A INPUT -j REJECT\n-A INPUT -6 -j DROP", input: "ACCEPT");
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp(v6: true)).Verdict);
        Assert.Equal(RuleFamily.IPv4, rs.Rules[0].Family);
        Assert.Equal(RuleFamily.IPv6, rs.Rules[1].Family);
    }

    [Fact]
    public void Evaluate_LogRules_ContinueAndAreReportedInOrder()
    {
        Ruleset rs = T.Table("-A INPUT -j LOG --log-prefix a\n-A INPUT -p udp -j LOG --log-prefix b\n-A INPUT -j LOG --log-prefix c\n-A INPUT -j ACCEPT", input: "DROP");
        Span<int> logs = stackalloc int[4];
        RuleVerdict v = T.Eval(rs, T.Tcp(), logs: logs);
        Assert.Equal(Verdict.Accept, v.Verdict);
        Assert.Equal(3, v.Rule);
        Assert.Equal(2, v.LogCount);
        Assert.Equal([0, 2], logs[..2].ToArray());
        Assert.Equal("c", rs.Rules[logs[1]].Log!.Prefix);
    }

    [Fact]
    public void Evaluate_MoreLogHitsThanSpan_CountsAllKeepsTheFirst()
    {
        Ruleset rs = T.Table("-A INPUT -j LOG\n-A INPUT -j LOG\n-A INPUT -j LOG");
        Span<int> logs = stackalloc int[2];
        RuleVerdict v = T.Eval(rs, T.Tcp(), logs: logs);
        Assert.Equal(3, v.LogCount);
        Assert.Equal([0, 1], logs.ToArray());
        Assert.Equal(3, T.Eval(rs, T.Tcp()).LogCount);
    }

    [Fact]
    public void Evaluate_RuleWithoutTarget_CountsAndContinues()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp\n-A INPUT -j DROP");
        TestPacket p = T.Tcp(payload: 10);
        Assert.Equal(Verdict.Drop, T.Eval(rs, p).Verdict);
        Assert.Equal(new PacketCounters(1, 50), rs.GetCounters(0));
        Assert.Equal(RuleTarget.None, rs.Rules[0].Target);
    }

    [Fact]
    public void Evaluate_Counters_CountMatchedRulesAndPolicies()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp -j LOG\n-A INPUT -p tcp -j ACCEPT\n-A INPUT -p icmp -j REJECT", input: "DROP");
        TestPacket tcp = T.Tcp(payload: 60), udp = T.Udp(payload: 2);
        for (int i = 0; i < 3; i++)
            T.Eval(rs, tcp);
        T.Eval(rs, udp);
        T.Eval(rs, udp);
        Assert.Equal(new PacketCounters(3, 3 * 100), rs.GetCounters(0));
        Assert.Equal(new PacketCounters(3, 3 * 100), rs.GetCounters(1));
        Assert.Equal(new PacketCounters(0, 0), rs.GetCounters(2));
        Assert.Equal(new PacketCounters(2, 2 * 30), rs.GetPolicyCounters(Hook.Input));
        Assert.Equal(new PacketCounters(0, 0), rs.GetPolicyCounters(Hook.Output));
        rs.ZeroCounters();
        Assert.Equal(new PacketCounters(0, 0), rs.GetCounters(0));
        Assert.Equal(new PacketCounters(0, 0), rs.GetPolicyCounters(Hook.Input));
    }

    [Fact]
    public void Evaluate_ExplicitLength_IsWhatBytesCount()
    {
        Ruleset rs = T.Table("-A INPUT -j ACCEPT");
        TestPacket p = T.Tcp();
        var facts = new PacketFacts(Hook.Input, ref p.Parsed, p.Bytes, p.Result) { State = CtState.New, Length = 1500 };
        rs.Evaluate(facts);
        Assert.Equal(new PacketCounters(1, 1500), rs.GetCounters(0));
    }

    [Fact]
    public void Load_CountersInFile_SeedTheCounters()
    {
        Ruleset rs = T.Load("*filter\n:INPUT DROP [7:700]\n[3:120] -A INPUT -p tcp -j ACCEPT\n-A INPUT -c 5 50 -j LOG\nCOMMIT\n");
        Assert.Equal(new PacketCounters(3, 120), rs.GetCounters(0));
        Assert.Equal(new PacketCounters(5, 50), rs.GetCounters(1));
        Assert.Equal(new PacketCounters(7, 700), rs.GetPolicyCounters(Hook.Input));
        T.Eval(rs, T.Tcp());
        Assert.Equal(new PacketCounters(4, 160), rs.GetCounters(0));
    }

    [Fact]
    public void Evaluate_ManyThreads_CountersAddUpExactly()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp -j LOG\n-A INPUT -p tcp -j ACCEPT", input: "DROP");
        TestPacket tcp = T.Tcp(), udp = T.Udp();
        const int threads = 8, perThread = 20_000;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, _ =>
        {
            for (int i = 0; i < perThread; i++)
                T.Eval(rs, (i & 1) == 0 ? tcp : udp);
        });
        Assert.Equal(new PacketCounters(threads * perThread / 2, threads * perThread / 2 * 40L), rs.GetCounters(1));
        Assert.Equal(new PacketCounters(threads * perThread / 2, threads * perThread / 2 * 48L), rs.GetPolicyCounters(Hook.Input));
    }

    [Theory]
    [InlineData("-j REJECT", false, RejectWith.IcmpPortUnreachable)]
    [InlineData("-j REJECT", true, RejectWith.Icmp6PortUnreachable)]
    [InlineData("-j REJECT --reject-with port-unreach", true, RejectWith.Icmp6PortUnreachable)]
    [InlineData("-j REJECT --reject-with port-unreach", false, RejectWith.IcmpPortUnreachable)]
    [InlineData("-j REJECT --reject-with icmp-host-prohibited", false, RejectWith.IcmpHostProhibited)]
    [InlineData("-j REJECT --reject-with host-prohib", false, RejectWith.IcmpHostProhibited)]
    [InlineData("-j REJECT --reject-with icmp-net-unreachable", false, RejectWith.IcmpNetUnreachable)]
    [InlineData("-j REJECT --reject-with icmp-host-unreachable", false, RejectWith.IcmpHostUnreachable)]
    [InlineData("-j REJECT --reject-with icmp-proto-unreachable", false, RejectWith.IcmpProtoUnreachable)]
    [InlineData("-j REJECT --reject-with icmp-net-prohibited", false, RejectWith.IcmpNetProhibited)]
    [InlineData("-j REJECT --reject-with ICMP-ADMIN-PROHIBITED", false, RejectWith.IcmpAdminProhibited)]
    [InlineData("-j REJECT --reject-with icmp6-no-route", true, RejectWith.Icmp6NoRoute)]
    [InlineData("-j REJECT --reject-with icmp6-adm-prohibited", true, RejectWith.Icmp6AdmProhibited)]
    [InlineData("-j REJECT --reject-with icmp6-addr-unreachable", true, RejectWith.Icmp6AddrUnreachable)]
    [InlineData("-j REJECT --reject-with icmp6-port-unreachable", true, RejectWith.Icmp6PortUnreachable)]
    [InlineData("-p tcp -j REJECT --reject-with tcp-reset", false, RejectWith.TcpReset)]
    [InlineData("-p tcp -j REJECT --reject-with tcp-reset", true, RejectWith.TcpReset)]
    [InlineData("-p tcp -j REJECT --reject-with tcp-rst", true, RejectWith.TcpReset)]
    public void Evaluate_Reject_ResolvesTheKindForThePacketsFamily(string rule, bool v6, RejectWith expected)
    {
        Ruleset rs = T.Table($"-A INPUT {rule}");
        RuleVerdict v = T.Eval(rs, T.Tcp(v6: v6));
        Assert.Equal(Verdict.Reject, v.Verdict);
        Assert.Equal(expected, v.RejectWith);
    }

    [Fact]
    public void Evaluate_FamilySpecificRejectInTwoFamilyRule_NarrowsTheRule()
    {
        // iptables would never see the IPv6 packet; in a shared file the IPv4-only kind makes the rule IPv4-only.
        Ruleset rs = T.Table("-A INPUT -j REJECT --reject-with icmp-host-prohibited", input: "DROP");
        Assert.Equal(RuleFamily.IPv4, rs.Rules[0].Family);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp(v6: true)).Verdict);
    }

    [Fact]
    public void Evaluate_TruncatedTcpHeaderWithPortMatch_HotDrops()
    {
        // The IP header says 30 bytes: 10 of TCP. -p alone matches; --dport must read the header and cannot.
        byte[] bytes = T.Tcp().Bytes[..30];
        bytes[3] = 30;
        PacketBuilder.WriteIpv4HeaderChecksum(bytes);
        var p = new TestPacket(bytes);
        Assert.Equal(Verdict.Accept, T.Eval(T.Table("-A INPUT -p tcp -j ACCEPT", input: "DROP"), p).Verdict);
        RuleVerdict v = T.Eval(T.Table("-A INPUT -p tcp --dport 22 -j ACCEPT"), p);
        Assert.Equal(Verdict.Drop, v.Verdict);
        Assert.Equal(VerdictReason.HotDrop, v.Reason);
        // multiport reads only the 4 bytes of ports: 10 are enough, 2 are not.
        Assert.Equal(VerdictReason.Policy, T.Eval(T.Table("-A INPUT -p tcp -m multiport --dports 22 -j ACCEPT"), p).Reason);
        byte[] tiny = T.Tcp().Bytes[..22];
        tiny[3] = 22;
        Assert.Equal(VerdictReason.HotDrop, T.Eval(T.Table("-A INPUT -p tcp -m multiport --dports 22 -j ACCEPT"), new TestPacket(tiny)).Reason);
    }

    [Fact]
    public void Evaluate_TruncatedUdpAndIcmp_HotDrop()
    {
        byte[] udp = T.Udp().Bytes[..24];
        udp[3] = 24;
        byte[] icmp = T.Icmp().Bytes[..26];
        icmp[3] = 26;
        Assert.Equal(VerdictReason.HotDrop, T.Eval(T.Table("-A INPUT -p udp --sport 1 -j ACCEPT"), new TestPacket(udp)).Reason);
        Assert.Equal(VerdictReason.HotDrop, T.Eval(T.Table("-A INPUT -p icmp --icmp-type any -j ACCEPT"), new TestPacket(icmp)).Reason);
    }

    [Fact]
    public void Evaluate_TcpFragmentAtOffsetOne_HotDrops()
    {
        // tcp_mt: a fragment at offset 8 bytes could overwrite the TCP flags; the kernel drops it.
        TestPacket at8 = MatchTests.Fragment(T.Tcp(), 8, more: false);
        TestPacket at16 = MatchTests.Fragment(T.Tcp(), 16, more: false);
        Ruleset rs = T.Table("-A INPUT -p tcp --syn -j DROP");
        Assert.Equal(VerdictReason.HotDrop, T.Eval(rs, at8).Reason);
        Assert.Equal(VerdictReason.Policy, T.Eval(rs, at16).Reason);
    }

    [Fact]
    public void Evaluate_PacketConntrackDropped_NeverReachesTheRules()
    {
        Ruleset rs = T.Table("-A INPUT -j ACCEPT");
        RuleVerdict v = T.Eval(rs, T.Tcp(), state: CtState.Dropped);
        Assert.Equal(Verdict.Drop, v.Verdict);
        Assert.Equal(VerdictReason.NotFiltered, v.Reason);
        Assert.Equal(new PacketCounters(0, 0), rs.GetCounters(0));
    }

    [Fact]
    public void Evaluate_HookOutOfRange_DropsWithoutThrowing()
    {
        Ruleset rs = T.Table("-A INPUT -j ACCEPT");
        TestPacket p = T.Tcp();
        var facts = new PacketFacts((Hook)9, ref p.Parsed, p.Bytes, p.Result) { State = CtState.New };
        Assert.Equal(VerdictReason.NotFiltered, rs.Evaluate(facts).Reason);
    }

    [Fact]
    public void Evaluate_UnparseableIpHeader_IsNotFiltered()
    {
        Ruleset rs = T.Table("-A INPUT -j ACCEPT");
        Assert.Equal(VerdictReason.NotFiltered, T.Eval(rs, new TestPacket([0x45, 0, 0])).Reason);
        Assert.Equal(VerdictReason.NotFiltered, T.Eval(rs, new TestPacket([0x75, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])).Reason);
    }

    [Fact]
    public void Load_InsertNewChainAndPolicyCommands_WorkAsInIptablesRestore()
    {
        Ruleset rs = T.Load("*filter\n-P INPUT DROP\n-N U\n-A INPUT -j U\n-I INPUT -p udp -j ACCEPT\n-I INPUT 2 -p icmp -j ACCEPT\n-A U -p tcp -j REJECT\nCOMMIT\n");
        Assert.Equal(["-p udp -j ACCEPT", "-p icmp -j ACCEPT", "-j U"], rs.Rules.Where(r => r.Chain == "INPUT").Select(r => r.Text));
        Assert.Equal(Verdict.Drop, rs.Policy(Hook.Input));
        Assert.Equal(Verdict.Accept, rs.Policy(Hook.Output));
        Assert.Equal(Verdict.Reject, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Generic(false, IpProto.Gre)).Verdict);
    }

    [Fact]
    public void Load_UndeclaredBuiltins_DefaultToAccept()
    {
        Ruleset rs = T.Load("*filter\n-A FORWARD -j DROP\nCOMMIT\n");
        Assert.Equal(Verdict.Accept, T.Eval(rs, T.Tcp()).Verdict);
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp(), Hook.Forward).Verdict);
        Assert.Equal(["INPUT", "FORWARD", "OUTPUT"], rs.Chains.Select(c => c.Name));
    }

    [Fact]
    public void Load_JumpBeforeChainDeclaration_IsResolved()
    {
        Ruleset rs = T.Load("*filter\n-A INPUT -j LATER\n:LATER - [0:0]\n-A LATER -j DROP\nCOMMIT\n");
        Assert.Equal(Verdict.Drop, T.Eval(rs, T.Tcp()).Verdict);
    }

    [Fact]
    public void Load_AddressList_ExpandsToOneRulePerPair()
    {
        Ruleset rs = T.Table("-A INPUT -s 10.0.0.1,10.0.0.2 -d 192.0.2.1,192.0.2.2 -j DROP");
        Assert.Equal(
            ["-s 10.0.0.1 -d 192.0.2.1 -j DROP", "-s 10.0.0.1 -d 192.0.2.2 -j DROP", "-s 10.0.0.2 -d 192.0.2.1 -j DROP", "-s 10.0.0.2 -d 192.0.2.2 -j DROP"],
            rs.Rules.Select(r => r.Text));
        RuleVerdict v = T.Eval(rs, T.Tcp(src: T.Addr("10.0.0.2"), dst: T.Addr("192.0.2.1")));
        Assert.Equal(2, v.Rule);
    }

    [Fact]
    public void RuleInfo_DescribesTheRule()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp -m comment --comment \"web \\\"front\\\"\" -j LOG --log-prefix \"web: \" --log-level info --log-tcp-sequence --log-tcp-options --log-ip-options\n-A INPUT -j U\n-A U -g V",
            chains: ":U - [0:0]\n:V - [0:0]\n");
        RuleInfo log = rs.Rules[0];
        Assert.Equal("INPUT", log.Chain);
        Assert.Equal(5 + 2, log.Line);
        Assert.Equal(RuleTarget.Log, log.Target);
        Assert.Equal("web \"front\"", log.Comment);
        Assert.Equal(new LogOptions { Prefix = "web: ", Level = 6, Flags = LogFlags.TcpSequence | LogFlags.TcpOptions | LogFlags.IpOptions }, log.Log);
        Assert.Equal("-p tcp -m comment --comment \"web \\\"front\\\"\" -j LOG --log-prefix \"web: \" --log-level info --log-tcp-sequence --log-tcp-options --log-ip-options", log.Text);
        Assert.Equal((RuleTarget.Jump, "U"), (rs.Rules[1].Target, rs.Rules[1].TargetChain));
        Assert.Equal((RuleTarget.Goto, "V"), (rs.Rules[2].Target, rs.Rules[2].TargetChain));
        ChainInfo u = rs.Chains.Single(c => c.Name == "U");
        Assert.Equal((2, 1, (Verdict?)null, (Hook?)null), (u.FirstRule, u.RuleCount, u.Policy, u.Builtin));
    }

    [Fact]
    public void Load_LongLogPrefix_IsTruncatedLikeIptablesWithAWarning()
    {
        Ruleset rs = T.Table("-A INPUT -j LOG --log-prefix \"[iptables] INPUT ESTABLISHED: \"");
        Assert.Equal("[iptables] INPUT ESTABLISHED:", rs.Rules[0].Log!.Prefix);
        RuleError w = Assert.Single(rs.Warnings);
        Assert.Equal("test.rules:5:30: log prefix is 30 characters; truncated to 29 as iptables does: \"[iptables] INPUT ESTABLISHED:\"", w.ToString());
    }

    [Fact]
    public void Save_OutputLoadsBackToTheSameRulesAndCounters()
    {
        Ruleset rs = T.Load(File.ReadAllText(Path.Combine(T.RulesDirectory(), "gateway.rules")), "gateway.rules");
        T.Eval(rs, T.Tcp(dport: 22), state: CtState.New, inIf: "eth1");
        string saved = rs.Save(withCounters: true);
        Ruleset again = T.Load(saved, "saved.rules");
        Assert.Equal(rs.Rules.Select(r => r.ToString()), again.Rules.Select(r => r.ToString()));
        Assert.Equal(rs.Rules.Select(r => rs.GetCounters(r.Index)), again.Rules.Select(r => again.GetCounters(r.Index)));
        Assert.Equal(rs.Chains.Select(c => (c.Name, c.Policy)), again.Chains.Select(c => (c.Name, c.Policy)));
        Assert.Contains("[1:40] -A IN_NEW -i eth1 -p tcp -m tcp --dport 22 -m comment --comment \"ssh from the LAN only\" -j ACCEPT\n", saved, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_QuotingAsIptablesSaveWritesIt_RoundTrips()
    {
        Ruleset rs = T.Table("-A INPUT -m comment --comment \"a b\\\\c \\\"q\\\" 'x'\" -m comment --comment plain -m comment --comment \"\" -j ACCEPT");
        Assert.Equal("a b\\c \"q\" 'x'", rs.Rules[0].Comment);
        Ruleset again = T.Load(rs.Save());
        Assert.Equal(rs.Rules[0].Text, again.Rules[0].Text);
        Assert.Equal(rs.Rules[0].Comment, again.Rules[0].Comment);
    }
}
