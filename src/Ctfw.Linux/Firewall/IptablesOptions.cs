using System.Globalization;
using Ctfw.Firewall.Shadow;
namespace Ctfw.Linux.Firewall;

/// <summary>Built-in filter chains the ctfw chain can be hooked from.</summary>
public enum IptablesHook
{
    Input,
    Output,
    Forward,
}

/// <summary>What <see cref="IptablesInstaller.Install"/> puts in place.</summary>
public sealed record IptablesOptions
{
    /// <summary>Built-in chains of the filter table that jump to <see cref="Chain"/> (inserted first).</summary>
    public IReadOnlyList<IptablesHook> Hooks { get; init; } = [IptablesHook.Input, IptablesHook.Forward];

    /// <summary><c>--queue-num</c>, or the first queue of <c>--queue-balance</c>.</summary>
    public ushort QueueFirst { get; init; }

    /// <summary>Last queue of <c>--queue-balance first:last</c>; null (or equal to the first) for a single queue.</summary>
    public ushort? QueueLast { get; init; }

    /// <summary><c>--queue-cpu-fanout</c> (with a balance range): pick the queue by CPU instead of by flow hash.</summary>
    public bool CpuFanout { get; init; }

    /// <summary>
    /// Without <c>--queue-bypass</c> packets are dropped while no ctfw listens on the queue. The
    /// default (false) lets traffic pass when ctfw is not running.
    /// </summary>
    public bool FailClosed { get; init; }

    public bool Ipv4 { get; init; } = true;

    public bool Ipv6 { get; init; } = true;

    /// <summary>Extra match arguments for the NFQUEUE rule, valid for both families (e.g. <c>-p udp</c>).</summary>
    public IReadOnlyList<string> Match { get; init; } = [];

    /// <summary>Run the commands inside this named network namespace (<c>/run/netns/NAME</c>); null = the current one.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>
    /// Shadow mode: also create <see cref="Chain"/> in the mangle table, with rules that write the
    /// kernel's ctstate and direction into the packet mark (<see cref="KernelStateMark"/>), jumped to
    /// from the same hooks (with <see cref="Match"/>) before the filter table queues the packet.
    /// </summary>
    public KernelStateMark? ShadowMark { get; init; }

    /// <summary>
    /// Offload (issue 15): the mark bit(s) ctfw's nftables bypass chain ORs into packets of offloaded
    /// flows. When set, ctfw's filter chain accepts packets carrying all of them ahead of its NFQUEUE
    /// rule, <c>-A CTFW [Match] -m mark --mark BITS/BITS -m comment --comment TAG -j ACCEPT</c>, so
    /// they never cross to userspace. A non-zero mask, clear of <see cref="ShadowMark"/>'s bits.
    /// </summary>
    public uint? OffloadMark { get; init; }

    /// <summary>ctfw's own chain in the filter table (and in mangle with <see cref="ShadowMark"/>).</summary>
    public string Chain { get; init; } = "CTFW";

    internal bool IsBalanced => QueueLast is { } last && last != QueueFirst;

    internal void Validate()
    {
        if (!Ipv4 && !Ipv6)
            throw new ArgumentException("at least one of IPv4 and IPv6 must be enabled");
        if (Hooks.Count == 0)
            throw new ArgumentException("at least one hook (INPUT, OUTPUT, FORWARD) is needed");
        if (QueueLast is { } last && last < QueueFirst)
            throw new ArgumentException($"--queue-balance {QueueFirst}:{last}: the last queue is below the first");
        if (CpuFanout && !IsBalanced)
            throw new ArgumentException("--queue-cpu-fanout needs a queue range (--queue-balance)");
        if (string.IsNullOrWhiteSpace(Chain) || Chain.Length > 28 || Chain.Contains(' ', StringComparison.Ordinal))
            throw new ArgumentException($"bad chain name '{Chain}'");
        if (OffloadMark is uint offload)
        {
            if (offload == 0)
                throw new ArgumentException("the offload mark must have at least one bit set (a mask of 0 would accept every packet without ctfw)");
            if (ShadowMark is { } shadow && (shadow.Mask & offload) != 0)
            {
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"the offload mark 0x{offload:x8} overlaps the shadow-mode mark bits 0x{shadow.Mask:x8} (bits 0x{shadow.Mask & offload:x8}): move one of them (--ab-mark-shift)"));
            }
        }
    }
}
