using Ctfw.Conntrack;

namespace Ctfw.Rules;

/// <summary>
/// A loaded rule, for listings, stats and LOG. A rule line with address lists (`-s a,b`) becomes one
/// rule per address pair, as iptables expands it, each with its own counters.
/// </summary>
public sealed class RuleInfo
{
    internal RuleInfo(int index, string chain, int line, string text, RuleTarget target, string? targetChain,
        RejectWith rejectWith, LogOptions? log, RuleFamily family, string? comment, RuleTable table = RuleTable.Filter, CtHelper helper = CtHelper.None)
    {
        Table = table;
        Helper = helper;
        Index = index;
        Chain = chain;
        Line = line;
        Text = text;
        Target = target;
        TargetChain = targetChain;
        RejectWith = rejectWith;
        Log = log;
        Family = family;
        Comment = comment;
    }

    /// <summary>
    /// Position in its table's rules: <see cref="Ruleset.Rules"/> (and verdicts' <see cref="RuleVerdict.Rule"/>)
    /// for the filter table, <see cref="RawTable.Rules"/> for the raw table.
    /// </summary>
    public int Index { get; }
    public string Chain { get; }
    /// <summary>Line of the rules file.</summary>
    public int Line { get; }
    /// <summary>The rule's words after "-A CHAIN", as they would be written back.</summary>
    public string Text { get; }
    public RuleTarget Target { get; }
    /// <summary>For <see cref="RuleTarget.Jump"/> and <see cref="RuleTarget.Goto"/>.</summary>
    public string? TargetChain { get; }
    /// <summary>For <see cref="RuleTarget.Reject"/>.</summary>
    public RejectWith RejectWith { get; }
    /// <summary>For <see cref="RuleTarget.Log"/>.</summary>
    public LogOptions? Log { get; }
    public RuleFamily Family { get; }
    public string? Comment { get; }
    public RuleTable Table { get; }
    /// <summary>For <see cref="RuleTarget.Ct"/>: the helper `--helper` names.</summary>
    public CtHelper Helper { get; }

    public override string ToString() => Table == RuleTable.Raw ? $"-t raw -A {Chain} {Text}" : $"-A {Chain} {Text}";
}

/// <summary>A chain of the loaded ruleset.</summary>
public sealed class ChainInfo
{
    internal ChainInfo(string name, Hook? builtin, Verdict? policy, int firstRule, int ruleCount, int line, RuleTable table = RuleTable.Filter)
    {
        Table = table;
        Name = name;
        Builtin = builtin;
        Policy = policy;
        FirstRule = firstRule;
        RuleCount = ruleCount;
        Line = line;
    }

    public string Name { get; }
    /// <summary>The hook of a built-in chain; null for a user chain.</summary>
    public Hook? Builtin { get; }
    /// <summary>ACCEPT or DROP for built-in chains; null for user chains.</summary>
    public Verdict? Policy { get; }
    /// <summary>The chain's rules are its table's rules (<see cref="Ruleset.Rules"/>, <see cref="RawTable.Rules"/>)[FirstRule .. FirstRule + RuleCount).</summary>
    public int FirstRule { get; }
    public int RuleCount { get; }
    /// <summary>Line of the declaration; for undeclared built-ins, the table's line (*filter, *raw).</summary>
    public int Line { get; }
    public RuleTable Table { get; }
}
