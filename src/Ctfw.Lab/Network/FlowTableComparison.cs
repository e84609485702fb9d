using System.Globalization;

namespace Ctfw.Lab.Network;

/// <summary>
/// Compares two conntrack tables listed while traffic runs: the kernel's (<c>conntrack -L</c>) and
/// ctfw's (<c>ctfw conntrack -L</c>). Listings cannot be taken at the same instant, so they are taken
/// interleaved — kernel, ctfw, kernel, ctfw — and a flow is judged only where it held still:
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
/// </summary>
public static class FlowTableComparison
{
    public const int TimeoutToleranceSeconds = 2;

    public static FlowTableResult Compare(
        IReadOnlyList<ConntrackEntry> kernel1, IReadOnlyList<ConntrackEntry> ctfw1,
        IReadOnlyList<ConntrackEntry> kernel2, IReadOnlyList<ConntrackEntry> ctfw2, double spanSeconds)
    {
        List<string> mismatches = [];
        int checkedKernel = CheckStable(kernel1, kernel2, ctfw1, "kernel", "ctfw", spanSeconds, mismatches);
        int checkedCtfw = CheckStable(ctfw1, ctfw2, kernel2, "ctfw", "kernel", spanSeconds, mismatches);
        return new FlowTableResult(kernel1.Count, ctfw1.Count, checkedKernel, checkedCtfw, mismatches);
    }

    /// <summary>The identity of a flow: protocol and original tuple.</summary>
    public static string Key(ConntrackEntry e) => $"{e.ProtocolName} {Describe(e.Original)}";

    private static int CheckStable(IReadOnlyList<ConntrackEntry> before, IReadOnlyList<ConntrackEntry> after,
        IReadOnlyList<ConntrackEntry> other, string side, string otherSide, double spanSeconds, List<string> mismatches)
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
                mismatches.Add($"only {side} lists {e.Line}");
                continue;
            }
            if (!SameState(e, o))
            {
                mismatches.Add($"{side}: {e.Line}\n    {otherSide}: {o.Line}");
                continue;
            }
            double slack = TimeoutToleranceSeconds + spanSeconds;
            if (!Within(o.TimeoutSeconds, e.TimeoutSeconds, again.TimeoutSeconds, slack) && !UnacknowledgedFlip(e, again, o))
            {
                mismatches.Add(string.Create(CultureInfo.InvariantCulture,
                    $"timeout {o.TimeoutSeconds} s in {otherSide}, {e.TimeoutSeconds}–{again.TimeoutSeconds} s in {side} (slack {slack:0.#} s): {e.Line}"));
            }
        }
        return count;
    }

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

/// <summary>What <see cref="FlowTableComparison.Compare"/> found.</summary>
public sealed record FlowTableResult(int KernelFlows, int CtfwFlows, int KernelStableChecked, int CtfwStableChecked, IReadOnlyList<string> Mismatches)
{
    public bool Agree => Mismatches.Count == 0;
}
