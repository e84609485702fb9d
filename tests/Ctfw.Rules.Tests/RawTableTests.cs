using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>
/// The `*raw` table: what loads and what is refused (with file:line:col), how PREROUTING and OUTPUT
/// pick a packet's helper (xt_CT: CT continues, the first template stays), and the filter table's
/// `-m helper` (xt_helper: the master's helper).
/// </summary>
public class RawTableTests
{
    private const string Helpers = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
        -A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
        -A OUTPUT -p tcp -m tcp --dport 2121 -j CT --helper ftp
        COMMIT
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        COMMIT
        """;

    /// <summary>A raw table with <paramref name="body"/> on line 4, then an empty filter table.</summary>
    private static string Raw(string body, string prerouting = "ACCEPT", string chains = "") =>
        $"*raw\n:PREROUTING {prerouting} [0:0]\n:OUTPUT ACCEPT [0:0]\n{chains}{body}\nCOMMIT\n*filter\nCOMMIT\n";

    private static string RawError(string body)
    {
        IReadOnlyList<RuleError> errors = T.Errors(Raw(body));
        return Assert.Single(errors).ToString();
    }

    /// <summary>Column (1-based) of the first occurrence of <paramref name="word"/> in a rule line.</summary>
    private static int Col(string line, string word)
    {
        int i = line.IndexOf(word, StringComparison.Ordinal);
        Assert.True(i >= 0, word);
        return i + 1;
    }

    private static RawVerdict Eval(RawTable raw, TestPacket p, Hook hook = Hook.PreRouting, string inIf = "eth0", string outIf = "eth1")
    {
        var facts = new PacketFacts(hook, ref p.Parsed, p.Bytes, p.Result)
        {
            In = hook == Hook.Output ? IfName.None : IfName.Create(inIf),
            Out = hook == Hook.Output ? IfName.Create(outIf) : IfName.None,
        };
        return raw.Evaluate(facts);
    }

    // ---- loading ----

    [Fact]
    public void Load_RawAndFilter_BothTablesLoadWithTheirOwnChains()
    {
        Ruleset rs = T.Load(Helpers);
        RawTable raw = Assert.IsType<RawTable>(rs.Raw);
        Assert.Equal(["PREROUTING", "OUTPUT"], raw.Chains.Select(c => c.Name));
        Assert.All(raw.Chains, c => Assert.Equal(RuleTable.Raw, c.Table));
        Assert.Equal([Hook.PreRouting, Hook.Output], raw.Chains.Select(c => c.Builtin!.Value));
        Assert.Equal(3, raw.Rules.Count);
        Assert.Equal([CtHelper.Ftp, CtHelper.Tftp, CtHelper.Ftp], raw.Rules.Select(r => r.Helper));
        Assert.All(raw.Rules, r => Assert.Equal(RuleTarget.Ct, r.Target));
        Assert.Equal([CtHelper.Ftp, CtHelper.Tftp], rs.Helpers);
        Assert.False(raw.PassThrough);
        Assert.Single(rs.Rules);
        Assert.Equal(["INPUT", "FORWARD", "OUTPUT"], rs.Chains.Select(c => c.Name));
        Assert.Equal("-t raw -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp", raw.Rules[0].ToString());
    }

    [Fact]
    public void Load_RawAfterFilter_LoadsTheSame()
    {
        string text = "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n*raw\n-A PREROUTING -p udp --dport 69 -j CT --helper tftp\nCOMMIT\n";
        Ruleset rs = T.Load(text);
        Assert.Equal([CtHelper.Tftp], rs.Helpers);
        Assert.Equal(Verdict.Drop, rs.Policy(Hook.Forward));
    }

    [Fact]
    public void Load_FilterOnly_HasNoRawTableAndNoHelpers()
    {
        Ruleset rs = T.Table("-A INPUT -j ACCEPT");
        Assert.Null(rs.Raw);
        Assert.Empty(rs.Helpers);
        Assert.DoesNotContain("Table:", RuleListing.Format(rs), StringComparison.Ordinal);
        Assert.DoesNotContain("*raw", rs.Save(), StringComparison.Ordinal);
    }

    [Fact]
    public void Load_EmptyRawTable_PassesThrough()
    {
        Ruleset rs = T.Load(Raw("-N UNUSED"));
        Assert.True(rs.Raw!.PassThrough);
        Assert.Empty(rs.Helpers);
    }

    [Fact]
    public void Load_RawPolicyDrop_IsAcceptedAsIptablesDoes()
    {
        Ruleset rs = T.Load(Raw("-A PREROUTING -i lo -j ACCEPT", prerouting: "DROP"));
        Assert.Equal(Verdict.Drop, rs.Raw!.Policy(Hook.PreRouting));
        Assert.Equal(Verdict.Accept, rs.Raw.Policy(Hook.Output));
        Assert.False(rs.Raw.PassThrough);
        RawVerdict v = Eval(rs.Raw, T.Tcp());
        Assert.Equal((Verdict.Drop, VerdictReason.Policy, -1), (v.Verdict, v.Reason, v.Rule));
        Assert.Equal(Verdict.Accept, Eval(rs.Raw, T.Tcp(), inIf: "lo").Verdict);
    }

    [Fact]
    public void Load_RawWithoutFilter_AsksForAFilterTable()
    {
        IReadOnlyList<RuleError> errors = T.Errors("*raw\n-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\nCOMMIT\n");
        Assert.Equal("rules.v4:1:1: no '*filter' table; a file with '*raw' needs one too (an empty '*filter' with COMMIT accepts everything)",
            Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_RawTwice_IsRejected()
    {
        IReadOnlyList<RuleError> errors = T.Errors("*raw\nCOMMIT\n*raw\nCOMMIT\n*filter\nCOMMIT\n");
        Assert.Equal("rules.v4:3:1: table 'raw' appears twice (first at line 1)", Assert.Single(errors).ToString());
    }

    [Theory]
    [InlineData("-A PREROUTING -m conntrack --ctstate NEW -j DROP", "conntrack")]
    [InlineData("-A PREROUTING -m state --state INVALID -j DROP", "state")]
    [InlineData("-A OUTPUT -m helper --helper ftp -j DROP", "helper")]
    public void Load_ConntrackMatchInRaw_SaysRawRunsBeforeConntrack(string rule, string match) =>
        Assert.Equal($"rules.v4:4:{Col(rule, match)}: match '{match}' cannot be used in the raw table: raw runs before conntrack, so no packet has a "
            + "connection (or a state, or a helper) there yet; match it in '*filter'", RawError(rule));

    [Theory]
    [InlineData("-A PREROUTING -p tcp -j CT --helper sip", "sip", "unknown helper 'sip'; ctfw has ftp, tftp")]
    [InlineData("-A PREROUTING -j CT --helper ftp", "ftp",
        "helper 'ftp' needs '-p tcp' in the rule (the kernel refuses a helper without a protocol, or with a negated one)")]
    [InlineData("-A PREROUTING ! -p tcp -j CT --helper ftp", "ftp",
        "helper 'ftp' needs '-p tcp' in the rule (the kernel refuses a helper without a protocol, or with a negated one)")]
    [InlineData("-A PREROUTING -p tcp --dport 69 -j CT --helper tftp", "tftp",
        "helper 'tftp' serves udp only; this rule is for protocol 6 (the kernel has no 'tftp' helper for it)")]
    [InlineData("-A PREROUTING -p udp -j CT --helper ftp", "ftp",
        "helper 'ftp' serves tcp only; this rule is for protocol 17 (the kernel has no 'ftp' helper for it)")]
    [InlineData("-A PREROUTING -p tcp -j CT", "CT", "'-j CT' needs '--helper ftp' or '--helper tftp' (ctfw's CT only assigns helpers)")]
    [InlineData("-A PREROUTING -p tcp -j CT --notrack", "--notrack",
        "CT option '--notrack' is not supported; ctfw's CT takes only --helper ftp or --helper tftp")]
    [InlineData("-A PREROUTING -p tcp -j CT --helper ftp --zone 3", "--zone",
        "CT option '--zone' is not supported; ctfw's CT takes only --helper ftp or --helper tftp")]
    [InlineData("-A PREROUTING -j NOTRACK", "NOTRACK",
        "target 'NOTRACK' is not supported (ctfw tracks every packet); expected one of ACCEPT, DROP, RETURN, CT --helper ftp|tftp or a user-defined chain")]
    [InlineData("-A PREROUTING -j REJECT", "REJECT",
        "target 'REJECT' cannot be used in the raw table; expected one of ACCEPT, DROP, RETURN, CT --helper ftp|tftp or a user-defined chain (REJECT belongs in '*filter')")]
    [InlineData("-A OUTPUT -j LOG", "LOG",
        "target 'LOG' cannot be used in the raw table; expected one of ACCEPT, DROP, RETURN, CT --helper ftp|tftp or a user-defined chain (LOG belongs in '*filter')")]
    [InlineData("-A PREROUTING -j MASQUERADE", "MASQUERADE",
        "unknown target 'MASQUERADE'; expected one of ACCEPT, DROP, RETURN, CT --helper ftp|tftp or a user-defined chain")]
    [InlineData("-A PREROUTING -o eth0 -j DROP", "-o", "'-o' cannot be used in chain PREROUTING; packets are not routed yet there")]
    [InlineData("-A OUTPUT -i eth0 -j DROP", "-i", "'-i' cannot be used in chain OUTPUT; locally generated packets have no input interface")]
    [InlineData("-A INPUT -j DROP", "INPUT", "chain 'INPUT' does not exist; declare it with ':INPUT - [0:0]' before its rules")]
    [InlineData("-P FORWARD DROP", "FORWARD", "-P needs a built-in chain (PREROUTING or OUTPUT), not 'FORWARD'")]
    [InlineData("-A PREROUTING --helper ftp", "--helper", "option '--helper' needs '-j CT' before it")]
    public void Load_BadRawRule_OneLineErrorAtTheWord(string rule, string word, string message) =>
        Assert.Equal($"rules.v4:4:{Col(rule, word)}: {message}", RawError(rule));

    [Theory]
    [InlineData("-A FORWARD -p tcp -j CT --helper ftp", "CT")]
    [InlineData("-A FORWARD -j NOTRACK", "NOTRACK")]
    public void Load_CtInFilter_SaysItBelongsInRaw(string rule, string target) =>
        Assert.Equal($"rules.v4:5:{Col(rule, target)}: target '{target}' belongs in the raw table, not in '*filter'; ctfw's raw table takes "
            + "'-j CT --helper ftp|tftp', e.g. '*raw' ... '-A PREROUTING -p tcp --dport 21 -j CT --helper ftp'", T.TableError(rule));

    [Fact]
    public void Load_HelperMatchWithoutHelperOption_IsRejected()
    {
        const string rule = "-A FORWARD -m helper -j ACCEPT";
        Assert.Equal($"rules.v4:5:{Col(rule, "helper")}: match 'helper' needs '--helper'", T.TableError(rule));
    }

    [Fact]
    public void Load_HelperMatchOfAHelperCtfwLacks_LoadsWithAWarning()
    {
        const string rule = "-A FORWARD -m helper --helper sip -j ACCEPT";
        Ruleset rs = T.Table(rule);
        Assert.Equal($"test.rules:5:{Col(rule, "sip")}: no connection can have helper 'sip': ctfw's helpers are ftp, tftp, so this match never matches",
            Assert.Single(rs.Warnings).ToString());
    }

    // ---- raw evaluation ----

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Evaluate_HelperByPortAndProtocol_AsTheCtRulesSay(bool v6)
    {
        RawTable raw = T.Load(Helpers).Raw!;
        Assert.Equal(CtHelper.Ftp, Eval(raw, T.Tcp(v6, dport: 21)).Helper);
        Assert.Equal(CtHelper.None, Eval(raw, T.Tcp(v6, dport: 80)).Helper);
        Assert.Equal(CtHelper.Tftp, Eval(raw, T.Udp(v6, dport: 69)).Helper);
        Assert.Equal(CtHelper.None, Eval(raw, T.Udp(v6, dport: 21)).Helper);
        Assert.Equal(CtHelper.None, Eval(raw, T.Tcp(v6, dport: 69)).Helper);
        RawVerdict v = Eval(raw, T.Tcp(v6, dport: 21));
        Assert.Equal((Verdict.Accept, VerdictReason.Policy, -1), (v.Verdict, v.Reason, v.Rule));
    }

    [Fact]
    public void Evaluate_OutputHook_RunsRawOutputOnly()
    {
        RawTable raw = T.Load(Helpers).Raw!;
        Assert.Equal(CtHelper.None, Eval(raw, T.Tcp(dport: 21), Hook.Output).Helper);
        Assert.Equal(CtHelper.Ftp, Eval(raw, T.Tcp(dport: 2121), Hook.Output).Helper);
        Assert.Equal(CtHelper.None, Eval(raw, T.Tcp(dport: 2121), Hook.PreRouting).Helper);
        Assert.Equal(1, raw.GetCounters(2).Packets);
        Assert.Equal(0, raw.GetCounters(0).Packets);
        Assert.Equal(2, raw.GetPolicyCounters(Hook.Output).Packets);
        Assert.Equal(1, raw.GetPolicyCounters(Hook.PreRouting).Packets);
    }

    [Fact]
    public void Evaluate_SeveralCtRules_FirstTemplateStaysAndEveryOneCounts()
    {
        // ftp serves tcp, tftp udp, so one packet can only meet CTs of one helper; what xt_CT's
        // "previously seen" rule leaves visible is that later CTs still count and change nothing.
        RawTable raw = T.Load(Raw("-A PREROUTING -p tcp -j CT --helper ftp\n-A PREROUTING -p tcp --dport 21 -j CT --helper ftp\n-A PREROUTING -p udp -j CT --helper tftp")).Raw!;
        RawVerdict v = Eval(raw, T.Tcp(dport: 21));
        Assert.Equal(CtHelper.Ftp, v.Helper);
        Assert.Equal([1L, 1L, 0L], raw.Rules.Select(r => raw.GetCounters(r.Index).Packets));
        Assert.Equal(1, raw.GetPolicyCounters(Hook.PreRouting).Packets);
    }

    [Fact]
    public void Evaluate_CtThenDrop_DropsWithoutHelper()
    {
        RawTable raw = T.Load(Raw("-A PREROUTING -p tcp -j CT --helper ftp\n-A PREROUTING -s 192.0.2.10 -j DROP")).Raw!;
        RawVerdict v = Eval(raw, T.Tcp(dport: 21));
        Assert.Equal((Verdict.Drop, CtHelper.None, 1, VerdictReason.Rule), (v.Verdict, v.Helper, v.Rule, v.Reason));
        Assert.Equal(CtHelper.Ftp, Eval(raw, T.Tcp(dport: 21, src: T.Addr("192.0.2.11"))).Helper);
    }

    [Fact]
    public void Evaluate_AcceptBeforeCt_EndsTheTableWithoutHelper()
    {
        RawTable raw = T.Load(Raw("-A PREROUTING -i lo -j ACCEPT\n-A PREROUTING -p tcp --dport 21 -j CT --helper ftp")).Raw!;
        RawVerdict v = Eval(raw, T.Tcp(dport: 21), inIf: "lo");
        Assert.Equal((Verdict.Accept, CtHelper.None, 0, VerdictReason.Rule), (v.Verdict, v.Helper, v.Rule, v.Reason));
        Assert.Equal(CtHelper.Ftp, Eval(raw, T.Tcp(dport: 21)).Helper);
    }

    [Fact]
    public void Evaluate_CtInAUserChain_KeptAcrossReturnAndGoto()
    {
        const string chains = ":HELPERS - [0:0]\n:TFTP - [0:0]\n";
        const string body = "-A PREROUTING -j HELPERS\n-A PREROUTING -p tcp --dport 21 -j DROP\n"
            + "-A HELPERS -p tcp --dport 2121 -j CT --helper ftp\n-A HELPERS -p tcp --dport 2121 -j RETURN\n-A HELPERS -p udp -g TFTP\n"
            + "-A TFTP -p udp --dport 69 -j CT --helper tftp";
        RawTable raw = T.Load(Raw(body, chains: chains)).Raw!;
        // CT, RETURN to PREROUTING, on to its policy: the helper stays.
        RawVerdict ftp = Eval(raw, T.Tcp(dport: 2121));
        Assert.Equal((Verdict.Accept, CtHelper.Ftp, VerdictReason.Policy), (ftp.Verdict, ftp.Helper, ftp.Reason));
        // -g TFTP: its end returns past PREROUTING's -j HELPERS, as the kernel's goto does.
        RawVerdict tftp = Eval(raw, T.Udp(dport: 69));
        Assert.Equal((Verdict.Accept, CtHelper.Tftp, VerdictReason.Policy), (tftp.Verdict, tftp.Helper, tftp.Reason));
        // Back in PREROUTING after HELPERS' end: its DROP still applies.
        Assert.Equal(Verdict.Drop, Eval(raw, T.Tcp(dport: 21)).Verdict);
    }

    [Fact]
    public void Evaluate_TruncatedTcpHeader_HotDrops()
    {
        RawTable raw = T.Load(Helpers).Raw!;
        RawVerdict v = Eval(raw, new TestPacket(T.Tcp(dport: 21).Bytes[..30]));
        Assert.Equal((Verdict.Drop, VerdictReason.HotDrop, 0), (v.Verdict, v.Reason, v.Rule));
    }

    [Fact]
    public void Evaluate_FilterHook_IsNotARawChain()
    {
        RawTable raw = T.Load(Raw("-A PREROUTING -j DROP")).Raw!;
        RawVerdict v = Eval(raw, T.Tcp(), Hook.Forward);
        Assert.Equal((Verdict.Accept, VerdictReason.NotFiltered), (v.Verdict, v.Reason));
        Assert.Throws<ArgumentOutOfRangeException>(() => raw.Policy(Hook.Input));
    }

    [Fact]
    public void Evaluate_RawTableAfterWarmUp_AllocatesZeroBytes()
    {
        RawTable raw = T.Load(Raw("-A PREROUTING -j HELPERS\n-A HELPERS -p tcp -m multiport --dports 21,2121 -j CT --helper ftp\n"
            + "-A HELPERS -p udp --dport 69 -j CT --helper tftp\n-A PREROUTING -s 10.0.0.0/8 -j DROP", chains: ":HELPERS - [0:0]\n")).Raw!;
        TestPacket[] packets = [T.Tcp(dport: 21), T.Udp(dport: 69), T.Tcp(v6: true, dport: 2121), T.Icmp(), T.Udp(src: T.Addr("10.1.2.3"))];
        int sink = 0;
        for (int round = 0; round < 2; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10_000; i++)
            {
                RawVerdict v = Eval(raw, packets[i % packets.Length], (i & 8) == 0 ? Hook.PreRouting : Hook.Output);
                sink += (int)v.Verdict + (int)v.Helper;
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round == 1)
                Assert.Equal(0, allocated);
        }
        Assert.True(sink > 0);
    }

    // ---- -m helper in the filter table ----

    private static RuleVerdict EvalHelper(Ruleset rs, CtHelper masterHelper, CtState state = CtState.Related)
    {
        TestPacket p = T.Tcp(dport: 40001);
        var facts = new PacketFacts(Hook.Forward, ref p.Parsed, p.Bytes, p.Result)
        {
            State = state,
            Direction = state is CtState.Invalid or CtState.Untracked ? CtDirection.None : CtDirection.Original,
            MasterHelper = masterHelper,
        };
        return rs.Evaluate(facts);
    }

    [Theory]
    [InlineData("--helper ftp", CtHelper.Ftp, CtState.Related, "Accept")]
    [InlineData("--helper ftp", CtHelper.Ftp, CtState.Established, "Accept")]
    [InlineData("--helper ftp", CtHelper.Tftp, CtState.Related, "Drop")]
    [InlineData("--helper ftp", CtHelper.None, CtState.New, "Drop")]
    [InlineData("--helper tftp", CtHelper.Tftp, CtState.Related, "Accept")]
    [InlineData("--helper \"\"", CtHelper.Tftp, CtState.Related, "Accept")]
    [InlineData("--helper \"\"", CtHelper.None, CtState.New, "Drop")]
    // xt_helper compares strlen(helper) characters: a name that starts with the helper's matches it.
    [InlineData("--helper ftp-21", CtHelper.Ftp, CtState.Related, "Accept")]
    [InlineData("--helper ft", CtHelper.Ftp, CtState.Related, "Drop")]
    [InlineData("! --helper ftp", CtHelper.Tftp, CtState.Related, "Accept")]
    [InlineData("! --helper ftp", CtHelper.Ftp, CtState.Related, "Drop")]
    // No master (or no entry at all): the inversion alone decides.
    [InlineData("! --helper ftp", CtHelper.None, CtState.New, "Accept")]
    [InlineData("! --helper ftp", CtHelper.None, CtState.Invalid, "Accept")]
    [InlineData("--helper ftp", CtHelper.Ftp, CtState.Invalid, "Drop")]
    public void HelperMatch_ReadsTheMastersHelperAsXtHelper(string option, CtHelper masterHelper, CtState state, string expected)
    {
        Ruleset rs = T.Table($"-A FORWARD -m helper {option} -j ACCEPT", forward: "DROP");
        Assert.Equal(expected, T.V(EvalHelper(rs, masterHelper, state)));
    }

    // ---- listing, save, counters ----

    [Fact]
    public void Listing_WithRaw_ShowsBothTablesUnderTheirNames()
    {
        Ruleset rs = T.Load(Helpers);
        string listing = RuleListing.Format(rs, verbose: false);
        Assert.StartsWith("Table: filter\nChain INPUT (policy ACCEPT)\n", listing, StringComparison.Ordinal);
        int raw = listing.IndexOf("\nTable: raw\nChain PREROUTING (policy ACCEPT)\n", StringComparison.Ordinal);
        Assert.True(raw > 0, listing);
        Assert.Contains("CT         tcp  --  any                  any                  dport 21 helper ftp\n", listing[raw..], StringComparison.Ordinal);
        Assert.Contains("Chain OUTPUT (policy ACCEPT)\n", listing[raw..], StringComparison.Ordinal);
    }

    [Fact]
    public void Save_WithRaw_ReloadsToTheSameRuleset()
    {
        Ruleset rs = T.Load(Helpers);
        string saved = rs.Save();
        Assert.StartsWith("# ctfw ruleset from test.rules\n*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n", saved, StringComparison.Ordinal);
        Ruleset again = T.Load(saved);
        Assert.Equal(saved.Split('\n').Skip(1), again.Save().Split('\n').Skip(1));
        Assert.Equal(rs.Helpers, again.Helpers);
    }

    [Fact]
    public void CarryCounters_RawRulesCarryWithinTheRawTable()
    {
        Ruleset before = T.Load(Helpers);
        Eval(before.Raw!, T.Tcp(dport: 21));
        Eval(before.Raw!, T.Tcp(dport: 21));
        Eval(before.Raw!, T.Tcp(dport: 2121), Hook.Output);
        // The reload keeps PREROUTING's ftp rule and OUTPUT's, drops the tftp one.
        Ruleset after = T.Load(Helpers.Replace("-A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp\n", "", StringComparison.Ordinal));
        int carried = after.CarryCountersFrom(before);
        Assert.Equal(2 + 1, carried); // two raw rules and the filter's one
        Assert.Equal(2, after.Raw!.GetCounters(0).Packets);
        Assert.Equal(1, after.Raw.GetCounters(1).Packets);
        Assert.Equal(2, after.Raw.GetPolicyCounters(Hook.PreRouting).Packets);
        Assert.Equal(0, after.GetPolicyCounters(Hook.Output).Packets);
        after.ZeroCounters();
        Assert.Equal(0, after.Raw.GetCounters(0).Packets);
        Assert.Equal(0, after.Raw.GetPolicyCounters(Hook.PreRouting).Packets);
    }
}
