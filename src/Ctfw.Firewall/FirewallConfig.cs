using Ctfw.Firewall.Logging;
using Ctfw.Firewall.Shadow;
using Ctfw.Rules;

namespace Ctfw.Firewall;

/// <summary>
/// What a <see cref="FirewallPipeline"/> decides with, swapped as a whole between batches
/// (<see cref="FirewallPipeline.Reconfigure"/>): the ruleset, shadow mode, and what happens to a
/// packet the transport handed over without bytes. Immutable, so a worker that took a reference at
/// the start of a batch sees one consistent configuration for the whole batch.
/// </summary>
public sealed class FirewallConfig
{
    /// <summary>The filter table; null tracks only and accepts everything (replay without --rules, benches of the tracker).</summary>
    public Ruleset? Rules { get; init; }

    /// <summary>Shadow mode against kernel conntrack (<c>--ab kernel</c>); null when off.</summary>
    public ShadowMode? Shadow { get; init; }

    /// <summary>Drop (rather than accept) packets that arrive without their bytes.</summary>
    public bool FailClosed { get; init; }

    /// <summary>
    /// Which ruleset this is (the daemon counts reloads). Offload requests carry it, so the offload
    /// manager can discard what an older ruleset accepted once a reload has emptied the sets.
    /// </summary>
    public int Generation { get; init; }
}

/// <summary>Shadow mode (<c>--ab kernel</c>): where the kernel's answer is, whose answer the rules use, where disagreements go.</summary>
public sealed record ShadowMode(KernelStateMark Mark, bool EnforceCtfw, AbLog Log);
