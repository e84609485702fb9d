using System.Net.Sockets;

namespace Ctfw.Lab.Flood;

/// <summary>
/// The hostile load of one run, all in one address family, from the client namespace: a SYN flood
/// from random sources in <see cref="HostileLab.FloodNetworkV4"/> (or V6) to the allowed TCP port,
/// and a 64-byte UDP overload from the client's own address to the allowed UDP port, both at the
/// highest rate the generator reaches unless paced. Meanwhile: <see cref="Conversations"/> long-lived
/// TCP echo conversations, the new-connection probe, and the forbidden-port probe (TCP SYNs and UDP
/// datagrams to <see cref="HostileRules.ForbiddenPort"/>, <see cref="ForbiddenRatePps"/> each).
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

    private static string Rate(long pps) => pps == 0 ? "at max rate" : $"at {pps} pps";
}
