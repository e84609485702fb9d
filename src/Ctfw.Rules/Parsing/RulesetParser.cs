using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Rules.Parsing;

/// <summary>
/// Reads iptables-save text (what iptables-restore accepts) for the filter table into a
/// <see cref="TableDraft"/>. Errors carry file:line:col and say what was expected; parsing goes on
/// after an error (skipping the rest of that line) so one load reports every bad line, up to
/// <see cref="MaxErrors"/>. Jump targets are resolved later, by the compiler, so a chain may be
/// declared after a rule that jumps to it (iptables-restore would refuse; nothing is lost by allowing it).
/// </summary>
internal sealed class RulesetParser
{
    public const int MaxErrors = 100;

    private readonly string _file;
    private readonly List<RuleError> _errors = [];
    private readonly List<RuleError> _warnings = [];
    private readonly List<Token> _tokens = [];
    private int _line;
    /// <summary>The table of the rule being parsed.</summary>
    private RuleTable _kind;
    /// <summary>Compiled rules the table will hold so far: each rule's source × destination pairs.</summary>
    private long _expandedRules;
    /// <summary>Set when the table went over <see cref="RulesetLimits.MaxRules"/>: every later rule would too.</summary>
    private bool _stop;

    public RulesetParser(string fileName) => _file = fileName;

    public List<RuleError> Errors => _errors;
    public List<RuleError> Warnings => _warnings;

    /// <summary>The `*raw` table of the last <see cref="Parse"/>, if the file has one.</summary>
    public TableDraft? Raw { get; private set; }

    /// <summary>Parses the file; returns its `*filter` table (and sets <see cref="Raw"/>), or null on errors.</summary>
    public TableDraft? Parse(string text)
    {
        TableDraft? table = null, raw = null, current = null;
        bool skipping = false;
        string openName = "";
        int openLine = 0, openColumn = 1;
        // Line by line over the text, not Split: a big file is not held twice.
        for (int start = 0, n = 0; start <= text.Length && _errors.Count < MaxErrors && !_stop; n++)
        {
            int end = text.IndexOf('\n', start);
            if (end < 0)
                end = text.Length;
            string line = text[start..end];
            start = end + 1;
            _line = n + 1;
            int first = 0;
            while (first < line.Length && line[first] is ' ' or '\t' or '\r')
                first++;
            if (first == line.Length || line[first] == '#')
                continue;
            if (!Tokenizer.TryTokenize(line, _tokens, out int quoteColumn))
            {
                Error(quoteColumn, "unterminated quote; expected a closing '\"'");
                continue;
            }
            Token head = _tokens[0];

            if (head.Text.StartsWith('*'))
            {
                string name = head.Text[1..];
                if (current is not null || skipping)
                {
                    Error(head.Column, $"'*{name}' inside table '{openName}' (opened at line {openLine}); expected COMMIT first");
                    continue;
                }
                if (_tokens.Count > 1)
                    Error(_tokens[1].Column, $"unexpected '{_tokens[1].Text}' after '*{name}'");
                openName = name;
                openLine = _line;
                openColumn = head.Column;
                TableDraft? existing = name switch { "filter" => table, "raw" => raw, _ => null };
                if (name is not ("filter" or "raw"))
                {
                    Error(head.Column, $"table '{name}' is not supported; only '*filter' and '*raw' are (ctfw filters packets and assigns conntrack helpers; it does not NAT or mangle)");
                    skipping = true;
                }
                else if (existing is not null)
                {
                    Error(head.Column, $"table '{name}' appears twice (first at line {existing.Line})");
                    skipping = true;
                }
                else if (name == "filter")
                {
                    current = table = NewTable(RuleTable.Filter, _line);
                }
                else
                {
                    current = raw = NewTable(RuleTable.Raw, _line);
                }
                continue;
            }

            if (head.Text == "COMMIT")
            {
                if (_tokens.Count > 1)
                    Error(_tokens[1].Column, $"unexpected '{_tokens[1].Text}' after COMMIT");
                if (current is null && !skipping)
                    Error(head.Column, "COMMIT without an open table; expected '*filter' (or '*raw') before it");
                current = null;
                skipping = false;
                continue;
            }
            if (skipping)
                continue;
            if (current is null)
            {
                Error(head.Column, table is null && raw is null
                    ? "rule outside a table; expected '*filter' first"
                    : "rule after COMMIT; expected '*filter' (or '*raw') to open the table first");
                continue;
            }
            if (head.Text.StartsWith(':'))
                ParseChainDeclaration(current);
            else
                ParseCommand(current);
        }

        if ((current is not null || skipping) && _errors.Count < MaxErrors && !_stop)
            ErrorAt(openLine, openColumn, $"missing COMMIT: table '{openName}' is still open at the end of the file");
        if (table is null && _errors.Count == 0)
        {
            ErrorAt(raw?.Line ?? 1, 1, raw is null
                ? "no '*filter' table; expected '*filter', chain declarations (:INPUT ACCEPT [0:0]), rules (-A ...) and COMMIT"
                : "no '*filter' table; a file with '*raw' needs one too (an empty '*filter' with COMMIT accepts everything)");
        }
        Raw = _errors.Count == 0 ? raw : null;
        return _errors.Count == 0 ? table : null;
    }

    /// <summary>The table's built-in chains, in iptables' order.</summary>
    private static (string Name, Hook Hook)[] Builtins(RuleTable kind) => kind == RuleTable.Raw
        ? [("PREROUTING", Hook.PreRouting), ("OUTPUT", Hook.Output)]
        : [("INPUT", Hook.Input), ("FORWARD", Hook.Forward), ("OUTPUT", Hook.Output)];

    private static TableDraft NewTable(RuleTable kind, int line)
    {
        var table = new TableDraft { Kind = kind, Line = line };
        foreach ((string name, Hook hook) in Builtins(kind))
        {
            var chain = new ChainDraft(name, hook, line, 1);
            table.Chains.Add(chain);
            table.ByName.Add(name, chain);
        }
        return table;
    }

    private static Hook? BuiltinHook(RuleTable kind, string name)
    {
        foreach ((string n, Hook hook) in Builtins(kind))
        {
            if (n == name)
                return hook;
        }
        return null;
    }

    private static string BuiltinNames(RuleTable kind) => kind == RuleTable.Raw ? "PREROUTING and OUTPUT" : "INPUT, FORWARD and OUTPUT";

    // ---- :CHAIN POLICY [p:b] ----

    private void ParseChainDeclaration(TableDraft table)
    {
        Token head = _tokens[0];
        string name = head.Text[1..];
        if (name.Length == 0)
        {
            Error(head.Column, "expected a chain name after ':'");
            return;
        }
        if (_tokens.Count < 2)
        {
            Error(head.Column + head.Text.Length, $"expected a policy after ':{name}': ACCEPT or DROP for a built-in chain, '-' for a user chain");
            return;
        }
        ulong packets = 0, bytes = 0;
        if (_tokens.Count >= 3 && !ValueParsers.TryParseCounters(_tokens[2].Text, out packets, out bytes))
        {
            Error(_tokens[2].Column, $"bad counters '{_tokens[2].Text}'; expected [packets:bytes]");
            return;
        }
        if (_tokens.Count > 3)
        {
            Error(_tokens[3].Column, $"unexpected '{_tokens[3].Text}' after the chain's counters");
            return;
        }
        DeclareChain(table, name, head.Column, _tokens[1], packets, bytes);
    }

    private void DeclareChain(TableDraft table, string name, int column, Token policy, ulong packets, ulong bytes)
    {
        Hook? builtin = BuiltinHook(table.Kind, name);
        if (table.ByName.TryGetValue(name, out ChainDraft? existing) && (existing.Builtin is null || existing.Declared))
        {
            Error(column, $"duplicate chain '{name}' (first declared at line {existing.Line})");
            return;
        }
        if (builtin is not null)
        {
            if (policy.Text is not ("ACCEPT" or "DROP"))
            {
                Error(policy.Column, policy.Text == "-"
                    ? $"built-in chain '{name}' needs a policy; expected ACCEPT or DROP, not '-'"
                    : $"bad policy '{policy.Text}' for built-in chain '{name}'; expected ACCEPT or DROP");
                return;
            }
            ChainDraft chain = existing!;
            chain.Declared = true;
            chain.Line = _line;
            chain.Column = column;
            chain.Policy = policy.Text == "ACCEPT" ? Verdict.Accept : Verdict.Drop;
            chain.Packets = packets;
            chain.Bytes = bytes;
            return;
        }
        if (!ValidateChainName(name, column))
            return;
        if (policy.Text != "-")
        {
            Error(policy.Column, $"user chain '{name}' cannot have a policy ('{policy.Text}'); expected '-' (only {BuiltinNames(table.Kind)} have policies)");
            return;
        }
        var user = new ChainDraft(name, null, _line, column) { Declared = true };
        table.Chains.Add(user);
        table.ByName.Add(name, user);
    }

    /// <summary>iptables' chain-name rules: under 29 characters, no leading '-' or '!', not a target's name.</summary>
    private bool ValidateChainName(string name, int column)
    {
        if (name.Length > 28)
            Error(column, $"chain name '{name}' is too long ({name.Length} characters; 28 at most)");
        else if (name[0] is '-' or '!')
            Error(column, $"bad chain name '{name}'; it cannot start with '{name[0]}'");
        else if (name is "ACCEPT" or "DROP" or "REJECT" or "LOG" or "RETURN" or "QUEUE" || NameTables.UnsupportedTargets.Contains(name))
            Error(column, $"chain name '{name}' clashes with a target of that name");
        else
            return true;
        return false;
    }

    // ---- commands: -A, -I, -N, -P ----

    private void ParseCommand(TableDraft table)
    {
        _kind = table.Kind;
        int i = 0;
        ulong packets = 0, bytes = 0;
        if (_tokens[0].Text.StartsWith('['))
        {
            if (!ValueParsers.TryParseCounters(_tokens[0].Text, out packets, out bytes))
            {
                Error(_tokens[0].Column, $"bad counters '{_tokens[0].Text}'; expected [packets:bytes]");
                return;
            }
            i = 1;
        }
        var options = new List<Token>();
        while (i < _tokens.Count && _tokens[i].Text is "-4" or "-6" or "--ipv4" or "--ipv6")
            options.Add(_tokens[i++]);
        if (i >= _tokens.Count)
        {
            Error(_tokens[^1].Column, "expected a command: -A CHAIN, -I CHAIN, -N CHAIN or -P CHAIN POLICY");
            return;
        }
        Token command = _tokens[i];
        Token? Arg(int at) => at < _tokens.Count ? _tokens[at] : null;
        switch (command.Text)
        {
            case "-A" or "--append" or "-I" or "--insert":
            {
                if (Arg(i + 1) is not Token chainToken)
                {
                    Error(command.Column + command.Text.Length, $"expected a chain name after {command.Text}");
                    return;
                }
                if (!table.ByName.TryGetValue(chainToken.Text, out ChainDraft? chain))
                {
                    Error(chainToken.Column, $"chain '{chainToken.Text}' does not exist; declare it with ':{chainToken.Text} - [0:0]' before its rules");
                    return;
                }
                int next = i + 2;
                int insertAt = chain.Rules.Count;
                if (command.Text is "-I" or "--insert")
                {
                    insertAt = 0;
                    if (Arg(next) is Token number && ValueParsers.TryParseDecimal(number.Text, int.MaxValue, out uint position))
                    {
                        if (position == 0 || position > chain.Rules.Count + 1)
                        {
                            Error(number.Column, $"index of insertion {position} is out of range; chain '{chain.Name}' has {chain.Rules.Count} rules");
                            return;
                        }
                        insertAt = (int)position - 1;
                        next++;
                    }
                }
                for (int k = next; k < _tokens.Count; k++)
                    options.Add(_tokens[k]);
                RuleDraft? rule = ParseRule(chain, options, packets, bytes);
                if (rule is null)
                    return;
                // Counted as parsed, so an oversized table stops here instead of being built and then refused.
                _expandedRules += (long)Math.Max(1, rule.Sources.Count) * Math.Max(1, rule.Destinations.Count);
                if (_expandedRules > RulesetLimits.MaxRules)
                {
                    Error(command.Column, $"too many rules: this one brings the table to {_expandedRules} rules; ctfw loads at most "
                        + $"{RulesetLimits.MaxRules} (a rule with -s/-d lists counts once per source and destination pair, as iptables expands it)");
                    _stop = true;
                    return;
                }
                chain.Rules.Insert(insertAt, rule);
                return;
            }
            case "-N" or "--new-chain":
            {
                if (Arg(i + 1) is not Token name)
                {
                    Error(command.Column + command.Text.Length, "expected a chain name after -N");
                    return;
                }
                if (Arg(i + 2) is Token extra)
                {
                    Error(extra.Column, $"unexpected '{extra.Text}' after -N {name.Text}");
                    return;
                }
                if (BuiltinHook(table.Kind, name.Text) is not null)
                {
                    Error(name.Column, $"chain '{name.Text}' is built in; -N creates user chains");
                    return;
                }
                DeclareChain(table, name.Text, name.Column, new Token("-", name.Column, false), 0, 0);
                return;
            }
            case "-P" or "--policy":
            {
                if (Arg(i + 1) is not Token name || Arg(i + 2) is not Token policy)
                {
                    Error(command.Column + command.Text.Length, "expected a chain and a policy after -P, e.g. -P INPUT DROP");
                    return;
                }
                if (!table.ByName.TryGetValue(name.Text, out ChainDraft? chain) || chain.Builtin is null)
                {
                    Error(name.Column, $"-P needs a built-in chain ({BuiltinNames(table.Kind).Replace(" and ", " or ", StringComparison.Ordinal)}), not '{name.Text}'");
                    return;
                }
                if (policy.Text is not ("ACCEPT" or "DROP"))
                {
                    Error(policy.Column, $"bad policy '{policy.Text}' for built-in chain '{name.Text}'; expected ACCEPT or DROP");
                    return;
                }
                chain.Policy = policy.Text == "ACCEPT" ? Verdict.Accept : Verdict.Drop;
                return;
            }
            default:
                Error(command.Column, command.Text.StartsWith('-')
                    ? $"unsupported command '{command.Text}'; expected -A, -I, -N or -P"
                    : $"unexpected '{command.Text}'; expected '*filter', ':CHAIN POLICY [0:0]', a rule (-A CHAIN ...) or COMMIT");
                return;
        }
    }

    // ---- one rule ----

    private RuleDraft? ParseRule(ChainDraft chain, List<Token> options, ulong packets, ulong bytes)
    {
        var rule = new RuleDraft(chain.Name, _line)
        {
            Packets = packets,
            Bytes = bytes,
            Words = options.Select(Requote).ToList(),
        };
        bool invert = false;
        Token bang = default;
        int k = 0;
        while (k < options.Count)
        {
            Token token = options[k++];
            if (token.Text == "!" && !token.Quoted)
            {
                if (invert)
                {
                    Error(token.Column, "multiple '!' in a row; expected an option after the first");
                    return null;
                }
                invert = true;
                bang = token;
                continue;
            }
            bool negated = invert;
            invert = false;
            if (!ParseOption(rule, chain, options, ref k, token, negated))
                return null;
        }
        if (invert)
        {
            Error(bang.Column, "'!' at the end of the rule; expected an option after it");
            return null;
        }
        return Validate(rule, chain) ? rule : null;
    }

    private bool Validate(RuleDraft rule, ChainDraft chain)
    {
        foreach (MatchDraft m in rule.Matches)
        {
            if (m.Implicit)
                continue;
            string? missing = m.Kind switch
            {
                MatchKind.Icmp when !m.HasIcmp => "'--icmp-type'",
                MatchKind.Icmp6 when !m.HasIcmp => "'--icmpv6-type'",
                MatchKind.Multiport when !m.HasPorts => "one of --sports, --dports or --ports",
                MatchKind.State when !m.HasState => "'--state'",
                MatchKind.Conntrack when !m.HasState && !m.HasDirection => "--ctstate or --ctdir",
                MatchKind.Comment when m.Comment is null => "'--comment'",
                MatchKind.Mark when !m.HasMark => "'--mark'",
                MatchKind.Helper when !m.HasHelper => "'--helper'",
                _ => null,
            };
            if (missing is not null)
            {
                Error(m.NameToken.Column, $"match '{m.NameToken.Text}' needs {missing}");
                return false;
            }
        }
        if (rule.Target == RuleTarget.Reject && rule.RejectWith == RejectWith.TcpReset && !rule.ProtocolIs(IpProto.Tcp))
        {
            Error(rule.RejectToken.Column, "'--reject-with tcp-reset' needs '-p tcp' (a TCP reset answers TCP only)");
            return false;
        }
        if (rule.Target == RuleTarget.Ct && !ValidateCt(rule))
            return false;
        if (rule.HasOut && chain.Builtin == Hook.PreRouting)
        {
            Error(rule.OutToken.Column, "'-o' cannot be used in chain PREROUTING; packets are not routed yet there");
            return false;
        }
        if (rule.HasIn && chain.Builtin == Hook.Output)
        {
            Error(rule.InToken.Column, "'-i' cannot be used in chain OUTPUT; locally generated packets have no input interface");
            return false;
        }
        if (rule.HasOut && chain.Builtin == Hook.Input)
        {
            Error(rule.OutToken.Column, "'-o' cannot be used in chain INPUT; packets for this host have no output interface");
            return false;
        }
        return true;
    }

    /// <summary>xt_ct_tg_check / xt_ct_set_helper: a helper needs the rule's protocol, not negated, and one the helper serves.</summary>
    private bool ValidateCt(RuleDraft rule)
    {
        if (rule.Helper == CtHelper.None)
        {
            Error(rule.TargetToken.Column, "'-j CT' needs '--helper ftp' or '--helper tftp' (ctfw's CT only assigns helpers)");
            return false;
        }
        string name = CtHelpers.Name(rule.Helper)!;
        string serves = rule.HelperProtocol == IpProto.Tcp ? "tcp" : "udp";
        if (!rule.HasProtocol || rule.ProtocolInvert || rule.Protocol == 0)
        {
            Error(rule.HelperToken.Column, $"helper '{name}' needs '-p {serves}' in the rule (the kernel refuses a helper without a protocol, or with a negated one)");
            return false;
        }
        if (rule.Protocol != rule.HelperProtocol)
        {
            Error(rule.HelperToken.Column, $"helper '{name}' serves {serves} only; this rule is for protocol {rule.Protocol} (the kernel has no '{name}' helper for it)");
            return false;
        }
        return true;
    }

    /// <summary>The helpers `-m helper --helper NAME` matches, one bit per <see cref="CtHelper"/>: xt_helper compares the first strlen(helper) characters, so NAME matches a helper it starts with; "" matches any.</summary>
    internal static byte HelperMask(string name)
    {
        if (name.Length == 0)
            return (1 << (int)CtHelper.Ftp) | (1 << (int)CtHelper.Tftp);
        byte mask = 0;
        foreach (CtHelper h in (CtHelper[])[CtHelper.Ftp, CtHelper.Tftp])
        {
            if (name.StartsWith(CtHelpers.Name(h)!, StringComparison.Ordinal))
                mask |= (byte)(1 << (int)h);
        }
        return mask;
    }

    private bool ParseOption(RuleDraft rule, ChainDraft chain, List<Token> options, ref int k, Token option, bool negated)
    {
        switch (option.Text)
        {
            case "-p" or "--protocol":
            {
                if (!Once(rule.HasProtocol, option) || !Value(options, ref k, option, out Token value))
                    return false;
                if (!ValueParsers.TryParseProtocol(value.Text, out byte protocol, out string error))
                    return Fail(value, error);
                if (negated && protocol == 0)
                    return Fail(option, "'! -p all' would never match");
                rule.HasProtocol = true;
                rule.ProtocolInvert = negated;
                rule.Protocol = protocol;
                return true;
            }
            case "-s" or "--source" or "--src" or "-d" or "--destination" or "--dst":
            {
                bool source = option.Text is "-s" or "--source" or "--src";
                if (!Once(source ? rule.Sources.Count > 0 : rule.Destinations.Count > 0, option) || !Value(options, ref k, option, out Token value))
                    return false;
                List<AddressSpec> list = source ? rule.Sources : rule.Destinations;
                // Counted before anything is parsed: the list is multiplied by the other one at compile time.
                int count = value.Text.AsSpan().Count(',') + 1;
                if (count > RulesetLimits.MaxAddressesPerList)
                {
                    return Fail(value, $"'{option.Text}' lists {count} addresses; ctfw takes at most {RulesetLimits.MaxAddressesPerList} in one list "
                        + "(iptables-restore refuses any longer list: 'Parameter too long!' past 1023 characters); split it over several rules");
                }
                string[] items = value.Text.Split(',');
                if (negated && items.Length > 1)
                    return Fail(option, "'!' cannot negate a list of addresses");
                foreach (string item in items)
                {
                    if (!ValueParsers.TryParseAddress(item, out AddressSpec spec, out string error))
                        return Fail(value, error);
                    if (!Narrow(rule, spec.V6 ? RuleFamily.IPv6 : RuleFamily.IPv4, value, $"address '{item}'"))
                        return false;
                    list.Add(spec);
                }
                if (source)
                    (rule.SourceInvert, rule.SourceWord) = (negated, k - 1);
                else
                    (rule.DestinationInvert, rule.DestinationWord) = (negated, k - 1);
                return true;
            }
            case "-i" or "--in-interface" or "-o" or "--out-interface":
            {
                bool input = option.Text is "-i" or "--in-interface";
                if (!Once(input ? rule.HasIn : rule.HasOut, option) || !Value(options, ref k, option, out Token value))
                    return false;
                if (!TryParseInterface(value, out IfName ifName, out IfName mask))
                    return false;
                if (input)
                    (rule.HasIn, rule.InInvert, rule.In, rule.InMask, rule.InToken) = (true, negated, ifName, mask, option);
                else
                    (rule.HasOut, rule.OutInvert, rule.Out, rule.OutMask, rule.OutToken) = (true, negated, ifName, mask, option);
                return true;
            }
            case "-f" or "--fragment":
                if (!Once(rule.HasFragment, option) || !Narrow(rule, RuleFamily.IPv4, option, "'-f'"))
                    return false;
                rule.HasFragment = true;
                rule.FragmentInvert = negated;
                return true;
            case "-4" or "--ipv4" or "-6" or "--ipv6":
                return NoNegation(negated, option)
                    && Narrow(rule, option.Text is "-4" or "--ipv4" ? RuleFamily.IPv4 : RuleFamily.IPv6, option, option.Text);
            case "-c" or "--set-counters":
            {
                if (!NoNegation(negated, option) || !Value(options, ref k, option, out Token p) || !Value(options, ref k, option, out Token b))
                    return false;
                if (!ulong.TryParse(p.Text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out rule.Packets)
                    || !ulong.TryParse(b.Text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out rule.Bytes))
                    return Fail(p, $"bad counters '{p.Text} {b.Text}'; expected two numbers (packets bytes)");
                return true;
            }
            case "-j" or "--jump" or "-g" or "--goto":
                return NoNegation(negated, option) && Value(options, ref k, option, out Token target) && ParseTarget(rule, option, target);
            case "-m" or "--match":
                return NoNegation(negated, option) && Value(options, ref k, option, out Token matchName) && ParseMatch(rule, matchName);
        }
        if (option.Text.StartsWith("--", StringComparison.Ordinal) && option.Text.Length > 2)
            return ParseExtensionOption(rule, options, ref k, option, negated);
        return Fail(option, option.Text.StartsWith('-')
            ? $"unknown option '{option.Text}'"
            : $"unexpected '{option.Text}'; expected an option (-p, -s, -d, -i, -o, -m, -j, ...)");
    }

    private bool TryParseInterface(Token value, out IfName name, out IfName mask)
    {
        name = mask = default;
        string text = value.Text;
        if (text.Contains('/', StringComparison.Ordinal))
            return Fail(value, $"bad interface name '{text}'; interface names cannot contain '/'");
        if (!IfName.TryCreate(text, out name))
            return Fail(value, $"bad interface name '{text}'; it is longer than {IfName.MaxLength} characters");
        // xtables_parse_interface: "eth+" compares the bytes before '+'; a plain name also compares the NUL after it.
        int length = System.Text.Encoding.UTF8.GetByteCount(text);
        int compared = text.Length == 0 ? 0 : text.EndsWith('+') ? length - 1 : Math.Min(length + 1, 16);
        mask = MaskOfLength(compared);
        return true;
    }

    private static IfName MaskOfLength(int bytes)
    {
        static ulong Word(int n) => n <= 0 ? 0 : n >= 8 ? ulong.MaxValue : ~(ulong.MaxValue >> (8 * n));
        return new IfName(Word(bytes), Word(bytes - 8));
    }

    private bool ParseTarget(RuleDraft rule, Token option, Token target)
    {
        if (rule.HasTarget)
            return Fail(option, $"a rule has one target; '{rule.TargetToken.Text}' was already given");
        rule.HasTarget = true;
        rule.TargetToken = target;
        string name = target.Text;
        bool isGoto = option.Text is "-g" or "--goto";
        bool standard = name is "ACCEPT" or "DROP" or "RETURN" or "REJECT" or "LOG";
        if (isGoto)
        {
            if (standard || NameTables.UnsupportedTargets.Contains(name))
                return Fail(target, $"-g needs a user-defined chain, not the target '{name}'");
            rule.Target = RuleTarget.Goto;
            rule.JumpChain = name;
            return true;
        }
        if (_kind == RuleTable.Raw)
        {
            switch (name)
            {
                case "REJECT" or "LOG":
                    return Fail(target, $"target '{name}' cannot be used in the raw table; expected one of {NameTables.SupportedRawTargets} ({name} belongs in '*filter')");
                case "CT":
                    rule.Target = RuleTarget.Ct;
                    return true;
                case "NOTRACK":
                    return Fail(target, $"target 'NOTRACK' is not supported (ctfw tracks every packet); expected one of {NameTables.SupportedRawTargets}");
            }
        }
        switch (name)
        {
            case "ACCEPT":
                rule.Target = RuleTarget.Accept;
                return true;
            case "DROP":
                rule.Target = RuleTarget.Drop;
                return true;
            case "RETURN":
                rule.Target = RuleTarget.Return;
                return true;
            case "REJECT":
                rule.Target = RuleTarget.Reject;
                return true;
            case "LOG":
                rule.Target = RuleTarget.Log;
                rule.Log = new LogOptions();
                return true;
            case "CT" or "NOTRACK":
                return Fail(target, $"target '{name}' belongs in the raw table, not in '*filter'; ctfw's raw table takes "
                    + "'-j CT --helper ftp|tftp', e.g. '*raw' ... '-A PREROUTING -p tcp --dport 21 -j CT --helper ftp'");
        }
        if (NameTables.UnsupportedTargets.Contains(name) || name.Length == 0)
            return Fail(target, $"unknown target '{name}'; expected one of {(_kind == RuleTable.Raw ? NameTables.SupportedRawTargets : NameTables.SupportedTargets)}");
        rule.Target = RuleTarget.Jump;
        rule.JumpChain = name;
        return true;
    }

    private bool ParseMatch(RuleDraft rule, Token name)
    {
        MatchKind? kind = name.Text switch
        {
            "tcp" => MatchKind.Tcp,
            "udp" => MatchKind.Udp,
            "icmp" => MatchKind.Icmp,
            "icmp6" => MatchKind.Icmp6,
            "multiport" => MatchKind.Multiport,
            "state" => MatchKind.State,
            "conntrack" => MatchKind.Conntrack,
            "comment" => MatchKind.Comment,
            "mark" => MatchKind.Mark,
            "helper" => MatchKind.Helper,
            _ => null,
        };
        if (_kind == RuleTable.Raw && kind is MatchKind.State or MatchKind.Conntrack or MatchKind.Helper)
        {
            return Fail(name, $"match '{name.Text}' cannot be used in the raw table: raw runs before conntrack, so no packet has a "
                + "connection (or a state, or a helper) there yet; match it in '*filter'");
        }
        if (kind is not MatchKind k)
        {
            return Fail(name, NameTables.UnsupportedMatches.Contains(name.Text)
                ? $"match '{name.Text}' is not supported; expected one of {NameTables.SupportedMatches}"
                : $"unknown match '{name.Text}'; expected one of {NameTables.SupportedMatches}");
        }
        string? needs = k switch
        {
            MatchKind.Tcp when !rule.ProtocolIs(IpProto.Tcp) => "'-p tcp'",
            MatchKind.Udp when !rule.ProtocolIs(IpProto.Udp) => "'-p udp'",
            MatchKind.Icmp when !rule.ProtocolIs(IpProto.Icmp) => "'-p icmp'",
            MatchKind.Icmp6 when !rule.ProtocolIs(IpProto.Icmpv6) => "'-p ipv6-icmp'",
            MatchKind.Multiport when !(rule.HasProtocol && !rule.ProtocolInvert && IpProtoExtra.HasPorts(rule.Protocol))
                => "'-p tcp', '-p udp', '-p udplite', '-p sctp' or '-p dccp'",
            _ => null,
        };
        if (needs is not null)
            return Fail(name, $"match '{name.Text}' needs {needs} before it");
        if (k == MatchKind.Icmp && !Narrow(rule, RuleFamily.IPv4, name, "match 'icmp'"))
            return false;
        if (k == MatchKind.Icmp6 && !Narrow(rule, RuleFamily.IPv6, name, "match 'icmp6'"))
            return false;
        rule.Matches.Add(new MatchDraft(k, name, isImplicit: false));
        return true;
    }

    private static string Canonical(string option) => option switch
    {
        "--source-port" => "--sport",
        "--destination-port" => "--dport",
        "--source-ports" => "--sports",
        "--destination-ports" => "--dports",
        _ => option,
    };

    private static bool Knows(MatchKind kind, string option) => kind switch
    {
        MatchKind.Tcp => option is "--sport" or "--dport" or "--syn" or "--tcp-flags",
        MatchKind.Udp => option is "--sport" or "--dport",
        MatchKind.Icmp => option is "--icmp-type",
        MatchKind.Icmp6 => option is "--icmpv6-type",
        MatchKind.Multiport => option is "--sports" or "--dports" or "--ports",
        MatchKind.State => option is "--state",
        MatchKind.Conntrack => option is "--ctstate" or "--ctdir",
        MatchKind.Comment => option is "--comment",
        MatchKind.Mark => option is "--mark",
        MatchKind.Helper => option is "--helper",
        _ => false,
    };

    private static bool TargetKnows(RuleTarget target, string option) => target switch
    {
        RuleTarget.Log => option is "--log-prefix" or "--log-level" or "--log-tcp-sequence" or "--log-tcp-options" or "--log-ip-options",
        RuleTarget.Reject => option is "--reject-with",
        // Every option of libxt_CT, so the unsupported ones get their own message.
        RuleTarget.Ct => option is "--helper" || s_unsupportedCtOptions.Contains(option),
        _ => false,
    };

    private static readonly HashSet<string> s_unsupportedCtOptions = new(StringComparer.Ordinal)
    {
        "--notrack", "--zone", "--zone-orig", "--zone-reply", "--ctevents", "--expevents", "--timeout",
    };

    private static readonly HashSet<string> s_unsupportedOptions = new(StringComparer.Ordinal)
    {
        "--tcp-option", "--log-uid", "--log-macdecode", "--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc",
        "--ctrepldst", "--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport", "--ctstatus", "--ctexpire",
    };

    private bool ParseExtensionOption(RuleDraft rule, List<Token> options, ref int k, Token option, bool negated)
    {
        string name = Canonical(option.Text);
        if (rule.HasTarget && TargetKnows(rule.Target, name))
            return ParseTargetOption(rule, options, ref k, option, name, negated);
        for (int m = rule.Matches.Count - 1; m >= 0; m--)
        {
            if (Knows(rule.Matches[m].Kind, name))
                return ParseMatchOption(rule, rule.Matches[m], options, ref k, option, name, negated);
        }
        // iptables loads the protocol's match implicitly for its options: -p tcp --dport 22.
        MatchKind? implicitKind = !rule.HasProtocol || rule.ProtocolInvert ? null : rule.Protocol switch
        {
            IpProto.Tcp => MatchKind.Tcp,
            IpProto.Udp => MatchKind.Udp,
            IpProto.Icmp => MatchKind.Icmp,
            IpProto.Icmpv6 => MatchKind.Icmp6,
            _ => null,
        };
        if (implicitKind is MatchKind kind && Knows(kind, name))
        {
            if (kind == MatchKind.Icmp && !Narrow(rule, RuleFamily.IPv4, option, "'--icmp-type'"))
                return false;
            if (kind == MatchKind.Icmp6 && !Narrow(rule, RuleFamily.IPv6, option, "'--icmpv6-type'"))
                return false;
            var match = new MatchDraft(kind, option, isImplicit: true);
            rule.Matches.Add(match);
            return ParseMatchOption(rule, match, options, ref k, option, name, negated);
        }

        string? needs = name switch
        {
            "--sport" or "--dport" => "'-p tcp' or '-p udp'",
            "--syn" or "--tcp-flags" => "'-p tcp'",
            "--icmp-type" => "'-p icmp'",
            "--icmpv6-type" => "'-p ipv6-icmp'",
            "--sports" or "--dports" or "--ports" => "'-m multiport'",
            "--state" => "'-m state'",
            "--ctstate" or "--ctdir" => "'-m conntrack'",
            "--comment" => "'-m comment'",
            "--mark" => "'-m mark'",
            "--helper" => _kind == RuleTable.Raw ? "'-j CT'" : "'-m helper'",
            "--log-prefix" or "--log-level" or "--log-tcp-sequence" or "--log-tcp-options" or "--log-ip-options" => "'-j LOG'",
            "--reject-with" => "'-j REJECT'",
            _ => null,
        };
        if (needs is not null)
            return Fail(option, $"option '{option.Text}' needs {needs} before it{(rule.ProtocolInvert && needs.StartsWith("'-p", StringComparison.Ordinal) ? " (not negated)" : "")}");
        if (s_unsupportedOptions.Contains(name))
            return Fail(option, $"option '{option.Text}' is not supported");
        return Fail(option, $"unknown option '{option.Text}'");
    }

    private bool ParseMatchOption(RuleDraft rule, MatchDraft m, List<Token> options, ref int k, Token option, string name, bool negated)
    {
        string key = name switch
        {
            "--syn" or "--tcp-flags" => "flags",
            "--sports" or "--dports" or "--ports" => "ports",
            _ => name,
        };
        if (!m.SeenOptions.Add(key))
        {
            return Fail(option, key switch
            {
                "flags" => "only one of --syn or --tcp-flags per match",
                "ports" => "multiport takes one of --sports, --dports or --ports per match",
                _ => $"option '{option.Text}' given twice in one match",
            });
        }
        Token value;
        string error;
        switch (name)
        {
            case "--sport" or "--dport":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParsePortRange(value.Text, out PortRange range, out error))
                    return Fail(value, error);
                if (name == "--sport")
                    (m.HasSport, m.SportInvert, m.Sport) = (true, negated, range);
                else
                    (m.HasDport, m.DportInvert, m.Dport) = (true, negated, range);
                return true;
            }
            case "--syn":
                // libxt_tcp: --syn is --tcp-flags SYN,RST,ACK,FIN SYN.
                (m.HasFlags, m.FlagsInvert, m.FlagMask, m.FlagComp) = (true, negated, 0x17, 0x02);
                return true;
            case "--tcp-flags":
            {
                if (!Value(options, ref k, option, out Token maskToken) || !Value(options, ref k, option, out Token compToken))
                    return false;
                if (!ValueParsers.TryParseTcpFlags(maskToken.Text, out byte mask, out error))
                    return Fail(maskToken, error);
                if (!ValueParsers.TryParseTcpFlags(compToken.Text, out byte comp, out error))
                    return Fail(compToken, error);
                (m.HasFlags, m.FlagsInvert, m.FlagMask, m.FlagComp) = (true, negated, mask, comp);
                return true;
            }
            case "--icmp-type" or "--icmpv6-type":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParseIcmpType(value.Text, m.Kind == MatchKind.Icmp6, out m.IcmpType, out m.IcmpCodeMin, out m.IcmpCodeMax, out error))
                    return Fail(value, error);
                m.HasIcmp = true;
                m.IcmpInvert = negated;
                return true;
            }
            case "--sports" or "--dports" or "--ports":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParseMultiport(option.Text, value.Text, m.Ports, out error))
                    return Fail(value, error);
                m.HasPorts = true;
                m.PortsInvert = negated;
                m.PortsMode = name switch { "--sports" => MultiportMode.Source, "--dports" => MultiportMode.Destination, _ => MultiportMode.Either };
                return true;
            }
            case "--state" or "--ctstate":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParseStates(value.Text, conntrack: name == "--ctstate", out m.States, out error))
                    return Fail(value, error);
                m.HasState = true;
                m.StateInvert = negated;
                return true;
            }
            case "--ctdir":
            {
                if (!NoNegation(negated, option) || !Value(options, ref k, option, out value))
                    return false;
                if (string.Equals(value.Text, "ORIGINAL", StringComparison.OrdinalIgnoreCase))
                    m.Direction = CtDirection.Original;
                else if (string.Equals(value.Text, "REPLY", StringComparison.OrdinalIgnoreCase))
                    m.Direction = CtDirection.Reply;
                else
                    return Fail(value, $"bad --ctdir '{value.Text}'; expected ORIGINAL or REPLY");
                m.HasDirection = true;
                return true;
            }
            case "--mark":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParseMark(value.Text, out m.Mark, out m.MarkMask, out error))
                    return Fail(value, error);
                m.HasMark = true;
                m.MarkInvert = negated;
                return true;
            }
            case "--helper":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                // xt_helper_info.name is 30 bytes with its NUL.
                if (value.Text.Length > 29)
                    return Fail(value, $"helper name is {value.Text.Length} characters long; 29 at most");
                m.HasHelper = true;
                m.HelperInvert = negated;
                m.HelperName = value.Text;
                if (value.Text.Length > 0 && HelperMask(value.Text) == 0)
                {
                    Warning(value.Column, $"no connection can have helper '{value.Text}': ctfw's helpers are {CtHelpers.Known}, "
                        + $"so this match {(negated ? "always matches a connection with a master" : "never matches")}");
                }
                return true;
            }
            case "--comment":
            {
                if (!NoNegation(negated, option) || !Value(options, ref k, option, out value))
                    return false;
                if (value.Text.Length > 255)
                    return Fail(value, $"comment is {value.Text.Length} characters long; 255 at most");
                m.Comment = value.Text;
                return true;
            }
        }
        return Fail(option, $"unknown option '{option.Text}'");
    }

    private bool ParseTargetOption(RuleDraft rule, List<Token> options, ref int k, Token option, string name, bool negated)
    {
        if (!NoNegation(negated, option))
            return false;
        if (!rule.TargetOptions.Add(name))
            return Fail(option, $"option '{option.Text}' given twice");
        Token value;
        string error;
        switch (name)
        {
            case "--log-prefix":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                string prefix = value.Text;
                if (prefix.Length == 0)
                    return Fail(value, "--log-prefix needs at least 1 character");
                if (prefix.Contains('\n', StringComparison.Ordinal))
                    return Fail(value, "newlines are not allowed in --log-prefix");
                if (prefix.Length > LogOptions.MaxPrefixLength)
                {
                    prefix = prefix[..LogOptions.MaxPrefixLength];
                    Warning(value.Column, $"log prefix is {value.Text.Length} characters; truncated to {LogOptions.MaxPrefixLength} as iptables does: \"{prefix}\"");
                }
                rule.Log = rule.Log! with { Prefix = prefix };
                return true;
            }
            case "--log-level":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParseLogLevel(value.Text, out byte level, out error))
                    return Fail(value, error);
                rule.Log = rule.Log! with { Level = level };
                return true;
            }
            case "--log-tcp-sequence":
                rule.Log = rule.Log! with { Flags = rule.Log.Flags | LogFlags.TcpSequence };
                return true;
            case "--log-tcp-options":
                rule.Log = rule.Log! with { Flags = rule.Log.Flags | LogFlags.TcpOptions };
                return true;
            case "--log-ip-options":
                rule.Log = rule.Log! with { Flags = rule.Log.Flags | LogFlags.IpOptions };
                return true;
            case "--helper":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!CtHelpers.TryParse(value.Text, out CtHelper helper, out byte protocol))
                    return Fail(value, $"unknown helper '{value.Text}'; ctfw has {CtHelpers.Known}");
                rule.Helper = helper;
                rule.HelperProtocol = protocol;
                rule.HelperToken = value;
                return true;
            }
            case "--notrack" or "--zone" or "--zone-orig" or "--zone-reply" or "--ctevents" or "--expevents" or "--timeout":
                return Fail(option, $"CT option '{option.Text}' is not supported; ctfw's CT takes only --helper ftp or --helper tftp");
            case "--reject-with":
            {
                if (!Value(options, ref k, option, out value))
                    return false;
                if (!ValueParsers.TryParseRejectWith(value.Text, out RejectWith kind, out error))
                    return Fail(value, error);
                if (!Narrow(rule, kind.Family(), value, $"'--reject-with {value.Text}'"))
                    return false;
                rule.RejectWith = kind;
                rule.RejectToken = value;
                return true;
            }
        }
        return Fail(option, $"unknown option '{option.Text}'");
    }

    // ---- helpers ----

    private bool Narrow(RuleDraft rule, RuleFamily family, Token at, string what)
    {
        RuleFamily next = rule.Family & family;
        if (next == RuleFamily.None)
        {
            return Fail(at, $"{what} needs {Name(family)}, but this rule is {Name(rule.Family)}-only because of {rule.FamilyReason}");
        }
        if (next != rule.Family)
        {
            rule.Family = next;
            rule.FamilyReason = what;
        }
        return true;

        static string Name(RuleFamily f) => f == RuleFamily.IPv4 ? "IPv4" : "IPv6";
    }

    private bool Value(List<Token> options, ref int k, Token option, out Token value)
    {
        if (k < options.Count)
        {
            value = options[k++];
            return true;
        }
        value = default;
        return Fail(option, $"option '{option.Text}' needs a value");
    }

    private bool Once(bool alreadySet, Token option) =>
        !alreadySet || Fail(option, $"option '{option.Text}' given twice");

    private bool NoNegation(bool negated, Token option) =>
        !negated || Fail(option, $"'!' cannot negate '{option.Text}'");

    private bool Fail(Token at, string message)
    {
        Error(at.Column, message);
        return false;
    }

    private void Error(int column, string message) => ErrorAt(_line, column, message);

    private void ErrorAt(int line, int column, string message)
    {
        if (_errors.Count < MaxErrors)
            _errors.Add(new RuleError(_file, line, column, message));
    }

    private void Warning(int column, string message) => _warnings.Add(new RuleError(_file, _line, column, message));

    /// <summary>A word as it would be written back into a rules file.</summary>
    private static string Requote(Token t)
    {
        bool plain = t.Text.Length > 0 && !t.Text.Any(c => c is ' ' or '\t' or '"' or '\\' or '\'');
        return plain && !(t.Quoted && t.Text == "!") ? t.Text : Tokenizer.Quote(t.Text);
    }
}
