using Ctfw.Conntrack;
using Ctfw.Rules;

namespace Ctfw.Firewall;

/// <summary>What the firewall does with the packet.</summary>
public enum FirewallVerdict : byte
{
    Accept = 0,
    Drop = 1,
    /// <summary>Drop, and answer with <see cref="FirewallPipeline.Reply"/> when its length is not 0.</summary>
    Reject = 2,
}

/// <summary>Why the verdict is what it is.</summary>
public enum DecisionCause : byte
{
    // The first five have the values of Ctfw.Rules.VerdictReason, so the evaluator's reason converts by a cast.
    /// <summary>A rule's ACCEPT/DROP/REJECT (<see cref="FirewallDecision.Rule"/>).</summary>
    Rule = VerdictReason.Rule,
    /// <summary>The hook's built-in chain policy.</summary>
    Policy = VerdictReason.Policy,
    /// <summary>A match needed an L4 header the packet lacks (the kernel's hotdrop).</summary>
    HotDrop = VerdictReason.HotDrop,
    /// <summary>Conntrack dropped it before any rule (table full, reopen race) or it was not filterable.</summary>
    NotFiltered = VerdictReason.NotFiltered,
    /// <summary>The evaluator's step or call budget ran out (cannot happen for a ruleset that loaded): dropped.</summary>
    RulesOverflow = VerdictReason.Overflow,
    /// <summary>Accepted by the rules, but another packet of the same new flow was confirmed first (insert clash).</summary>
    ConfirmClash,
    /// <summary>The transport handed over no packet bytes: accepted unless fail-closed.</summary>
    NoPayload,
    /// <summary>Taken at a hook without a filter chain (PRE_ROUTING/POST_ROUTING): tracked and accepted.</summary>
    NoFilterHook,
}

/// <summary>
/// The outcome of <see cref="FirewallPipeline.Decide"/> for one packet: the verdict, what decided it
/// (rule index or policy), conntrack's classification and what the rules were shown.
/// </summary>
public struct FirewallDecision
{
    public FirewallVerdict Verdict;
    public DecisionCause Cause;
    /// <summary>
    /// Index of the deciding rule in its table's rules (<see cref="Ruleset.Rules"/>, or
    /// <see cref="RawTable.Rules"/> when <see cref="Table"/> is raw); −1 for a policy or no rule.
    /// </summary>
    public int Rule;
    /// <summary>The built-in chain the packet entered (its policy decided when <see cref="Cause"/> is Policy).</summary>
    public Hook Chain;
    /// <summary>The table that decided: raw for a packet the raw table dropped (never tracked), else filter.</summary>
    public RuleTable Table;
    /// <summary>The hook had a chain that decided (filter, or a raw DROP), so <see cref="Chain"/> means something.</summary>
    public bool Filtered;
    /// <summary>Conntrack's classification (after confirm or abort).</summary>
    public Classification Conntrack;
    /// <summary>The ctstate the rules saw: the kernel's in shadow mode unless ctfw enforces, else ctfw's.</summary>
    public CtState RuleState;
    /// <summary>Shadow mode: the kernel's answer differed from ctfw's.</summary>
    public bool Disagreed;
    /// <summary>Bytes of <see cref="FirewallPipeline.Reply"/> to send for a REJECT (0: none, as the kernel sends none).</summary>
    public int ReplyLength;
    /// <summary>REJECT with: the kind of answer.</summary>
    public RejectWith RejectWith;

    /// <summary><c>CHAIN:N</c> (1-based position in its chain, as <c>iptables -L --line-numbers</c>) or <c>CHAIN:policy</c>; "-" when no chain decided.</summary>
    public readonly string Describe(Ruleset rules)
    {
        if (Table == RuleTable.Raw && rules.Raw is { } raw)
        {
            // raw:PREROUTING:1, raw:OUTPUT:policy, raw:PREROUTING:2:hotdrop
            string what = Cause switch
            {
                DecisionCause.Rule when (uint)Rule < (uint)raw.Rules.Count => RuleName(raw.Chains, raw.Rules, Rule),
                DecisionCause.HotDrop when (uint)Rule < (uint)raw.Rules.Count => RuleName(raw.Chains, raw.Rules, Rule) + ":hotdrop",
                DecisionCause.Policy => $"{ChainName(Chain)}:policy",
                DecisionCause.RulesOverflow => "rules-overflow",
                _ => "-",
            };
            return "raw:" + what;
        }
        if (Cause == DecisionCause.Rule && (uint)Rule < (uint)rules.Rules.Count)
            return RuleName(rules, Rule);
        if (Cause == DecisionCause.Policy && Filtered)
            return $"{ChainName(Chain)}:policy";
        return Cause switch
        {
            DecisionCause.HotDrop when (uint)Rule < (uint)rules.Rules.Count => RuleName(rules, Rule) + ":hotdrop",
            DecisionCause.HotDrop => "hotdrop",
            DecisionCause.NotFiltered => "conntrack",
            DecisionCause.RulesOverflow => "rules-overflow",
            DecisionCause.ConfirmClash => "confirm-clash",
            DecisionCause.NoPayload => "no-payload",
            DecisionCause.NoFilterHook => "no-filter-hook",
            _ => "-",
        };
    }

    /// <summary><c>CHAIN:N</c> for rule <paramref name="index"/>: N counts the chain's rules from 1, as <c>iptables -L --line-numbers</c>.</summary>
    public static string RuleName(Ruleset rules, int index) => RuleName(rules.Chains, rules.Rules, index);

    private static string RuleName(IReadOnlyList<ChainInfo> chains, IReadOnlyList<RuleInfo> rules, int index)
    {
        RuleInfo rule = rules[index];
        foreach (ChainInfo chain in chains)
        {
            if (chain.Name == rule.Chain)
                return $"{chain.Name}:{index - chain.FirstRule + 1}";
        }
        return $"{rule.Chain}:?";
    }

    public static string ChainName(Hook hook) => hook switch
    {
        Hook.Input => "INPUT",
        Hook.Forward => "FORWARD",
        Hook.Output => "OUTPUT",
        Hook.PreRouting => "PREROUTING",
        _ => "?",
    };
}
