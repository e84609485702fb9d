namespace Ctfw.Lab.Bench;

/// <summary>What the gateway does with forwarded packets in one measurement.</summary>
public enum BenchSetup
{
    /// <summary>Plain forwarding: no rules, no conntrack. The machine's limit.</summary>
    Plain,
    /// <summary>Kernel conntrack with the stateful iptables ruleset rules/bench.rules.</summary>
    Kernel,
    /// <summary>The plain C NFQUEUE accept-all loop on one queue, kernel conntrack bypassed (NOTRACK).</summary>
    CLoop,
    /// <summary><c>ctfw run</c> on one queue with rules/bench.rules and its own conntrack, kernel conntrack bypassed.</summary>
    Ctfw1,
    /// <summary>The same on two queues (two worker threads, queue-balance).</summary>
    Ctfw2,
    /// <summary>
    /// ctfw1 with <c>--metrics</c> and a scraper reading /metrics every 100 ms from the gateway
    /// namespace: what Prometheus scraping costs the packet path. Only when named (not in <c>all</c>).
    /// </summary>
    Ctfw1Scraped,
    /// <summary>
    /// ctfw2 with <c>--offload established</c>: packets of established, accepted flows that carry no
    /// SYN/FIN/RST are marked by an nftables chain and accepted before the NFQUEUE rule, so the kernel
    /// forwards them without the userspace round trip.
    /// </summary>
    Offload,
}

/// <summary>The traffic of one measurement, client → server over IPv4.</summary>
public enum BenchWorkload
{
    /// <summary>iperf3 TCP bulk, 2 parallel streams; Gbit/s received.</summary>
    Tcp,
    /// <summary>iperf3 UDP, 64-byte payloads, unpaced, 2 streams; packets/s received by the server.</summary>
    Udp,
    /// <summary>wrk against nginx with <c>Connection: close</c>; new TCP connections (= requests) per second.</summary>
    Conn,
    /// <summary>ping every 2 ms under a paced 1 Gbit/s iperf3 TCP load; RTT p50/p99/max.</summary>
    Lat,
    /// <summary>
    /// The hostile-load run (Ctfw.Lab.Flood.HostileBench): 15 s random-source SYN flood + 64-byte UDP
    /// overload at nf_conntrack_max=5000 with conversations and probes, on its own namespaces, under
    /// kernel, ctfw1 and ctfw2, in bursts and steady. Only when named: not in <see cref="BenchNames.AllWorkloads"/>.
    /// </summary>
    Flood,
}

/// <summary>Names used on the command line and in the report.</summary>
public static class BenchNames
{
    public static IReadOnlyList<BenchSetup> AllSetups { get; } = [BenchSetup.Plain, BenchSetup.Kernel, BenchSetup.CLoop, BenchSetup.Ctfw1, BenchSetup.Ctfw2, BenchSetup.Offload];

    /// <summary>Every set-up id the command line accepts: <see cref="AllSetups"/> and ctfw1m.</summary>
    public static IReadOnlyList<BenchSetup> KnownSetups { get; } = [.. AllSetups, BenchSetup.Ctfw1Scraped];

    /// <summary>
    /// The default workloads, and what <c>all</c> means. The flood is not among them: it takes about
    /// 2 minutes on namespaces of its own and changes the kernel's global nf_conntrack_max for
    /// its kernel run, so it runs only when named (<c>--workloads flood</c>).
    /// </summary>
    public static IReadOnlyList<BenchWorkload> AllWorkloads { get; } = [BenchWorkload.Tcp, BenchWorkload.Udp, BenchWorkload.Conn, BenchWorkload.Lat];

    /// <summary>Every workload id the command line accepts, in the canonical order.</summary>
    public static IReadOnlyList<BenchWorkload> KnownWorkloads { get; } = [.. AllWorkloads, BenchWorkload.Flood];

    public static string Of(BenchSetup setup) => setup switch
    {
        BenchSetup.Plain => "plain",
        BenchSetup.Kernel => "kernel",
        BenchSetup.CLoop => "cloop",
        BenchSetup.Ctfw1 => "ctfw1",
        BenchSetup.Ctfw2 => "ctfw2",
        BenchSetup.Ctfw1Scraped => "ctfw1m",
        BenchSetup.Offload => "offload",
        _ => throw new ArgumentOutOfRangeException(nameof(setup), setup, null),
    };

    public static string Of(BenchWorkload workload) => workload switch
    {
        BenchWorkload.Tcp => "tcp",
        BenchWorkload.Udp => "udp",
        BenchWorkload.Conn => "conn",
        BenchWorkload.Lat => "lat",
        BenchWorkload.Flood => "flood",
        _ => throw new ArgumentOutOfRangeException(nameof(workload), workload, null),
    };

    /// <summary>True for the set-ups with an NFQUEUE consumer process whose CPU and syscalls are profiled.</summary>
    public static bool HasDaemon(BenchSetup setup) => setup is BenchSetup.CLoop || IsCtfw(setup);

    /// <summary>True for the set-ups that run <c>ctfw run</c>: their counters come from its control socket.</summary>
    public static bool IsCtfw(BenchSetup setup) => setup is BenchSetup.Ctfw1 or BenchSetup.Ctfw2 or BenchSetup.Ctfw1Scraped or BenchSetup.Offload;

    /// <summary>How many NFQUEUE queues the set-up's consumer reads: two for ctfw2 and offload, one otherwise.</summary>
    public static int QueueCount(BenchSetup setup) => setup is BenchSetup.Ctfw2 or BenchSetup.Offload ? 2 : 1;

    /// <summary>Parses a comma list of set-up ids (or <c>all</c>), keeping the canonical order.</summary>
    /// <exception cref="FormatException">An unknown id, or an empty list.</exception>
    public static IReadOnlyList<BenchSetup> ParseSetups(string text) => ParseList(text, AllSetups, Of, "set-up", KnownSetups);

    /// <summary>Parses a comma list of workload ids (or <c>all</c>: the default ones), keeping the canonical order.</summary>
    /// <exception cref="FormatException">An unknown id, or an empty list.</exception>
    public static IReadOnlyList<BenchWorkload> ParseWorkloads(string text) => ParseList(text, AllWorkloads, Of, "workload", KnownWorkloads);

    private static IReadOnlyList<T> ParseList<T>(string text, IReadOnlyList<T> all, Func<T, string> name, string what, IReadOnlyList<T>? known = null)
    {
        known ??= all;
        var chosen = new HashSet<T>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part.Equals("all", StringComparison.OrdinalIgnoreCase))
            {
                chosen.UnionWith(all);
                continue;
            }
            T? match = known.FirstOrDefault(x => name(x).Equals(part, StringComparison.OrdinalIgnoreCase));
            if (match is null || !name(match).Equals(part, StringComparison.OrdinalIgnoreCase))
                throw new FormatException($"unknown {what} '{part}' (known: {string.Join(", ", known.Select(name))}, all)");
            chosen.Add(match);
        }
        if (chosen.Count == 0)
            throw new FormatException($"no {what} given");
        return [.. known.Where(chosen.Contains)];
    }
}
