using System.Globalization;

namespace Ctfw.Lab.Network;

/// <summary>
/// Four listings of the two conntrack tables taken interleaved while traffic runs: the kernel's
/// (<c>conntrack -L</c>), ctfw's (<c>ctfw conntrack -L</c>), the kernel's, ctfw's;
/// <paramref name="SpanSeconds"/> is how long the four took.
/// </summary>
public sealed record InterleavedListings(
    IReadOnlyList<ConntrackEntry> Kernel1, IReadOnlyList<ConntrackEntry> Ctfw1,
    IReadOnlyList<ConntrackEntry> Kernel2, IReadOnlyList<ConntrackEntry> Ctfw2, double SpanSeconds);

/// <summary>
/// Compares the kernel's conntrack table with ctfw's while traffic runs. Listings cannot be taken at
/// the same instant, so a flow is judged only where it held still:
/// <list type="bullet">
/// <item>a flow the kernel listed identically (same TCP state and flags) in both of its listings
/// must be in the ctfw listing taken between them, with that state and those flags;</item>
/// <item>a flow ctfw listed identically in both of its listings must be in the kernel listing taken
/// between them, likewise.</item>
/// </list>
/// A TCP entry in a closing or opening state counts as held still only if its timeout did not go up
/// (a refresh means packets moved it; with fast port reuse it may even be a new connection on the same
/// ports). Timeouts are compared within <see cref="TimeoutToleranceSeconds"/> plus the time between the
/// listings (the kernel rounds down to whole seconds, and a refreshed flow restarts its timer).
/// <para>
/// That still leaves races a state and a timeout cannot reveal: a connection that ends and a new one
/// on the same ports that reaches the same state between two listings, or one listing catching the
/// table mid-update. So a flow that disagrees is not a mismatch yet: both tables are listed again
/// (four more listings), and it is not judged only if one side's entry changed between the listings
/// the disagreement was seen in and the end of the re-check (state, flags or reply tuple, a refreshed
/// closing timeout, present in some and absent from others); a race moves on, and is counted as
/// re-checked with the change that showed it. If both entries held still throughout, the two tables
/// disagreed over the same stretch of time and it is a mismatch: a real one holds still and persists.
/// Flows that disagree only in the second round are left to the next comparison, which judges them
/// afresh.
/// </para>
/// </summary>
public static class FlowTableComparison
{
    public const int TimeoutToleranceSeconds = 2;

    /// <summary>
    /// Judges <paramref name="first"/>; if any flow disagrees, calls <paramref name="listAgain"/> once
    /// for four more listings and keeps as mismatches the disagreeing flows whose entries held still
    /// from the listings the disagreement was seen in to the last one. When
    /// <paramref name="listAgain"/> returns null (the tables could not be listed again), every
    /// disagreement of the first round stands: nothing is forgiven unseen.
    /// </summary>
    public static FlowTableResult Compare(InterleavedListings first, Func<InterleavedListings?> listAgain)
    {
        Round round = Judge(first);
        List<string> mismatches = [];
        List<RecheckedFlow> notJudged = [];
        if (round.Disagreements.Count > 0)
        {
            InterleavedListings? again = listAgain();
            if (again is null)
            {
                foreach (Disagreement d in round.Disagreements.Values)
                    mismatches.Add(d.Text + "\n    (could not list the tables again to re-check)");
            }
            else
            {
                Round second = Judge(again);
                foreach ((string key, Disagreement d) in round.Disagreements)
                {
                    if (FirstChange(key, d.JudgedByCtfw, first, again) is { } change)
                        notJudged.Add(new RecheckedFlow(key, change, d.Text));
                    else if (second.Disagreements.TryGetValue(key, out Disagreement? still))
                        mismatches.Add(still.Text + "\n    (the same when listed again; neither entry changed since)");
                    else // only a timeout can differ and pass in the second round, within its own (wider) slack
                        mismatches.Add(d.Text + "\n    (neither entry changed when listed again)");
                }
            }
        }
        return new FlowTableResult(first.Kernel1.Count, first.Ctfw1.Count, round.KernelChecked, round.CtfwChecked,
            mismatches, round.Disagreements.Count, notJudged);
    }

    /// <summary>The identity of a flow: protocol and original tuple.</summary>
    public static string Key(ConntrackEntry e) => $"{e.ProtocolName} {Describe(e.Original)}";

    /// <summary>The disagreements of one set of four listings, by flow key, and how many flows each side held still.</summary>
    private sealed record Round(Dictionary<string, Disagreement> Disagreements, int KernelChecked, int CtfwChecked);

    /// <summary>
    /// A flow that disagreed, and which side held it still: the kernel (its listings 1 and 2 around
    /// ctfw's 1) or ctfw (its 1 and 2 around the kernel's 2).
    /// </summary>
    private sealed record Disagreement(string Text, bool JudgedByCtfw);

    private static Round Judge(InterleavedListings l)
    {
        // Insertion order is kept (no removals), so reports list flows in listing order.
        var disagreements = new Dictionary<string, Disagreement>(StringComparer.Ordinal);
        int kernelChecked = CheckStable(l.Kernel1, l.Kernel2, l.Ctfw1, "kernel", "ctfw", l.SpanSeconds, disagreements);
        int ctfwChecked = CheckStable(l.Ctfw1, l.Ctfw2, l.Kernel2, "ctfw", "kernel", l.SpanSeconds, disagreements);
        return new Round(disagreements, kernelChecked, ctfwChecked);
    }

    private static int CheckStable(IReadOnlyList<ConntrackEntry> before, IReadOnlyList<ConntrackEntry> after,
        IReadOnlyList<ConntrackEntry> other, string side, string otherSide, double spanSeconds, Dictionary<string, Disagreement> disagreements)
    {
        Dictionary<string, ConntrackEntry> later = Index(after);
        Dictionary<string, ConntrackEntry> others = Index(other);
        int count = 0;
        foreach (ConntrackEntry e in before)
        {
            string key = Key(e);
            if (!later.TryGetValue(key, out ConntrackEntry? again) || !SameState(e, again) || !HeldStill(e, again))
                continue; // changed or gone between the listings: not judged
            count++;
            if (!others.TryGetValue(key, out ConntrackEntry? o))
            {
                disagreements.TryAdd(key, new($"only {side} lists {e.Line}", side == "ctfw"));
                continue;
            }
            if (!SameState(e, o))
            {
                disagreements.TryAdd(key, new($"{side}: {e.Line}\n    {otherSide}: {o.Line}", side == "ctfw"));
                continue;
            }
            double slack = TimeoutToleranceSeconds + spanSeconds;
            if (!Within(o.TimeoutSeconds, e.TimeoutSeconds, again.TimeoutSeconds, slack) && !UnacknowledgedFlip(e, again, o))
            {
                disagreements.TryAdd(key, new(string.Create(CultureInfo.InvariantCulture,
                    $"timeout {o.TimeoutSeconds} s in {otherSide}, {e.TimeoutSeconds}–{again.TimeoutSeconds} s in {side} (slack {slack:0.#} s): {e.Line}"), side == "ctfw"));
            }
        }
        return count;
    }

    /// <summary>
    /// The first change of flow <paramref name="key"/> in either table from the listings its
    /// disagreement was seen in to the end of the re-check (kernel listings 1–4, or 2–4 when ctfw's
    /// held it still: an earlier kernel change is no excuse for ctfw not to follow; ctfw's 1–4), or
    /// null if both entries held still throughout.
    /// </summary>
    private static string? FirstChange(string key, bool judgedByCtfw, InterleavedListings first, InterleavedListings again) =>
        FirstChange(key, "kernel", [first.Kernel1, first.Kernel2, again.Kernel1, again.Kernel2], judgedByCtfw ? 1 : 0)
        ?? FirstChange(key, "ctfw", [first.Ctfw1, first.Ctfw2, again.Ctfw1, again.Ctfw2], 0);

    private static string? FirstChange(string key, string side, IReadOnlyList<ConntrackEntry>[] listings, int from)
    {
        ConntrackEntry? previous = Find(listings[from], key);
        for (int i = from + 1; i < listings.Length; i++)
        {
            ConntrackEntry? next = Find(listings[i], key);
            bool still = previous is null ? next is null : next is not null && SameState(previous, next) && HeldStill(previous, next);
            if (!still)
            {
                string refreshed = previous is not null && next is not null && SameState(previous, next) ? " (timeout went up: refreshed)" : "";
                return string.Create(CultureInfo.InvariantCulture,
                    $"{side} entry changed between its listings {i} and {i + 1}: {Brief(previous)} -> {Brief(next)}{refreshed}");
            }
            previous = next;
        }
        return null;
    }

    private static ConntrackEntry? Find(IReadOnlyList<ConntrackEntry> listing, string key)
    {
        foreach (ConntrackEntry e in listing)
        {
            if (Key(e) == key)
                return e;
        }
        return null;
    }

    private static string Brief(ConntrackEntry? e) => e is null ? "absent" : string.Create(CultureInfo.InvariantCulture,
        $"{e.TcpState ?? e.ProtocolName} {e.TimeoutSeconds} s{(e.Flags.Count > 0 ? " [" + string.Join("] [", e.Flags) + "]" : "")}");

    /// <summary>
    /// A TCP entry that is neither ESTABLISHED nor unreplied-new is not refreshed while it holds
    /// still, so its timeout can only have gone down; a higher one means packets moved it — possibly
    /// a new connection on the same ports that went through the same state in between.
    /// </summary>
    private static bool HeldStill(ConntrackEntry first, ConntrackEntry second) =>
        first.TcpState is null or "ESTABLISHED" || second.TimeoutSeconds <= first.TimeoutSeconds;

    /// <summary>
    /// An ESTABLISHED TCP entry with data in flight runs on the short "unacknowledged" or
    /// "max_retrans" timeout (300 s by default) and goes back to the established one (5 days) with the
    /// next ACK of everything: the timeout flips with every other packet, so two listings taken
    /// microseconds of traffic apart can each catch a different one. Such a difference is not judged.
    /// </summary>
    private static bool UnacknowledgedFlip(ConntrackEntry first, ConntrackEntry second, ConntrackEntry other)
    {
        if (first.TcpState != "ESTABLISHED")
            return false;
        bool shortFirst = Math.Max(first.TimeoutSeconds, second.TimeoutSeconds) <= ShortTcpTimeoutSeconds;
        bool shortOther = other.TimeoutSeconds <= ShortTcpTimeoutSeconds;
        return shortFirst != shortOther;
    }

    /// <summary>The longer of the kernel's default unacknowledged and max_retrans timeouts.</summary>
    private const int ShortTcpTimeoutSeconds = 300;

    private static bool Within(int value, int a, int b, double slack) =>
        value >= Math.Min(a, b) - slack && value <= Math.Max(a, b) + slack;

    private static Dictionary<string, ConntrackEntry> Index(IReadOnlyList<ConntrackEntry> entries)
    {
        var map = new Dictionary<string, ConntrackEntry>(StringComparer.Ordinal);
        foreach (ConntrackEntry e in entries)
            map[Key(e)] = e;
        return map;
    }

    /// <summary>Same reply tuple, TCP state and UNREPLIED/ASSURED flags.</summary>
    public static bool SameState(ConntrackEntry a, ConntrackEntry b) =>
        a.TcpState == b.TcpState
        && Describe(a.Reply) == Describe(b.Reply)
        && a.Flags.Contains("UNREPLIED") == b.Flags.Contains("UNREPLIED")
        && a.Flags.Contains("ASSURED") == b.Flags.Contains("ASSURED");

    private static string Describe(ConntrackTuple t) => string.Create(CultureInfo.InvariantCulture,
        $"{t.Src}>{t.Dst} {t.SrcPort}>{t.DstPort} {t.IcmpType}/{t.IcmpCode}/{t.IcmpId}");
}

/// <summary>A flow that disagreed in the first round and was not judged: <paramref name="Why"/> (the change the re-check saw), and what the first round saw.</summary>
public sealed record RecheckedFlow(string Key, string Why, string FirstRound);

/// <summary>What <see cref="FlowTableComparison.Compare"/> found.</summary>
/// <param name="KernelFlows">Flows in the kernel's first listing.</param>
/// <param name="CtfwFlows">Flows in ctfw's first listing.</param>
/// <param name="KernelStableChecked">Flows the kernel listed identically twice, judged against ctfw.</param>
/// <param name="CtfwStableChecked">Flows ctfw listed identically twice, judged against the kernel.</param>
/// <param name="Mismatches">Flows that disagreed while neither entry changed up to the end of the re-check (or that could not be re-checked).</param>
/// <param name="Disagreed">Flows that disagreed in the first round and were re-checked: mismatches plus <paramref name="NotJudged"/>.</param>
/// <param name="NotJudged">Flows the re-check showed to have changed between the listings: races, not judged.</param>
public sealed record FlowTableResult(int KernelFlows, int CtfwFlows, int KernelStableChecked, int CtfwStableChecked,
    IReadOnlyList<string> Mismatches, int Disagreed, IReadOnlyList<RecheckedFlow> NotJudged)
{
    public bool Agree => Mismatches.Count == 0;
}
