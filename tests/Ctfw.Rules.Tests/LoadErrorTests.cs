using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>One test per class of load error, asserting the whole message with its file:line:col.</summary>
public class LoadErrorTests
{
    private const string Supported = "comment, conntrack, helper, icmp, icmp6, mark, multiport, state, tcp, udp";

    [Fact]
    public void Load_UnknownMatch_NamesItAndListsTheSupportedOnes() =>
        Assert.Equal($"rules.v4:5:13: unknown match 'foo'; expected one of {Supported}",
            T.TableError("-A INPUT -m foo -j ACCEPT"));

    [Fact]
    public void Load_RealButUnsupportedMatch_SaysNotSupported() =>
        Assert.Equal($"rules.v4:5:13: match 'limit' is not supported; expected one of {Supported}",
            T.TableError("-A INPUT -m limit --limit 5/s -j ACCEPT"));

    [Theory]
    [InlineData("-A INPUT -s 10.0.0.0/33 -j DROP", "rules.v4:5:13: bad address '10.0.0.0/33': prefix length must be 0..32 for IPv4")]
    [InlineData("-A INPUT -d 2001:db8::/129 -j DROP", "rules.v4:5:13: bad address '2001:db8::/129': prefix length must be 0..128 for IPv6")]
    [InlineData("-A INPUT -s 10.0.0.300 -j DROP", "rules.v4:5:13: bad address '10.0.0.300': '10.0.0.300' is not an IPv4 address (four numbers 0..255)")]
    [InlineData("-A INPUT -s 2001:db8::zz/64 -j DROP", "rules.v4:5:13: bad address '2001:db8::zz/64': '2001:db8::zz' is not an IPv6 address")]
    [InlineData("-A INPUT -s 10.0.0.0/abc -j DROP", "rules.v4:5:13: bad address '10.0.0.0/abc': '/abc' is neither a prefix length 0..32 nor a mask")]
    [InlineData("-A INPUT -s example.com -j DROP", "rules.v4:5:13: bad address 'example.com': host names are not supported (ctfw does no DNS lookups); write an address")]
    public void Load_BadCidr_SaysWhatIsWrongWithTheAddress(string rule, string expected) =>
        Assert.Equal(expected, T.TableError(rule));

    [Theory]
    [InlineData("-A INPUT -p tcp --dport 70000 -j ACCEPT", "rules.v4:5:25: bad port '70000'; expected a number 0..65535")]
    [InlineData("-A INPUT -p tcp --dport 9:3 -j ACCEPT", "rules.v4:5:25: bad port range '9:3'; the first port is greater than the second")]
    [InlineData("-A INPUT -p udp --sport ssh -j ACCEPT", "rules.v4:5:25: bad port 'ssh'; expected a number 0..65535 (service names are not supported)")]
    [InlineData("-A INPUT -p tcp -m multiport --dports 80,90:85 -j ACCEPT", "rules.v4:5:39: bad port range '90:85' in '--dports'; multiport ranges need the first port below the second")]
    [InlineData("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j ACCEPT",
        "rules.v4:5:39: too many ports in '--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16'; multiport takes at most 15 (a range counts as 2)")]
    [InlineData("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:20 -j ACCEPT",
        "rules.v4:5:39: too many ports in '--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15:20'; multiport takes at most 15 (a range counts as 2)")]
    public void Load_BadPortOrRange_IsRejected(string rule, string expected) =>
        Assert.Equal(expected, T.TableError(rule));

    [Fact]
    public void Load_MultiportWithFifteenEntries_IsAccepted()
    {
        T.Table("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14:20 -j ACCEPT");
        T.Table("-A INPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j ACCEPT");
    }

    [Fact]
    public void Load_WordsAfterCommit_AreReported()
    {
        IReadOnlyList<RuleError> errors = T.Errors("*filter\nCOMMIT now\n");
        Assert.Equal("rules.v4:2:8: unexpected 'now' after COMMIT", Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_UnknownTarget_NamesItAndListsTheSupportedOnes() =>
        Assert.Equal("rules.v4:5:13: unknown target 'MASQUERADE'; expected one of ACCEPT, DROP, LOG, REJECT, RETURN or a user-defined chain",
            T.TableError("-A INPUT -j MASQUERADE"));

    [Fact]
    public void Load_JumpToMissingChain_SaysHowToDeclareIt() =>
        Assert.Equal("rules.v4:5:13: jump to missing chain 'SSH_IN'; declare it with ':SSH_IN - [0:0]'",
            T.TableError("-A INPUT -j SSH_IN"));

    [Fact]
    public void Load_GotoMissingChain_IsRejected() =>
        Assert.Equal("rules.v4:5:13: jump to missing chain 'NOPE'; declare it with ':NOPE - [0:0]'",
            T.TableError("-A INPUT -g NOPE"));

    [Fact]
    public void Load_LowerCaseStandardTarget_SuggestsTheTarget() =>
        Assert.Equal("rules.v4:5:13: jump to missing chain 'accept'; did you mean 'ACCEPT'?",
            T.TableError("-A INPUT -j accept"));

    [Fact]
    public void Load_JumpToBuiltinChain_IsRejected() =>
        Assert.Equal("rules.v4:5:13: cannot jump to built-in chain 'OUTPUT'; jumps go to user-defined chains",
            T.TableError("-A INPUT -j OUTPUT"));

    [Fact]
    public void Load_LoopBetweenChains_ShowsTheCycle() =>
        Assert.Equal("rules.v4:9:9: loop between chains: A -> B -> A",
            T.TableError("-A INPUT -j A\n-A A -j B\n-A B -j A", chains: ":A - [0:0]\n:B - [0:0]\n"));

    [Fact]
    public void Load_ChainJumpingToItself_IsALoop() =>
        Assert.Equal("rules.v4:6:9: loop between chains: A -> A",
            T.TableError("-A A -j A", chains: ":A - [0:0]\n"));

    [Fact]
    public void Load_GotoLoop_IsALoopToo() =>
        Assert.Equal("rules.v4:8:9: loop between chains: A -> B -> A",
            T.TableError("-A A -g B\n-A B -g A", chains: ":A - [0:0]\n:B - [0:0]\n"));

    [Fact]
    public void Load_LoopInUnreferencedChains_IsStillALoop() =>
        Assert.Equal("rules.v4:8:9: loop between chains: A -> B -> A",
            T.TableError("-A A -j B\n-A B -j A", chains: ":A - [0:0]\n:B - [0:0]\n"));

    [Theory]
    [InlineData("-A INPUT --dport 22 -j ACCEPT", "rules.v4:5:10: option '--dport' needs '-p tcp' or '-p udp' before it")]
    [InlineData("-A INPUT ! -p tcp --dport 22 -j ACCEPT", "rules.v4:5:19: option '--dport' needs '-p tcp' or '-p udp' before it (not negated)")]
    [InlineData("-A INPUT -p icmp --dport 22 -j ACCEPT", "rules.v4:5:18: option '--dport' needs '-p tcp' or '-p udp' before it")]
    [InlineData("-A INPUT --syn -j ACCEPT", "rules.v4:5:10: option '--syn' needs '-p tcp' before it")]
    [InlineData("-A INPUT --icmp-type 8 -j ACCEPT", "rules.v4:5:10: option '--icmp-type' needs '-p icmp' before it")]
    [InlineData("-A INPUT --icmpv6-type 128 -j ACCEPT", "rules.v4:5:10: option '--icmpv6-type' needs '-p ipv6-icmp' before it")]
    [InlineData("-A INPUT -p tcp --dports 22 -j ACCEPT", "rules.v4:5:17: option '--dports' needs '-m multiport' before it")]
    [InlineData("-A INPUT --state NEW -j ACCEPT", "rules.v4:5:10: option '--state' needs '-m state' before it")]
    [InlineData("-A INPUT --ctstate NEW -j ACCEPT", "rules.v4:5:10: option '--ctstate' needs '-m conntrack' before it")]
    [InlineData("-A INPUT --log-prefix x -j LOG", "rules.v4:5:10: option '--log-prefix' needs '-j LOG' before it")]
    [InlineData("-A INPUT -j DROP --reject-with tcp-reset", "rules.v4:5:18: option '--reject-with' needs '-j REJECT' before it")]
    [InlineData("-A INPUT -m tcp --dport 22 -j ACCEPT", "rules.v4:5:13: match 'tcp' needs '-p tcp' before it")]
    [InlineData("-A INPUT -p udp -m multiport --dports 22 -j ACCEPT", null)]
    [InlineData("-A INPUT -p icmp -m multiport --dports 22 -j ACCEPT", "rules.v4:5:21: match 'multiport' needs '-p tcp', '-p udp', '-p udplite', '-p sctp' or '-p dccp' before it")]
    public void Load_OptionWithoutItsProtocolOrMatch_SaysWhatItNeeds(string rule, string? expected)
    {
        if (expected is null)
            T.Table(rule);
        else
            Assert.Equal(expected, T.TableError(rule));
    }

    [Fact]
    public void Load_RuleBeforeFilterTable_IsRejected()
    {
        IReadOnlyList<RuleError> errors = T.Errors("-A INPUT -j ACCEPT\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n");
        Assert.Equal("rules.v4:1:1: rule outside a table; expected '*filter' first", Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_RuleAfterCommit_IsRejected()
    {
        IReadOnlyList<RuleError> errors = T.Errors("*filter\nCOMMIT\n  -A INPUT -j ACCEPT\n");
        Assert.Equal("rules.v4:3:3: rule after COMMIT; expected '*filter' (or '*raw') to open the table first", Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_MissingCommit_PointsAtTheTable()
    {
        IReadOnlyList<RuleError> errors = T.Errors("# header\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n");
        Assert.Equal("rules.v4:2:1: missing COMMIT: table 'filter' is still open at the end of the file", Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_DuplicateUserChain_NamesTheFirstDeclaration() =>
        Assert.Equal("rules.v4:6:1: duplicate chain 'FOO' (first declared at line 5)",
            T.TableError("", chains: ":FOO - [0:0]\n:FOO - [0:0]\n"));

    [Fact]
    public void Load_DuplicateBuiltinDeclaration_IsRejected() =>
        Assert.Equal("rules.v4:5:1: duplicate chain 'INPUT' (first declared at line 2)",
            T.TableError(":INPUT DROP [0:0]"));

    [Fact]
    public void Load_NewChainCommandForExistingChain_IsADuplicate() =>
        Assert.Equal("rules.v4:6:4: duplicate chain 'FOO' (first declared at line 5)",
            T.TableError("-N FOO", chains: ":FOO - [0:0]\n"));

    [Theory]
    [InlineData("nat")]
    [InlineData("mangle")]
    [InlineData("security")]
    public void Load_OtherTable_SaysOnlyFilterAndRawAreSupported(string table)
    {
        IReadOnlyList<RuleError> errors = T.Errors($"*{table}\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j ACCEPT\nCOMMIT\n*filter\nCOMMIT\n");
        Assert.Equal($"rules.v4:1:1: table '{table}' is not supported; only '*filter' and '*raw' are (ctfw filters packets and assigns conntrack helpers; it does not NAT or mangle)",
            Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_EmptyText_SaysAFilterTableIsExpected()
    {
        IReadOnlyList<RuleError> errors = T.Errors("# nothing\n\n");
        Assert.Equal("rules.v4:1:1: no '*filter' table; expected '*filter', chain declarations (:INPUT ACCEPT [0:0]), rules (-A ...) and COMMIT",
            Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_FilterTableTwice_IsRejected()
    {
        IReadOnlyList<RuleError> errors = T.Errors("*filter\nCOMMIT\n*filter\nCOMMIT\n");
        Assert.Equal("rules.v4:3:1: table 'filter' appears twice (first at line 1)", Assert.Single(errors).ToString());
    }

    [Theory]
    [InlineData("-A INPUT --foo -j ACCEPT", "rules.v4:5:10: unknown option '--foo'")]
    [InlineData("-A INPUT -x -j ACCEPT", "rules.v4:5:10: unknown option '-x'")]
    [InlineData("-A INPUT -p tcp --tcp-option 2 -j ACCEPT", "rules.v4:5:17: option '--tcp-option' is not supported")]
    [InlineData("-A INPUT -j LOG --log-uid", "rules.v4:5:17: option '--log-uid' is not supported")]
    [InlineData("-A INPUT foo -j ACCEPT", "rules.v4:5:10: unexpected 'foo'; expected an option (-p, -s, -d, -i, -o, -m, -j, ...)")]
    [InlineData("-D INPUT -j ACCEPT", "rules.v4:5:1: unsupported command '-D'; expected -A, -I, -N or -P")]
    [InlineData("-A INPUT -p", "rules.v4:5:10: option '-p' needs a value")]
    [InlineData("-A INPUT -p foo", "rules.v4:5:13: unknown protocol 'foo'; expected tcp, udp, udplite, icmp, ipv6-icmp (icmpv6), sctp, dccp, gre, esp, ah, mh, all or a number 0..255")]
    [InlineData("-A INPUT -p tcp -p udp", "rules.v4:5:17: option '-p' given twice")]
    [InlineData("-A INPUT -p tcp --dport 1 --dport 2", "rules.v4:5:27: option '--dport' given twice in one match")]
    [InlineData("-A INPUT -p tcp --syn --tcp-flags ALL SYN", "rules.v4:5:23: only one of --syn or --tcp-flags per match")]
    [InlineData("-A INPUT -p tcp --tcp-flags SYN,FOO SYN", "rules.v4:5:29: unknown TCP flag 'FOO'; expected SYN, ACK, FIN, RST, URG, PSH, ALL or NONE")]
    [InlineData("-A INPUT -p icmp --icmp-type echo-re", "rules.v4:5:30: ambiguous ICMP type 'echo-re': 'echo-reply' or 'echo-request'?")]
    [InlineData("-A INPUT -p icmp --icmp-type bogus", "rules.v4:5:30: unknown ICMP type 'bogus'; expected a name such as echo-request, destination-unreachable, port-unreachable or a number type[/code] 0..255")]
    [InlineData("-A INPUT -p icmp --icmp-type 8/300", "rules.v4:5:30: unknown ICMP type '8/300'; expected a name such as echo-request, destination-unreachable, port-unreachable or a number type[/code] 0..255")]
    [InlineData("-A INPUT -m state --state NEW,SNAT", "rules.v4:5:27: unknown state 'SNAT'; expected INVALID, NEW, ESTABLISHED, RELATED or UNTRACKED")]
    [InlineData("-A INPUT -m conntrack --ctstate FOO", "rules.v4:5:33: unknown conntrack state 'FOO'; expected INVALID, NEW, ESTABLISHED, RELATED, UNTRACKED, SNAT or DNAT")]
    [InlineData("-A INPUT -m conntrack --ctdir SIDEWAYS", "rules.v4:5:31: bad --ctdir 'SIDEWAYS'; expected ORIGINAL or REPLY")]
    [InlineData("-A INPUT -m conntrack ! --ctdir REPLY", "rules.v4:5:25: '!' cannot negate '--ctdir'")]
    [InlineData("-A INPUT -m state", "rules.v4:5:13: match 'state' needs '--state'")]
    [InlineData("-A INPUT -m multiport -p tcp", "rules.v4:5:13: match 'multiport' needs '-p tcp', '-p udp', '-p udplite', '-p sctp' or '-p dccp' before it")]
    [InlineData("-A INPUT -p tcp -m multiport -j ACCEPT", "rules.v4:5:20: match 'multiport' needs one of --sports, --dports or --ports")]
    [InlineData("-A INPUT -m comment -j ACCEPT", "rules.v4:5:13: match 'comment' needs '--comment'")]
    [InlineData("-A INPUT ! -m state --state NEW", "rules.v4:5:12: '!' cannot negate '-m'")]
    [InlineData("-A INPUT ! ! -s 1.2.3.4", "rules.v4:5:12: multiple '!' in a row; expected an option after the first")]
    [InlineData("-A INPUT -j ACCEPT !", "rules.v4:5:20: '!' at the end of the rule; expected an option after it")]
    [InlineData("-A INPUT ! -p all", "rules.v4:5:12: '! -p all' would never match")]
    [InlineData("-A INPUT -j ACCEPT -j DROP", "rules.v4:5:20: a rule has one target; 'ACCEPT' was already given")]
    [InlineData("-A INPUT -j LOG --log-level loud", "rules.v4:5:29: bad log level 'loud'; expected 0..7 or emerg, alert, crit, error, warning, notice, info, debug")]
    [InlineData("-A INPUT -j LOG --log-prefix \"\"", "rules.v4:5:30: --log-prefix needs at least 1 character")]
    [InlineData("-A INPUT -j REJECT --reject-with icmp-bogus", "rules.v4:5:34: unknown --reject-with 'icmp-bogus'; expected one of icmp-net-unreachable, icmp-host-unreachable, icmp-proto-unreachable, icmp-port-unreachable, icmp-net-prohibited, icmp-host-prohibited, icmp-admin-prohibited, tcp-reset, icmp6-no-route, icmp6-adm-prohibited, icmp6-addr-unreachable, icmp6-port-unreachable, icmp6-policy-fail, icmp6-reject-route")]
    [InlineData("-A INPUT -p udp -j REJECT --reject-with tcp-reset", "rules.v4:5:41: '--reject-with tcp-reset' needs '-p tcp' (a TCP reset answers TCP only)")]
    [InlineData("-A INPUT -m comment --comment \"x\" --comment y", "rules.v4:5:35: option '--comment' given twice in one match")]
    [InlineData("-A INPUT -i eth0/1", "rules.v4:5:13: bad interface name 'eth0/1'; interface names cannot contain '/'")]
    [InlineData("-A INPUT -i averyveryverylongname", "rules.v4:5:13: bad interface name 'averyveryverylongname'; it is longer than 15 characters")]
    [InlineData("-A INPUT -o eth0 -j DROP", "rules.v4:5:10: '-o' cannot be used in chain INPUT; packets for this host have no output interface")]
    [InlineData("-A OUTPUT -i eth0 -j DROP", "rules.v4:5:11: '-i' cannot be used in chain OUTPUT; locally generated packets have no input interface")]
    [InlineData("-A INPUT -s 1.2.3.4,5.6.7.8 ! -d 9.9.9.9", null)]
    [InlineData("-A INPUT ! -s 1.2.3.4,5.6.7.8", "rules.v4:5:12: '!' cannot negate a list of addresses")]
    [InlineData("-A INPUT -j LOG --log-prefix \"unterminated", "rules.v4:5:30: unterminated quote; expected a closing '\"'")]
    [InlineData("-A NOPE -j ACCEPT", "rules.v4:5:4: chain 'NOPE' does not exist; declare it with ':NOPE - [0:0]' before its rules")]
    [InlineData("-I INPUT 3 -j ACCEPT", "rules.v4:5:10: index of insertion 3 is out of range; chain 'INPUT' has 0 rules")]
    [InlineData("-P FOO DROP", "rules.v4:5:4: -P needs a built-in chain (INPUT, FORWARD or OUTPUT), not 'FOO'")]
    [InlineData("-P INPUT REJECT", "rules.v4:5:10: bad policy 'REJECT' for built-in chain 'INPUT'; expected ACCEPT or DROP")]
    [InlineData("[1:x] -A INPUT", "rules.v4:5:1: bad counters '[1:x]'; expected [packets:bytes]")]
    [InlineData("-A INPUT -g ACCEPT", "rules.v4:5:13: -g needs a user-defined chain, not the target 'ACCEPT'")]
    public void Load_OtherSyntaxAndSemanticErrors_AreLocated(string rule, string? expected)
    {
        if (expected is null)
            T.Table(rule);
        else
            Assert.Equal(expected, T.TableError(rule));
    }

    [Theory]
    [InlineData("-4 -A INPUT -s 2001:db8::/32 -j DROP", "rules.v4:5:16: address '2001:db8::/32' needs IPv6, but this rule is IPv4-only because of -4")]
    [InlineData("-A INPUT -6 -p icmp --icmp-type 8 -j DROP", "rules.v4:5:21: '--icmp-type' needs IPv4, but this rule is IPv6-only because of -6")]
    [InlineData("-A INPUT -s 10.0.0.1 -d 2001:db8::1 -j DROP", "rules.v4:5:25: address '2001:db8::1' needs IPv6, but this rule is IPv4-only because of address '10.0.0.1'")]
    [InlineData("-A INPUT -s 10.0.0.1,2001:db8::1", "rules.v4:5:13: address '2001:db8::1' needs IPv6, but this rule is IPv4-only because of address '10.0.0.1'")]
    [InlineData("-6 -A INPUT -j REJECT --reject-with icmp-host-prohibited", "rules.v4:5:37: '--reject-with icmp-host-prohibited' needs IPv4, but this rule is IPv6-only because of -6")]
    [InlineData("-6 -A INPUT -f", "rules.v4:5:13: '-f' needs IPv4, but this rule is IPv6-only because of -6")]
    [InlineData("-4 -6 -A INPUT", "rules.v4:5:4: -6 needs IPv6, but this rule is IPv4-only because of -4")]
    [InlineData("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1 -s 10.0.0.0/8", "rules.v4:5:51: address '10.0.0.0/8' needs IPv4, but this rule is IPv6-only because of match 'icmp6'")]
    public void Load_FamilyConflict_SaysWhichOptionFixedTheFamily(string rule, string expected) =>
        Assert.Equal(expected, T.TableError(rule));

    [Theory]
    [InlineData(":INPUT - [0:0]", "rules.v4:5:8: built-in chain 'INPUT' needs a policy; expected ACCEPT or DROP, not '-'")]
    [InlineData(":INPUT REJECT [0:0]", "rules.v4:5:8: bad policy 'REJECT' for built-in chain 'INPUT'; expected ACCEPT or DROP")]
    [InlineData(":USER ACCEPT [0:0]", "rules.v4:5:7: user chain 'USER' cannot have a policy ('ACCEPT'); expected '-' (only INPUT, FORWARD and OUTPUT have policies)")]
    [InlineData(":ACCEPT - [0:0]", "rules.v4:5:1: chain name 'ACCEPT' clashes with a target of that name")]
    [InlineData(":-bad - [0:0]", "rules.v4:5:1: bad chain name '-bad'; it cannot start with '-'")]
    [InlineData(":ABCDEFGHIJKLMNOPQRSTUVWXYZ123 - [0:0]", "rules.v4:5:1: chain name 'ABCDEFGHIJKLMNOPQRSTUVWXYZ123' is too long (29 characters; 28 at most)")]
    [InlineData(":USER - [0:x]", "rules.v4:5:9: bad counters '[0:x]'; expected [packets:bytes]")]
    [InlineData(":USER", "rules.v4:5:6: expected a policy after ':USER': ACCEPT or DROP for a built-in chain, '-' for a user chain")]
    public void Load_BadChainDeclaration_IsLocated(string line, string expected)
    {
        IReadOnlyList<RuleError> errors = T.Errors($"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{line}\nCOMMIT\n");
        // A re-declared INPUT is reported as a duplicate first; the policy problems are tested on a fresh table.
        if (line.StartsWith(":INPUT", StringComparison.Ordinal))
            errors = T.Errors($"*filter\n\n\n\n{line}\nCOMMIT\n");
        Assert.Equal(expected, Assert.Single(errors).ToString());
    }

    [Fact]
    public void Load_SeveralBadLines_ReportsEveryOneInOrder()
    {
        IReadOnlyList<RuleError> errors = T.Errors("*filter\n-A INPUT -m foo\n-A INPUT -p tcp --dport 99999\n-A INPUT -j ACCEPT\n-A INPUT -s 1.2.3.4/40\nCOMMIT\n");
        Assert.Equal(["rules.v4:2:13", "rules.v4:3:25", "rules.v4:5:13"], errors.Select(e => $"{e.File}:{e.Line}:{e.Column}"));
    }

    [Fact]
    public void Load_HugeBrokenFile_StopsAtAHundredErrors()
    {
        string text = "*filter\n" + string.Concat(Enumerable.Repeat("-A INPUT -m foo\n", 500)) + "COMMIT\n";
        Assert.Equal(100, T.Errors(text).Count);
    }

    [Fact]
    public void TryLoadFile_MissingFile_ReturnsOneErrorWithoutThrowing()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-missing-{Guid.NewGuid():N}.rules");
        Assert.False(Ruleset.TryLoadFile(path, out Ruleset? rs, out IReadOnlyList<RuleError> errors));
        Assert.Null(rs);
        RuleError e = Assert.Single(errors);
        Assert.Equal(path, e.File);
        Assert.StartsWith("cannot read the rules file: ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryLoadFile_FileWithError_NamesThePathInTheMessage()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-{Guid.NewGuid():N}.rules");
        File.WriteAllText(path, "*filter\n-A INPUT -j NOWHERE\nCOMMIT\n");
        try
        {
            Assert.False(Ruleset.TryLoadFile(path, out _, out IReadOnlyList<RuleError> errors));
            Assert.Equal($"{path}:2:13: jump to missing chain 'NOWHERE'; declare it with ':NOWHERE - [0:0]'", Assert.Single(errors).ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }
}
