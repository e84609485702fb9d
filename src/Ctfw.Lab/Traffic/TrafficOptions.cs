using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>The streams <see cref="TrafficMix"/> can run; each one is one client program.</summary>
[Flags]
public enum Workloads
{
    None = 0,
    /// <summary>wrk, <c>Connection: close</c>: one TCP connection per request, over IPv4.</summary>
    HttpV4 = 1 << 0,
    /// <summary>The same over IPv6.</summary>
    HttpV6 = 1 << 1,
    /// <summary>One iperf3 TCP stream as fast as it goes, over IPv4.</summary>
    TcpBulkV4 = 1 << 2,
    /// <summary>One iperf3 UDP stream of small datagrams at a fixed rate, over IPv6.</summary>
    UdpV6 = 1 << 3,
    /// <summary>ping, IPv4.</summary>
    PingV4 = 1 << 4,
    /// <summary>ping, IPv6.</summary>
    PingV6 = 1 << 5,

    Http = HttpV4 | HttpV6,
    Ping = PingV4 | PingV6,
    All = Http | TcpBulkV4 | UdpV6 | Ping,
}

/// <summary>What <see cref="TrafficMix"/> runs and how hard. The defaults suit a conntrack comparison on a small VM.</summary>
public sealed record TrafficOptions
{
    public static TrafficOptions Default { get; } = new();

    /// <summary>The single workloads in the order they are started and reported.</summary>
    public static IReadOnlyList<Workloads> Each { get; } =
        [Workloads.HttpV4, Workloads.HttpV6, Workloads.TcpBulkV4, Workloads.UdpV6, Workloads.PingV4, Workloads.PingV6];

    public Workloads Workloads { get; init; } = Workloads.All;

    /// <summary>
    /// Per-workload durations that replace the one given to <see cref="TrafficMix.Run"/>. A key may be a
    /// group (<see cref="Workloads.Http"/>); an exact key wins over a group.
    /// </summary>
    public IReadOnlyDictionary<Workloads, TimeSpan> Durations { get; init; } = new Dictionary<Workloads, TimeSpan>();

    public string ServerV4 { get; init; } = LabAddresses.ServerV4;
    public string ServerV6 { get; init; } = LabAddresses.ServerV6;

    public int HttpPort { get; init; } = 80;
    public int TcpBulkPort { get; init; } = 5201;
    public int UdpPort { get; init; } = 5202;

    /// <summary>Concurrent wrk connections per address family; each one reconnects after every response.</summary>
    public int HttpConnections { get; init; } = 4;

    /// <summary>Every Nth request fetches the 1 MiB file instead of the small one (0: never).</summary>
    public int HttpLargeEvery { get; init; } = 50;

    public int NginxWorkers { get; init; } = 1;

    /// <summary>Target rate of the TCP stream, 0 for unlimited.</summary>
    public long TcpBulkBitsPerSecond { get; init; }

    public long UdpBitsPerSecond { get; init; } = 2_000_000;

    /// <summary>UDP payload bytes per datagram (iperf3 -l; its minimum is 16).</summary>
    public int UdpPayloadBytes { get; init; } = 64;

    public TimeSpan PingInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>How long the servers may take to listen, and how long past its duration a client may take to finish.</summary>
    public TimeSpan Grace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Throws for settings the tools would reject or misread.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(HttpConnections, 1, nameof(HttpConnections));
        ArgumentOutOfRangeException.ThrowIfNegative(HttpLargeEvery, nameof(HttpLargeEvery));
        ArgumentOutOfRangeException.ThrowIfLessThan(NginxWorkers, 1, nameof(NginxWorkers));
        ArgumentOutOfRangeException.ThrowIfNegative(TcpBulkBitsPerSecond, nameof(TcpBulkBitsPerSecond));
        ArgumentOutOfRangeException.ThrowIfLessThan(UdpBitsPerSecond, 1, nameof(UdpBitsPerSecond));
        ArgumentOutOfRangeException.ThrowIfLessThan(UdpPayloadBytes, 16, nameof(UdpPayloadBytes)); // iperf3's UDP header
        ArgumentOutOfRangeException.ThrowIfLessThan(PingInterval, TimeSpan.FromMilliseconds(2), nameof(PingInterval)); // iputils' floor
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(Grace, TimeSpan.Zero, nameof(Grace));
        foreach (int port in (int[])[HttpPort, TcpBulkPort, UdpPort])
            ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)port - 1, 65534u, "port");
        if (HttpPort == TcpBulkPort || HttpPort == UdpPort || TcpBulkPort == UdpPort)
            throw new ArgumentException("HTTP, TCP bulk and UDP ports must differ (one server each)");
    }

    /// <summary>The duration <paramref name="workload"/> (a single one) runs for, in whole seconds (the tools take no less).</summary>
    public TimeSpan DurationOf(Workloads workload, TimeSpan fallback)
    {
        TimeSpan chosen = fallback;
        bool exact = false;
        foreach (KeyValuePair<Workloads, TimeSpan> d in Durations)
        {
            if (d.Key == workload)
            {
                chosen = d.Value;
                exact = true;
            }
            else if (!exact && d.Key != Workloads.None && (d.Key & workload) == workload)
            {
                chosen = d.Value;
            }
        }
        return TimeSpan.FromSeconds(Math.Max(1, Math.Ceiling(chosen.TotalSeconds)));
    }

    /// <summary>The short name used in reports and on command lines: http4, http6, tcp4, udp6, ping4, ping6.</summary>
    public static string NameOf(Workloads single) => single switch
    {
        Workloads.HttpV4 => "http4",
        Workloads.HttpV6 => "http6",
        Workloads.TcpBulkV4 => "tcp4",
        Workloads.UdpV6 => "udp6",
        Workloads.PingV4 => "ping4",
        Workloads.PingV6 => "ping6",
        _ => throw new ArgumentOutOfRangeException(nameof(single), single, "not a single workload"),
    };

    /// <summary>Parses a comma list of names (<see cref="NameOf"/>, or the groups http, ping, all).</summary>
    public static Workloads ParseWorkloads(string text)
    {
        Workloads result = Workloads.None;
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            result |= part.ToLowerInvariant() switch
            {
                "all" => Workloads.All,
                "http" => Workloads.Http,
                "ping" => Workloads.Ping,
                "tcp" => Workloads.TcpBulkV4,
                "udp" => Workloads.UdpV6,
                string name => Each.FirstOrDefault(w => NameOf(w) == name) is var w && w != Workloads.None
                    ? w
                    : throw new FormatException($"unknown workload '{part}' (known: all, http, ping, {string.Join(", ", Each.Select(NameOf))})"),
            };
        }
        return result;
    }
}
