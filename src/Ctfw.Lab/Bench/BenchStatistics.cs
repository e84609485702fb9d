namespace Ctfw.Lab.Bench;

/// <summary>Median and range over the reps of one figure.</summary>
public readonly record struct Spread(double Median, double Min, double Max, int Count)
{
    /// <summary>The median (mean of the middle two for an even count), minimum and maximum; null for no values.</summary>
    public static Spread? Of(IEnumerable<double> values)
    {
        double[] v = [.. values.Where(double.IsFinite)];
        if (v.Length == 0)
            return null;
        Array.Sort(v);
        int mid = v.Length / 2;
        double median = v.Length % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
        return new Spread(median, v[0], v[^1], v.Length);
    }
}

/// <summary>A target of perf.md §8 as this run met it.</summary>
public enum TargetStatus
{
    Met,
    Missed,
    /// <summary>A figure it needs was not measured (set-up or workload not selected, a failure, or a counter the daemon lacks).</summary>
    Unknown,
}

public sealed record TargetResult(string Name, TargetStatus Status, string Detail);

/// <summary>The medians, ratios and targets of a <see cref="BenchRun"/>.</summary>
public sealed class BenchSummary
{
    public const double ThroughputTarget = 0.90;
    public const double ConnTarget = 0.90;
    public const double LatencyTarget = 1.5;

    /// <summary>Issue 15's targets for ctfw offload: ahead of kernel conntrack on bulk throughput, twice the C loop on TCP.</summary>
    public const double OffloadKernelTarget = 1.0;
    public const double OffloadCLoopTcpTarget = 2.0;
    public const double OffloadConnTarget = 0.90;

    private readonly BenchRun _run;

    public BenchSummary(BenchRun run) => _run = run;

    /// <summary>The spread over reps of <paramref name="figure"/> for one set-up and workload.</summary>
    public Spread? Of(BenchSetup setup, BenchWorkload workload, Func<BenchMeasurement, double?> figure) =>
        Spread.Of(_run.Measurements
            .Where(m => m.Setup == setup && m.Workload == workload && m.Failure is null)
            .Select(figure).OfType<double>());

    /// <summary>The median headline figure (see <see cref="BenchMeasurement.Value"/>).</summary>
    public double? Median(BenchSetup setup, BenchWorkload workload) => Of(setup, workload, m => m.Value)?.Median;

    /// <summary>Latency added to the plain set-up's, µs, at p50 or p99 (medians of each).</summary>
    public double? AddedLatency(BenchSetup setup, bool p99)
    {
        Func<BenchMeasurement, double?> f = p99 ? m => m.P99Us : m => m.P50Us;
        return Of(setup, BenchWorkload.Lat, f)?.Median is double s && Of(BenchSetup.Plain, BenchWorkload.Lat, f)?.Median is double plain
            ? s - plain
            : null;
    }

    /// <summary>
    /// <paramref name="setup"/> ÷ <paramref name="reference"/> for a workload: medians of the
    /// headline figure, except lat, where it is the ratio of added p99 latency.
    /// </summary>
    public double? Ratio(BenchSetup setup, BenchSetup reference, BenchWorkload workload)
    {
        double? a, b;
        if (workload == BenchWorkload.Lat)
        {
            a = AddedLatency(setup, p99: true);
            b = AddedLatency(reference, p99: true);
        }
        else
        {
            a = Median(setup, workload);
            b = Median(reference, workload);
        }
        return a is double x && b is double y && y > 0 ? x / y : null;
    }

    public IReadOnlyList<TargetResult> Targets()
    {
        List<TargetResult> targets =
        [
            AtLeast($"tcp: ctfw ÷ cloop ≥ {ThroughputTarget:0.00}", BenchWorkload.Tcp, BenchSetup.CLoop, ThroughputTarget),
            AtLeast($"udp: ctfw ÷ cloop ≥ {ThroughputTarget:0.00}", BenchWorkload.Udp, BenchSetup.CLoop, ThroughputTarget),
            AtLeast($"conn: ctfw ÷ kernel ≥ {ConnTarget:0.00}", BenchWorkload.Conn, BenchSetup.Kernel, ConnTarget),
            Latency(),
        ];
        if (_run.Options.Setups.Contains(BenchSetup.Offload))
        {
            targets.Add(Offload($"tcp: offload ÷ kernel ≥ {OffloadKernelTarget:0.00}", BenchWorkload.Tcp, BenchSetup.Kernel, OffloadKernelTarget));
            targets.Add(Offload($"tcp: offload ÷ cloop ≥ {OffloadCLoopTcpTarget:0.00}", BenchWorkload.Tcp, BenchSetup.CLoop, OffloadCLoopTcpTarget));
            targets.Add(Offload($"udp: offload ÷ kernel ≥ {OffloadKernelTarget:0.00}", BenchWorkload.Udp, BenchSetup.Kernel, OffloadKernelTarget));
            targets.Add(Offload($"conn: offload ÷ kernel ≥ {OffloadConnTarget:0.00}", BenchWorkload.Conn, BenchSetup.Kernel, OffloadConnTarget));
        }
        targets.AddRange(SoakTargets());
        return targets;
    }

    /// <summary>Higher is better: the better of ctfw1 and ctfw2 must reach <paramref name="target"/> × the reference.</summary>
    private TargetResult AtLeast(string name, BenchWorkload workload, BenchSetup reference, double target)
    {
        double? r1 = Ratio(BenchSetup.Ctfw1, reference, workload);
        double? r2 = Ratio(BenchSetup.Ctfw2, reference, workload);
        string detail = $"ctfw1 {Format(r1)}, ctfw2 {Format(r2)}";
        double? best = Best(r1, r2, higher: true);
        if (best is null)
            return new TargetResult(name, TargetStatus.Unknown, detail + " (not measured)");
        return new TargetResult(name, best >= target ? TargetStatus.Met : TargetStatus.Missed, $"{detail}; best {best:0.00}");
    }

    /// <summary>
    /// Higher is better: offload ÷ <paramref name="reference"/> must reach <paramref name="target"/>. The
    /// detail says what share of the gateway's packets bypassed ctfw, so a reader sees the offload happened.
    /// </summary>
    private TargetResult Offload(string name, BenchWorkload workload, BenchSetup reference, double target)
    {
        double? ratio = Ratio(BenchSetup.Offload, reference, workload);
        double? share = OffloadedShare(workload);
        string detail = $"offload {Format(ratio)}; {(share is double s ? (s * 100).ToString("0.0", Inv) + " % of the packets offloaded" : "offloaded packets not counted")}";
        if (ratio is null)
            return new TargetResult(name, TargetStatus.Unknown, detail + " (not measured)");
        return new TargetResult(name, ratio >= target ? TargetStatus.Met : TargetStatus.Missed, detail);
    }

    /// <summary>Median over reps of the share of packets the offload set-up forwarded without ctfw in <paramref name="workload"/>.</summary>
    public double? OffloadedShare(BenchWorkload workload) => Of(BenchSetup.Offload, workload, m => m.Profile?.OffloadedShare)?.Median;

    /// <summary>Lower is better: the better ctfw's added p99 must be at most 1.5 × the C loop's.</summary>
    private TargetResult Latency()
    {
        string name = $"lat: added p99 ≤ {LatencyTarget:0.0} × cloop's";
        double? c = AddedLatency(BenchSetup.CLoop, p99: true);
        double? a1 = AddedLatency(BenchSetup.Ctfw1, p99: true);
        double? a2 = AddedLatency(BenchSetup.Ctfw2, p99: true);
        string detail = $"added p99: cloop {Us(c)}, ctfw1 {Us(a1)}, ctfw2 {Us(a2)}";
        double? best = Best(a1, a2, higher: false);
        if (best is null || c is null)
            return new TargetResult(name, TargetStatus.Unknown, detail + " (not measured)");
        // A C loop that added no latency (noise below plain's) leaves no budget: ctfw must add none either.
        double budget = LatencyTarget * Math.Max(0, c.Value);
        return new TargetResult(name, best <= budget ? TargetStatus.Met : TargetStatus.Missed, $"{detail}; budget {Us(budget)}");
    }

    private IEnumerable<TargetResult> SoakTargets()
    {
        SoakResult? soak = _run.Soak;
        if (soak is null || soak.Failure is not null)
        {
            string why = soak is null ? "soak not run" : "soak failed";
            yield return new TargetResult("soak: gen2 collections == 0", TargetStatus.Unknown, why);
            yield return new TargetResult("soak: worker allocations 0 B/packet", TargetStatus.Unknown, why);
            yield break;
        }
        yield return soak.Gen2 is long g2
            ? new TargetResult("soak: gen2 collections == 0", g2 == 0 ? TargetStatus.Met : TargetStatus.Missed,
                $"gen0 {soak.Gen0?.ToString(Inv) ?? "-"}, gen1 {soak.Gen1?.ToString(Inv) ?? "-"}, gen2 {g2} in {soak.Duration.TotalSeconds:0} s")
            : new TargetResult("soak: gen2 collections == 0", TargetStatus.Unknown, "the daemon reports no gc.gen2 counter");
        // "0 B/packet" with two decimals: a few hundred bytes (a log line) over millions of packets still rounds to zero.
        yield return soak.WorkerBytesPerPacket is double bpp
            ? new TargetResult("soak: worker allocations 0 B/packet", bpp < 0.005 ? TargetStatus.Met : TargetStatus.Missed,
                $"{soak.WorkerAllocatedBytes} B over {soak.Packets} packets = {bpp:0.00} B/packet")
            : new TargetResult("soak: worker allocations 0 B/packet", TargetStatus.Unknown,
                soak.Packets == 0 ? "no packets" : "the daemon reports no queue.N.allocated_bytes counter");
    }

    private static double? Best(double? a, double? b, bool higher) =>
        a is null ? b : b is null ? a : higher ? Math.Max(a.Value, b.Value) : Math.Min(a.Value, b.Value);

    internal static readonly IFormatProvider Inv = System.Globalization.CultureInfo.InvariantCulture;

    internal static string Format(double? ratio) => ratio is double r ? r.ToString("0.00", Inv) : "-";

    internal static string Us(double? us) => us is double u ? u.ToString("0", Inv) + " µs" : "-";
}
