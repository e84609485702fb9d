using Ctfw.Conntrack;
using Ctfw.Linux.Firewall;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>Everything `ctfw run` was asked to do, validated.</summary>
internal sealed record DaemonOptions(
    Ruleset Rules,
    ConntrackSettings Settings,
    ushort QueueFirst,
    ushort QueueLast,
    IReadOnlyList<IptablesHook> Install,
    bool FailClosed,
    uint CopyRange)
{
    /// <summary>Shadow mode against kernel conntrack (<c>--ab kernel</c>): the mark layout, or null when off.</summary>
    public KernelStateMark? AbMark { get; init; }

    /// <summary><c>--ab-enforce ctfw</c>: the rules see ctfw's ctstate instead of the kernel's.</summary>
    public bool AbEnforceCtfw { get; init; }

    /// <summary>Control socket path; null = <see cref="Control.ControlPaths.Default"/> for this pid.</summary>
    public string? ControlPath { get; init; }

    /// <summary>
    /// Rebuilds the settings from the same sources as at start (live sysctls, files, --set), for
    /// `reload-sysctls` and the periodic re-read; null when the settings did not come from live sysctls.
    /// Returns the settings or an error message.
    /// </summary>
    public Func<(ConntrackSettings? Settings, string? Error)>? RebuildSettings { get; init; }
}
