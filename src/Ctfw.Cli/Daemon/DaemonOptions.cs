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
    uint CopyRange);
