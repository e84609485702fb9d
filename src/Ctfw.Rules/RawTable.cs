using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules.Compilation;

namespace Ctfw.Rules;

/// <summary>
/// The `*raw` table of a <see cref="Ruleset"/>: PREROUTING for packets that arrive, OUTPUT for
/// locally generated ones, evaluated before conntrack. Its one job here is `CT --helper`, the
/// kernel's way to give a new connection a conntrack helper; ACCEPT, DROP, RETURN, jumps and gotos
/// work as in the filter table. Immutable except for its counters, like the ruleset it belongs to.
/// </summary>
public sealed class RawTable
{
    private readonly CompiledTable _table;
    private readonly CounterShards _counters;

    internal RawTable(CompiledTable table)
    {
        _table = table;
        _counters = new CounterShards(table.InitialCounters.Length);
        for (int i = 0; i < table.InitialCounters.Length; i++)
            _counters.Seed(i, table.InitialCounters[i].Packets, table.InitialCounters[i].Bytes);
        var helpers = new List<CtHelper>();
        foreach (RuleInfo rule in table.Rules)
        {
            if (rule.Target == RuleTarget.Ct && !helpers.Contains(rule.Helper))
                helpers.Add(rule.Helper);
        }
        Helpers = helpers;
    }

    internal CompiledTable Table => _table;
    internal CounterShards Counters => _counters;

    /// <summary>Every rule, PREROUTING's, OUTPUT's, then the user chains' (indexes are the raw table's own).</summary>
    public IReadOnlyList<RuleInfo> Rules => _table.Rules;
    public IReadOnlyList<ChainInfo> Chains => _table.Chains;
    /// <summary>The helpers the table's `CT --helper` rules name, in order of first appearance.</summary>
    public IReadOnlyList<CtHelper> Helpers { get; }
    /// <summary>No rule and ACCEPT policies: every packet comes out as it went in, so callers skip the table.</summary>
    public bool PassThrough => _table.PassThrough;

    /// <summary>The built-in chain's policy (<see cref="Hook.PreRouting"/> or <see cref="Hook.Output"/>).</summary>
    public Verdict Policy(Hook hook)
    {
        CheckHook(hook);
        return _table.Entries[_table.Underflow[(int)hook]].Op == RuleOp.PolicyAccept ? Verdict.Accept : Verdict.Drop;
    }

    public PacketCounters GetCounters(int ruleIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ruleIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(ruleIndex, _table.Rules.Length);
        return _counters.Read(ruleIndex);
    }

    /// <summary>Packets and bytes the built-in chain's policy decided.</summary>
    public PacketCounters GetPolicyCounters(Hook hook)
    {
        CheckHook(hook);
        return _counters.Read(_table.Rules.Length + (int)hook);
    }

    private static void CheckHook(Hook hook)
    {
        if (hook is not (Hook.PreRouting or Hook.Output))
            throw new ArgumentOutOfRangeException(nameof(hook), hook, "the raw table's chains are PREROUTING and OUTPUT");
    }

    /// <summary>
    /// Runs the packet through raw PREROUTING (<see cref="PacketFacts.Hook"/> = <see cref="Hook.PreRouting"/>)
    /// or raw OUTPUT (<see cref="Hook.Output"/>) as <c>ipt_do_table</c> does, with xt_CT's rule for
    /// `CT --helper`: it continues, and only the first CT a packet meets counts (the kernel's
    /// target ignores a packet that already carries a template). The helper comes back with
    /// ACCEPT (a rule's or the policy's); a DROP drops the packet before conntrack sees it.
    /// A packet with no usable IP header, or another hook, passes untouched (<see cref="VerdictReason.NotFiltered"/>).
    /// No allocation, no locks, no exceptions; bounded like the filter table.
    /// </summary>
    public RawVerdict Evaluate(in PacketFacts facts)
    {
        ref readonly ParsedPacket p = ref facts.Packet;
        if (facts.Hook is not (Hook.PreRouting or Hook.Output) || !Ruleset.IsFilterable(p, facts.ParseResult))
            return new RawVerdict(Verdict.Accept, CtHelper.None, -1, VerdictReason.NotFiltered);

        RuleFamily family = p.IpVersion == 4 ? RuleFamily.IPv4 : RuleFamily.IPv6;
        long bytes = facts.Length > 0 ? facts.Length : p.IpTotalLength;
        // No state matches in raw (refused at load): the context's conntrack fields stay unset.
        var ctx = new Ruleset.MatchContext
        {
            Family = family,
            L4Available = Math.Max(0, p.CapturedLength - p.L3HeaderLength),
            Fragment = facts.IsNonFirstFragment,
        };

        CompiledTable table = _table;
        CompiledRule[] entries = table.Entries;
        int hook = (int)facts.Hook;
        int pc = table.HookEntry[hook];
        Span<int> stack = stackalloc int[RulesetCompiler.MaxCallDepth];
        int sp = 0;
        CtHelper helper = CtHelper.None;
        bool templated = false;
        for (int budget = table.MaxSteps + 1; budget > 0; budget--)
        {
            ref readonly CompiledRule r = ref entries[pc];
            if (!Ruleset.Matches(in r, table, in facts, in p, ref ctx))
            {
                if (ctx.HotDrop)
                    return new RawVerdict(Verdict.Drop, CtHelper.None, r.RuleIndex, VerdictReason.HotDrop);
                pc++;
                continue;
            }
            if (r.Slot >= 0)
                _counters.Add(r.Slot, bytes);
            switch (r.Op)
            {
                case RuleOp.Continue:
                    pc++;
                    break;
                case RuleOp.Ct:
                    // xt_ct_target: "Previously seen? Ignore." The first template stays.
                    if (!templated)
                    {
                        templated = true;
                        helper = r.Helper;
                    }
                    pc++;
                    break;
                case RuleOp.Accept:
                    return new RawVerdict(Verdict.Accept, helper, r.RuleIndex, VerdictReason.Rule);
                case RuleOp.Drop:
                    return new RawVerdict(Verdict.Drop, CtHelper.None, r.RuleIndex, VerdictReason.Rule);
                case RuleOp.Return:
                    pc = sp == 0 ? table.Underflow[hook] : stack[--sp];
                    break;
                case RuleOp.Jump:
                    if (sp == stack.Length)
                        return new RawVerdict(Verdict.Drop, CtHelper.None, r.RuleIndex, VerdictReason.Overflow);
                    stack[sp++] = pc + 1;
                    pc = r.Target;
                    break;
                case RuleOp.Goto:
                    pc = r.Target;
                    break;
                case RuleOp.PolicyAccept:
                    return new RawVerdict(Verdict.Accept, helper, -1, VerdictReason.Policy);
                default:
                    return new RawVerdict(Verdict.Drop, CtHelper.None, -1, VerdictReason.Policy);
            }
        }
        return new RawVerdict(Verdict.Drop, CtHelper.None, -1, VerdictReason.Overflow);
    }
}

/// <summary>The outcome of <see cref="RawTable.Evaluate"/>.</summary>
public readonly struct RawVerdict
{
    public RawVerdict(Verdict verdict, CtHelper helper, int rule, VerdictReason reason)
    {
        Verdict = verdict;
        Helper = helper;
        Rule = rule;
        Reason = reason;
    }

    /// <summary>ACCEPT (go on to conntrack) or DROP.</summary>
    public Verdict Verdict { get; }
    /// <summary>With ACCEPT: the helper of the first `CT --helper` the packet met, for <see cref="PacketContext.Helper"/>.</summary>
    public CtHelper Helper { get; }
    /// <summary>Index in <see cref="RawTable.Rules"/> of the rule that decided; −1 when a policy did.</summary>
    public int Rule { get; }
    public VerdictReason Reason { get; }
}
