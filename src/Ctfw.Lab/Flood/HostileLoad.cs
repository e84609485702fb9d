using System.Net.Sockets;

namespace Ctfw.Lab.Flood;

/// <summary>
/// The hostile load of one run, all in one address family, from the client namespace: a SYN flood
/// from random sources in <see cref="HostileLab.FloodNetworkV4"/> (or V6) to the allowed TCP port,
/// and a 64-byte UDP overload from the client's own address to the allowed UDP port, both at the
/// highest rate the generator reaches unless paced. Meanwhile: <see cref="Conversations"/> long-lived
/// TCP echo conversations, the new-connection probe, and the forbidden-port probe (TCP SYNs and UDP
/// datagrams to <see cref="HostileRules.ForbiddenPort"/>, <see cref="ForbiddenRatePps"/> each).
/// By default the floods come in bursts (<see cref="DefaultBurst"/>); <see cref="Steady"/> is the
/// same load as one unbroken stream.
/// </summary>
public sealed record HostileLoad
{
    public AddressFamily Family { get; init; } = AddressFamily.InterNetwork;

    /// <summary>How long the floods (and the probe) run.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(15);

    public bool SynFlood { get; init; } = true;

    /// <summary>Packets per second of the SYN flood; 0 = as fast as the generator goes.</summary>
    public long SynRatePps { get; init; }

    public bool UdpOverload { get; init; } = true;

    /// <summary>Packets per second of the UDP overload; 0 = as fast as the generator goes.</summary>
    public long UdpRatePps { get; init; }

    /// <summary>Forbidden TCP SYNs per second, and as many forbidden UDP datagrams.</summary>
    public long ForbiddenRatePps { get; init; } = 1000;

    /// <summary>
    /// 200 ms flat out every 1.5 s. Each burst overruns any NFQUEUE consumer on any machine (tens of
    /// thousands of packets into a 4 096-packet queue), so the weak configuration's hole shows; the
    /// silence between lets the queue drain, so whether new connections still open measures the
    /// firewall rather than a machine saturated for 15 s (a steady flat-out flood on a 2-vCPU VM
    /// leaves even kernel conntrack at about 60 % of probe connections). 1.5 s, not 1 s: a probe SYN
    /// lost in a burst is retransmitted 1 s later, outside the next burst.
    /// </summary>
    public static readonly (int OnMs, int PeriodMs) DefaultBurst = (200, 1500);

    /// <summary>
    /// Both floods in bursts: flat out for <c>OnMs</c> of every <c>PeriodMs</c>, silent between.
    /// Null: one steady stream (flat out, or at the rates given). Not with a rate.
    /// </summary>
    public (int OnMs, int PeriodMs)? Burst { get; init; } = DefaultBurst;

    /// <summary>The same load with both floods as one steady stream, flat out.</summary>
    public HostileLoad Steady() => this with { Burst = null };

    public int Conversations { get; init; } = 3;

    /// <summary>How long after the flood the conversations get to have every message echoed (TCP retransmission backoff).</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Between samples of the firewall's table, memory and drop counters.</summary>
    public TimeSpan SampleEvery { get; init; } = TimeSpan.FromMilliseconds(500);

    public string Describe() => string.Concat(
        $"IPv{(Family == AddressFamily.InterNetworkV6 ? 6 : 4)}, {Duration.TotalSeconds:0} s: ",
        SynFlood ? $"random-source SYN flood {Rate(SynRatePps)}" : "no SYN flood",
        UdpOverload ? $" + 64-byte UDP overload {Rate(UdpRatePps)}" : "",
        $"; forbidden probe {ForbiddenRatePps} SYN/s + {ForbiddenRatePps} UDP/s; {Conversations} conversations; new connection every 100 ms");

    private string Rate(long pps) =>
        Burst is (int on, int period) ? $"at max rate in {on} ms bursts every {period} ms" : pps == 0 ? "at max rate" : $"at {pps} pps";
}
