namespace Ctfw.Rules;

/// <summary>The outcome of <see cref="Ruleset.Evaluate(in PacketFacts, Span{int})"/>.</summary>
public readonly struct RuleVerdict
{
    public RuleVerdict(Verdict verdict, RejectWith rejectWith, int rule, int logCount, VerdictReason reason)
    {
        Verdict = verdict;
        RejectWith = rejectWith;
        Rule = rule;
        LogCount = logCount;
        Reason = reason;
    }

    public Verdict Verdict { get; }
    /// <summary>For <see cref="Rules.Verdict.Reject"/>: the concrete kind (never <see cref="RejectWith.Default"/>).</summary>
    public RejectWith RejectWith { get; }
    /// <summary>Index in <see cref="Ruleset.Rules"/> of the rule that decided; −1 when a chain policy (or no rule) did.</summary>
    public int Rule { get; }
    /// <summary>LOG rules that matched, in order. May exceed the span given to Evaluate; the span holds the first ones.</summary>
    public int LogCount { get; }
    public VerdictReason Reason { get; }
}

/// <summary>Why evaluation ended.</summary>
public enum VerdictReason : byte
{
    /// <summary>A rule's ACCEPT/DROP/REJECT.</summary>
    Rule = 0,
    /// <summary>The built-in chain's policy (its end, or a RETURN with nothing to return to).</summary>
    Policy,
    /// <summary>
    /// A match had to read an L4 header that is not in the packet (the kernel's <c>hotdrop</c>:
    /// tcp/udp/icmp/multiport on a truncated first fragment, or a TCP fragment at offset 1).
    /// </summary>
    HotDrop,
    /// <summary>
    /// The packet never reaches the filter table in the kernel: unparseable IP header, or conntrack
    /// dropped it (<see cref="Ctfw.Conntrack.CtState.Dropped"/>).
    /// </summary>
    NotFiltered,
    /// <summary>The call stack or step budget ran out (cannot happen for a ruleset that loaded; kept as in the kernel).</summary>
    Overflow,
}
