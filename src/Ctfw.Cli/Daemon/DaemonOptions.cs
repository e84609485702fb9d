using Ctfw.Firewall.Shadow;
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

    /// <summary>Rescue of late FIN/RST after expiry (<c>--rescue</c>); Off by default (kernel-faithful).</summary>
    public RescueOptions Rescue { get; init; } = new();

    /// <summary><c>--reset-on-expiry</c>: RST both endpoints of an ESTABLISHED or half-closed TCP entry that expires.</summary>
    public bool ResetOnExpiry { get; init; }

    /// <summary>Zero-window age from which `ctfw stats` counts a flow as stalled (<c>--stalled-after</c>).</summary>
    public long StalledAfterMs { get; init; } = Control.FlowAges.DefaultStalledAfterSeconds * 1000L;

    /// <summary>NFQUEUE queue length (packets waiting for ctfw) before the kernel drops (or, with
    /// <see cref="QueueFullAccept"/>, accepts unjudged) what finds it full.</summary>
    public uint QueueMaxLength { get; init; } = 4096;

    /// <summary>
    /// <c>--queue-full accept</c>: the queue's NFQA_CFG_F_FAIL_OPEN flag, so packets that find the
    /// queue (or the socket buffer) full pass without a verdict, and the kernel counts none of them.
    /// Off by default (<c>drop</c>): they are dropped and counted (queue_dropped / user_dropped), TCP
    /// retransmits them, and nothing the rules forbid passes. Independent of <see cref="FailClosed"/>,
    /// which is about no ctfw being bound at all (the rule's --queue-bypass).
    /// </summary>
    public bool QueueFullAccept { get; init; }

    /// <summary>Netlink receive buffer per queue socket, bytes (forced past net.core.rmem_max; needs CAP_NET_ADMIN).</summary>
    public int ReceiveBufferBytes { get; init; } = 8 << 20;

    /// <summary><c>--state-file</c>: where the table is kept across restarts (absolute); null when off.</summary>
    public string? StatePath { get; init; }

    /// <summary><c>--state-interval</c>: milliseconds between checkpoints.</summary>
    public int StateIntervalMs { get; init; } = 5000;

    /// <summary><c>--takeover</c>: the running ctfw's control socket to take the queues and table from; null when off.</summary>
    public string? TakeoverFrom { get; init; }

    /// <summary><c>--import-kernel</c>: adopt the kernel's conntrack table of the namespace at start.</summary>
    public bool ImportKernel { get; init; }

    /// <summary><c>--export-kernel-on-exit</c>: write ctfw's entries into the kernel's table when stopping.</summary>
    public bool ExportKernelOnExit { get; init; }

    /// <summary><c>--on-rules-lost</c>: what happens when the installed iptables rules disappear or move.</summary>
    public RulesLostAction OnRulesLost { get; init; }

    /// <summary><c>--metrics ADDR:PORT</c>: where Prometheus metrics are served (<c>/metrics</c>); null when off.</summary>
    public Metrics.MetricsEndpoint? MetricsEndpoint { get; init; }

    /// <summary>The offload mark bit unless <c>--offload-mark</c> gives another.</summary>
    public const uint DefaultOffloadMark = 0x4000_0000;

    /// <summary><c>--offload established</c>: established flows go to the kernel's nftables sets (docs/OFFLOAD.md).</summary>
    public bool Offload { get; init; }

    /// <summary><c>--offload-mark</c>: the bit(s) the offload chain ORs into the mark of packets it lets past the queue.</summary>
    public uint OffloadMark { get; init; } = DefaultOffloadMark;

    /// <summary><c>--offload-delay</c>: how long a TCP flow must have been ESTABLISHED before it is offloaded (ms).</summary>
    public long OffloadDelayMs { get; init; } = 100;

    /// <summary><c>--sync ftfw</c>: state sync with a peer gateway (docs/HA.md); null when off.</summary>
    public SyncOptions? Sync { get; init; }

    /// <summary>Control socket path; null = <see cref="Control.ControlPaths.Default"/> for this pid.</summary>
    public string? ControlPath { get; init; }

    /// <summary><c>--control-group</c>: a group (name or gid) whose members may use the read-only control requests; null: none.</summary>
    public string? ControlGroup { get; init; }

    /// <summary><c>--control-admin-group</c>: a group (name or gid) whose members may use every control request, as root can; null: none.</summary>
    public string? ControlAdminGroup { get; init; }

    /// <summary>
    /// Rebuilds the settings from the same sources as at start (live sysctls, files, --set), for
    /// `reload-sysctls` and the periodic re-read; null when the settings did not come from live sysctls.
    /// Returns the settings or an error message.
    /// </summary>
    public Func<(ConntrackSettings? Settings, string? Error)>? RebuildSettings { get; init; }
}
