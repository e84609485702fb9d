using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

public sealed class RuleListingTests
{
    private static Ruleset Rules() => T.Table(
        """
        -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -4 -A INPUT -s 10.0.0.0/8 -i eth1 -p tcp -m tcp --dport 22 -m comment --comment "ssh from the LAN" -j ACCEPT
        -A INPUT -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
        -A INPUT -j LOGDROP
        -A LOGDROP -j LOG --log-prefix "drop: "
        -A LOGDROP -j DROP
        """, input: "DROP", chains: ":LOGDROP - [0:0]\n");

    [Fact]
    public void Format_FreshRuleset_ListsChainsPoliciesAndRulesLikeIptables()
    {
        string[] lines = RuleListing.Format(Rules()).Split('\n');
        Assert.Equal("Chain INPUT (policy DROP 0 packets, 0 bytes)", lines[0]);
        Assert.Equal(" pkts bytes target     prot opt in     out     source               destination", lines[1]);
        Assert.Equal("    0     0 ACCEPT     all  --  *      *       any                  any                  ctstate RELATED,ESTABLISHED", lines[2]);
        Assert.Equal("    0     0 ACCEPT     tcp  --  eth1   *       10.0.0.0/8           0.0.0.0/0            dport 22 /* ssh from the LAN */", lines[3]);
        Assert.StartsWith("    0     0 REJECT     tcp  --  *      *       any                  any                  dport 113 reject-with tcp-reset", lines[4]);
        Assert.Contains("Chain LOGDROP (1 references)", lines);
        Assert.Contains(lines, l => l.StartsWith("    0     0 LOG        all  --  *      *       any                  any                  log-prefix drop: ", StringComparison.Ordinal));
    }

    [Fact]
    public void Format_AfterEvaluation_CountsRuleAndPolicyHits()
    {
        Ruleset rs = Rules();
        TestPacket ssh = T.Tcp(dport: 22, src: T.Addr("10.1.2.3"));
        for (int i = 0; i < 3; i++)
            T.Eval(rs, ssh, Hook.Input, CtState.New, inIf: "eth1");
        T.Eval(rs, T.Udp(), Hook.Input, CtState.New); // LOG, then DROP in LOGDROP
        string text = RuleListing.Format(rs, exact: true);
        Assert.Contains($"       3 {3 * ssh.Bytes.Length,10} ACCEPT     tcp", text);
        Assert.Contains($"       1 {T.Udp().Bytes.Length,10} DROP", text);
        Assert.Contains("       1 ", text.Split('\n').Single(l => l.Contains(" LOG ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Format_NotVerbose_LeavesOutCountersAndInterfacesLikeIptablesWithoutV()
    {
        Ruleset rs = Rules();
        T.Eval(rs, T.Tcp(dport: 22, src: T.Addr("10.1.2.3")), Hook.Input, CtState.New, inIf: "eth1");
        string[] lines = RuleListing.Format(rs, verbose: false).Split('\n');
        Assert.Equal("Chain INPUT (policy DROP)", lines[0]);
        Assert.Equal("target     prot opt source               destination", lines[1]);
        Assert.Equal("ACCEPT     all  --  any                  any                  ctstate RELATED,ESTABLISHED", lines[2]);
        Assert.Equal("ACCEPT     tcp  --  10.0.0.0/8           0.0.0.0/0            dport 22 /* ssh from the LAN */", lines[3]);
        Assert.Contains("Chain LOGDROP (1 references)", lines);
        Assert.DoesNotContain(lines, l => l.Contains("packets", StringComparison.Ordinal) || l.Contains("eth1", StringComparison.Ordinal));
    }

    [Fact]
    public void Format_LargeCounters_AbbreviatedUnlessExact()
    {
        Ruleset rs = T.Table("[1234567:987654321] -A INPUT -p udp -j ACCEPT");
        string abbreviated = RuleListing.Format(rs).Split('\n')[2];
        string exact = RuleListing.Format(rs, exact: true).Split('\n')[2];
        Assert.StartsWith("1235K  988M ACCEPT     udp", abbreviated);
        Assert.StartsWith(" 1234567  987654321 ACCEPT     udp", exact);
        Assert.Equal("    pkts      bytes target     prot opt in     out     source               destination", RuleListing.Format(rs, exact: true).Split('\n')[1]);
    }

    [Fact]
    public void Format_AfterZeroCounters_ShowsZeroForRulesAndPolicies()
    {
        Ruleset rs = Rules();
        T.Eval(rs, T.Udp(), Hook.Input, CtState.New);
        Assert.Contains("       1 ", RuleListing.Format(rs, exact: true).Split('\n').Single(l => l.Contains(" LOG ", StringComparison.Ordinal)));
        rs.ZeroCounters();
        string text = RuleListing.Format(rs, exact: true);
        List<string> rows = text.Split('\n').Where(l => l.StartsWith("  ", StringComparison.Ordinal) && !l.Contains("pkts", StringComparison.Ordinal)).ToList();
        Assert.Equal(6, rows.Count);
        Assert.All(rows, l => Assert.StartsWith("       0          0 ", l));

        Ruleset policy = T.Table("-A INPUT -p tcp -j ACCEPT", input: "DROP");
        T.Eval(policy, T.Udp(), Hook.Input, CtState.New);
        Assert.StartsWith("Chain INPUT (policy DROP 1 packets, ", RuleListing.Format(policy), StringComparison.Ordinal);
        policy.ZeroCounters();
        Assert.StartsWith("Chain INPUT (policy DROP 0 packets, 0 bytes)", RuleListing.Format(policy), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, "    0")]
    [InlineData(99999, "99999")]
    [InlineData(100000, " 100K")]
    [InlineData(123456789, " 123M")]
    [InlineData(9999499, "9999K")]
    [InlineData(9999500, "  10M")]
    [InlineData(5_000_000_000_000, "5000G")]
    public void Number_AbbreviatesLikeIptablesPrintNum(long n, string expected) =>
        Assert.Equal(expected, RuleListing.Number(n));
}
