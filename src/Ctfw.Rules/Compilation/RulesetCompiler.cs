using Ctfw.Packets;
using Ctfw.Rules.Parsing;

namespace Ctfw.Rules.Compilation;

/// <summary>The compiled, immutable part of a <see cref="Ruleset"/>.</summary>
internal sealed class CompiledTable
{
    public required CompiledRule[] Entries { get; init; }
    public required CompiledMatch[] Matches { get; init; }
    public required PortRange[] Ports { get; init; }
    /// <summary>Per hook (<see cref="Hook"/> value): the first entry of the built-in chain; only the table's own hooks are set.</summary>
    public required int[] HookEntry { get; init; }
    /// <summary>Per hook: the chain's end entry (its policy), where RETURN with an empty stack goes.</summary>
    public required int[] Underflow { get; init; }
    public required RuleInfo[] Rules { get; init; }
    public required ChainInfo[] Chains { get; init; }
    public required (long Packets, long Bytes)[] InitialCounters { get; init; }
    public RuleTable Kind { get; init; }
    /// <summary>The table has no rule and every built-in chain's policy is ACCEPT: evaluating it changes nothing.</summary>
    public bool PassThrough { get; init; }
    public int MaxCallDepth { get; init; }
    public int MaxSteps { get; init; }
}

/// <summary>
/// Turns a parsed table into flat arrays: resolves jumps to entry indexes, rejects jumps to missing or
/// built-in chains and loops (A → B → A, as the kernel's <c>mark_source_chains</c> does with ELOOP),
/// and computes the deepest call chain and the most entries one packet can visit, so evaluation is
/// provably bounded.
/// </summary>
internal static class RulesetCompiler
{
    /// <summary>Jump depth limit; the kernel sizes its jump stack by the number of user chains, we fix it.</summary>
    public const int MaxCallDepth = 64;

    public static CompiledTable? Compile(TableDraft table, string file, List<RuleError> errors)
    {
        // ---- resolve jumps ----
        foreach (ChainDraft chain in table.Chains)
        {
            foreach (RuleDraft rule in chain.Rules)
            {
                if (rule.JumpChain is not string name)
                    continue;
                if (!table.ByName.TryGetValue(name, out ChainDraft? target))
                {
                    string hint = name.ToUpperInvariant() is "ACCEPT" or "DROP" or "REJECT" or "LOG" or "RETURN"
                        ? $"; did you mean '{name.ToUpperInvariant()}'?"
                        : $"; declare it with ':{name} - [0:0]'";
                    errors.Add(new RuleError(file, rule.Line, rule.TargetToken.Column, $"jump to missing chain '{name}'{hint}"));
                }
                else if (target.Builtin is not null)
                {
                    errors.Add(new RuleError(file, rule.Line, rule.TargetToken.Column, $"cannot jump to built-in chain '{name}'; jumps go to user-defined chains"));
                }
            }
        }
        if (errors.Count > 0)
            return null;

        // ---- loops (goto edges count: A -g B, B -g A never ends either) ----
        var state = new Dictionary<string, int>(StringComparer.Ordinal); // 0 new, 1 on stack, 2 done
        var path = new List<string>();
        foreach (ChainDraft chain in table.Chains)
        {
            if (FindLoop(table, chain, state, path, file, errors))
                return null;
        }

        // ---- depth and step bounds (memoised over the now acyclic graph) ----
        var depth = new Dictionary<string, int>(StringComparer.Ordinal);
        var steps = new Dictionary<string, long>(StringComparer.Ordinal);
        int maxDepth = 0;
        long maxSteps = 0;
        foreach (ChainDraft chain in table.Chains)
        {
            if (chain.Builtin is null)
                continue;
            int d = Depth(table, chain, depth);
            if (d > MaxCallDepth)
            {
                errors.Add(new RuleError(file, chain.Line, chain.Column, $"chain '{chain.Name}' nests jumps {d} deep; at most {MaxCallDepth} are allowed"));
                return null;
            }
            maxDepth = Math.Max(maxDepth, d);
            maxSteps = Math.Max(maxSteps, Steps(table, chain, steps));
        }

        // ---- layout: built-ins first (in the table's order: they were created first), then user chains in declaration order ----
        var ordered = table.Chains.Where(c => c.Builtin is not null)
            .Concat(table.Chains.Where(c => c.Builtin is null)).ToList();
        var entries = new List<CompiledRule>();
        var matches = new List<CompiledMatch>();
        var ports = new List<PortRange>();
        var rules = new List<RuleInfo>();
        var chains = new List<ChainInfo>();
        var counters = new List<(long, long)>();
        var chainStart = new Dictionary<string, int>(StringComparer.Ordinal);
        var fixups = new List<(int Entry, string Chain)>();
        const int hooks = (int)Hook.PreRouting + 1;
        int[] hookEntry = new int[hooks], underflow = new int[hooks];
        var policyCounters = new (long, long)[hooks];

        foreach (ChainDraft chain in ordered)
        {
            chainStart[chain.Name] = entries.Count;
            int firstRule = rules.Count;
            if (chain.Builtin is Hook h)
                hookEntry[(int)h] = entries.Count;
            foreach (RuleDraft draft in chain.Rules)
            {
                int matchStart = matches.Count;
                foreach (MatchDraft m in draft.Matches)
                {
                    if (m.Kind != MatchKind.Comment)
                        matches.Add(CompileMatch(m, ports));
                }
                int matchEnd = matches.Count;
                List<AddressSpec?> sources = draft.Sources.Count == 0 ? [null] : draft.Sources.Select(a => (AddressSpec?)a).ToList();
                List<AddressSpec?> destinations = draft.Destinations.Count == 0 ? [null] : draft.Destinations.Select(a => (AddressSpec?)a).ToList();
                foreach (AddressSpec? src in sources)
                {
                    foreach (AddressSpec? dst in destinations)
                    {
                        CompiledRule r = CompileHeader(draft, src, dst);
                        r.MatchStart = matchStart;
                        r.MatchEnd = matchEnd;
                        r.RuleIndex = rules.Count;
                        r.Slot = rules.Count;
                        if (draft.JumpChain is not null)
                            fixups.Add((entries.Count, draft.JumpChain));
                        entries.Add(r);
                        rules.Add(new RuleInfo(rules.Count, chain.Name, draft.Line, Text(draft, src, dst), draft.Target,
                            draft.JumpChain, draft.RejectWith, draft.Log, draft.Family, draft.Comments.FirstOrDefault(), table.Kind, draft.Helper));
                        counters.Add(((long)draft.Packets, (long)draft.Bytes));
                    }
                }
            }
            var end = new CompiledRule { Family = RuleFamily.Both, Slot = -1, RuleIndex = -1, Op = RuleOp.Return };
            if (chain.Builtin is Hook hook)
            {
                end.Op = chain.Policy == Verdict.Accept ? RuleOp.PolicyAccept : RuleOp.PolicyDrop;
                end.Slot = (int)hook; // rebased below, after the rules
                underflow[(int)hook] = entries.Count;
                policyCounters[(int)hook] = ((long)chain.Packets, (long)chain.Bytes);
            }
            entries.Add(end);
            chains.Add(new ChainInfo(chain.Name, chain.Builtin, chain.Builtin is null ? null : chain.Policy, firstRule, rules.Count - firstRule, chain.Line, table.Kind));
        }

        CompiledRule[] array = entries.ToArray();
        foreach ((int entry, string target) in fixups)
            array[entry].Target = chainStart[target];
        for (int i = 0; i < array.Length; i++)
        {
            if (array[i].Op is RuleOp.PolicyAccept or RuleOp.PolicyDrop)
                array[i].Slot += rules.Count;
        }
        counters.AddRange(policyCounters);

        return new CompiledTable
        {
            Entries = array,
            Matches = matches.ToArray(),
            Ports = ports.ToArray(),
            HookEntry = hookEntry,
            Underflow = underflow,
            Rules = rules.ToArray(),
            Chains = chains.ToArray(),
            InitialCounters = counters.ToArray(),
            MaxCallDepth = maxDepth,
            Kind = table.Kind,
            PassThrough = rules.Count == 0 && table.Chains.All(c => c.Builtin is null || c.Policy == Verdict.Accept),
            MaxSteps = (int)Math.Min(maxSteps, int.MaxValue - 1),
        };
    }

    private static string Text(RuleDraft draft, AddressSpec? src, AddressSpec? dst)
    {
        if (draft.Sources.Count <= 1 && draft.Destinations.Count <= 1)
            return string.Join(' ', draft.Words);
        var words = new List<string>(draft.Words);
        if (src is AddressSpec s && draft.SourceWord >= 0)
            words[draft.SourceWord] = s.Text;
        if (dst is AddressSpec d && draft.DestinationWord >= 0)
            words[draft.DestinationWord] = d.Text;
        return string.Join(' ', words);
    }

    private static CompiledRule CompileHeader(RuleDraft d, AddressSpec? src, AddressSpec? dst)
    {
        var r = new CompiledRule { Family = d.Family };
        HeaderChecks c = HeaderChecks.None;
        if (d.HasProtocol && (d.Protocol != 0 || d.ProtocolInvert))
        {
            c |= HeaderChecks.Protocol | (d.ProtocolInvert ? HeaderChecks.ProtocolInvert : 0);
            r.Protocol = d.Protocol;
        }
        if (src is AddressSpec s)
        {
            c |= HeaderChecks.Source | (d.SourceInvert ? HeaderChecks.SourceInvert : 0);
            (r.Source, r.SourceMask) = (s.Address, s.Mask);
        }
        if (dst is AddressSpec t)
        {
            c |= HeaderChecks.Destination | (d.DestinationInvert ? HeaderChecks.DestinationInvert : 0);
            (r.Destination, r.DestinationMask) = (t.Address, t.Mask);
        }
        if (d.HasIn)
        {
            c |= HeaderChecks.In | (d.InInvert ? HeaderChecks.InInvert : 0);
            (r.In, r.InMask) = (d.In, d.InMask);
        }
        if (d.HasOut)
        {
            c |= HeaderChecks.Out | (d.OutInvert ? HeaderChecks.OutInvert : 0);
            (r.Out, r.OutMask) = (d.Out, d.OutMask);
        }
        if (d.HasFragment)
            c |= HeaderChecks.Fragment | (d.FragmentInvert ? HeaderChecks.FragmentInvert : 0);
        r.Checks = c;
        r.RejectWith = d.RejectWith;
        r.Helper = d.Helper;
        r.Op = d.Target switch
        {
            RuleTarget.Accept => RuleOp.Accept,
            RuleTarget.Drop => RuleOp.Drop,
            RuleTarget.Reject => RuleOp.Reject,
            RuleTarget.Log => RuleOp.Log,
            RuleTarget.Return => RuleOp.Return,
            RuleTarget.Jump => RuleOp.Jump,
            RuleTarget.Goto => RuleOp.Goto,
            RuleTarget.Ct => RuleOp.Ct,
            _ => RuleOp.Continue,
        };
        return r;
    }

    private static CompiledMatch CompileMatch(MatchDraft m, List<PortRange> ports)
    {
        var c = new CompiledMatch { Kind = m.Kind };
        MatchFlags f = MatchFlags.None;
        switch (m.Kind)
        {
            case MatchKind.Tcp or MatchKind.Udp:
                if (m.HasSport)
                    f |= MatchFlags.Sport | (m.SportInvert ? MatchFlags.SportInvert : 0);
                if (m.HasDport)
                    f |= MatchFlags.Dport | (m.DportInvert ? MatchFlags.DportInvert : 0);
                if (m.HasFlags)
                    f |= MatchFlags.TcpFlags | (m.FlagsInvert ? MatchFlags.TcpFlagsInvert : 0);
                (c.SportMin, c.SportMax, c.DportMin, c.DportMax) = m.HasSport || m.HasDport
                    ? (m.HasSport ? m.Sport.Min : (ushort)0, m.HasSport ? m.Sport.Max : ushort.MaxValue,
                       m.HasDport ? m.Dport.Min : (ushort)0, m.HasDport ? m.Dport.Max : ushort.MaxValue)
                    : ((ushort)0, ushort.MaxValue, (ushort)0, ushort.MaxValue);
                (c.FlagMask, c.FlagComp) = (m.FlagMask, m.FlagComp);
                break;
            case MatchKind.Icmp or MatchKind.Icmp6:
                if (m.IcmpInvert)
                    f |= MatchFlags.Invert;
                if (m.Kind == MatchKind.Icmp && m.IcmpType == 0xFF)
                    f |= MatchFlags.IcmpAny;
                (c.IcmpType, c.IcmpCodeMin, c.IcmpCodeMax) = (m.IcmpType, m.IcmpCodeMin, m.IcmpCodeMax);
                break;
            case MatchKind.Multiport:
                if (m.PortsInvert)
                    f |= MatchFlags.Invert;
                c.PortsMode = m.PortsMode;
                c.PortsStart = ports.Count;
                ports.AddRange(m.Ports);
                c.PortsEnd = ports.Count;
                break;
            case MatchKind.State or MatchKind.Conntrack:
                if (m.HasState)
                    f |= MatchFlags.State | (m.StateInvert ? MatchFlags.Invert : 0);
                if (m.HasDirection)
                    f |= MatchFlags.Direction | (m.Direction == Ctfw.Conntrack.CtDirection.Reply ? MatchFlags.DirectionReply : 0);
                c.States = m.States;
                break;
            case MatchKind.Mark:
                if (m.MarkInvert)
                    f |= MatchFlags.Invert;
                (c.Mark, c.MarkMask) = (m.Mark, m.MarkMask);
                break;
            case MatchKind.Helper:
                if (m.HelperInvert)
                    f |= MatchFlags.Invert;
                c.HelperMask = RulesetParser.HelperMask(m.HelperName);
                break;
        }
        c.Flags = f;
        return c;
    }

    private static IEnumerable<(RuleDraft Rule, ChainDraft Target)> Calls(TableDraft table, ChainDraft chain)
    {
        foreach (RuleDraft rule in chain.Rules)
        {
            if (rule.JumpChain is string name)
                yield return (rule, table.ByName[name]);
        }
    }

    private static bool FindLoop(TableDraft table, ChainDraft chain, Dictionary<string, int> state, List<string> path,
        string file, List<RuleError> errors)
    {
        state.TryGetValue(chain.Name, out int s);
        if (s == 2)
            return false;
        state[chain.Name] = 1;
        path.Add(chain.Name);
        foreach ((RuleDraft rule, ChainDraft target) in Calls(table, chain))
        {
            state.TryGetValue(target.Name, out int t);
            if (t == 1)
            {
                int from = path.IndexOf(target.Name);
                string cycle = string.Join(" -> ", path.Skip(from).Append(target.Name));
                errors.Add(new RuleError(file, rule.Line, rule.TargetToken.Column, $"loop between chains: {cycle}"));
                return true;
            }
            if (t == 0 && FindLoop(table, target, state, path, file, errors))
                return true;
        }
        path.RemoveAt(path.Count - 1);
        state[chain.Name] = 2;
        return false;
    }

    /// <summary>Deepest jump stack below this chain: -j pushes a return point, -g does not.</summary>
    private static int Depth(TableDraft table, ChainDraft chain, Dictionary<string, int> memo)
    {
        if (memo.TryGetValue(chain.Name, out int d))
            return d;
        d = 0;
        foreach ((RuleDraft rule, ChainDraft target) in Calls(table, chain))
            d = Math.Max(d, Depth(table, target, memo) + (rule.Target == RuleTarget.Jump ? 1 : 0));
        memo[chain.Name] = d;
        return d;
    }

    /// <summary>Most entries a packet can visit from this chain's start (its entries plus every callee's), saturating.</summary>
    private static long Steps(TableDraft table, ChainDraft chain, Dictionary<string, long> memo)
    {
        if (memo.TryGetValue(chain.Name, out long n))
            return n;
        long rulesHere = chain.Rules.Sum(r => (long)Math.Max(1, r.Sources.Count) * Math.Max(1, r.Destinations.Count));
        n = rulesHere + 1;
        foreach ((RuleDraft rule, ChainDraft target) in Calls(table, chain))
        {
            long expansions = (long)Math.Max(1, rule.Sources.Count) * Math.Max(1, rule.Destinations.Count);
            n = Math.Min(n + expansions * Steps(table, target, memo), int.MaxValue);
        }
        memo[chain.Name] = n;
        return n;
    }
}
