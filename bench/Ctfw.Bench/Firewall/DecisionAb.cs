using System.Globalization;

namespace Ctfw.Bench.Firewall;

/// <summary>
/// `--decision-ab`: the two ways of deciding of <see cref="DecisionBenchmarks"/>, interleaved in one
/// process: round after round, composition and pipeline (alternating which goes first) decide the
/// same number of packets, each timed on the thread's CPU clock. Drift of a shared machine (load,
/// co-tenants' cache pressure) then hits both sides of a round alike; the median of the per-round
/// ratios is the figure, its interquartile range the spread. A NEW pool is flushed before every
/// side of every round, outside the timed interval.
/// </summary>
internal static class DecisionAb
{
    private const int PerSide = 16_384;
    private const int Warmup = 20;

    public static int Run(TextWriter o, int rounds)
    {
        ThreadCpuClock.Instance.GetTimestamp();
        o.WriteLine($"decision A/B, {DateTime.UtcNow:yyyy-MM-dd HH:mm}Z, {rounds} rounds of {PerSide} packets per side, thread CPU ns/packet; load {File.ReadAllText("/proc/loadavg").Trim()}");
        o.WriteLine($"{"case",-18} {"composition",12} {"pipeline",10} {"ratio p25",10} {"median",8} {"p75",8} {"B/pkt",7}");
        int failures = 0;
        failures += Case(o, "Established1k", DecisionFixture.Established(1_000), rounds);
        failures += Case(o, "Established100k", DecisionFixture.Established(100_000), rounds);
        failures += Case(o, "NewAccepted", DecisionFixture.New(accepted: true, PerSide), rounds);
        failures += Case(o, "NewDropped", DecisionFixture.New(accepted: false, PerSide), rounds);
        o.WriteLine($"load at the end: {File.ReadAllText("/proc/loadavg").Trim()}");
        return failures == 0 ? 0 : 1;
    }

    private static int Case(TextWriter o, string name, DecisionFixture f, int rounds)
    {
        var a = new double[rounds];
        var b = new double[rounds];
        var ratio = new double[rounds];
        long allocated = 0;
        for (int r = -Warmup; r < rounds; r++)
        {
            bool pipelineFirst = (r & 1) != 0;
            double first = Side(f, pipelineFirst, ref allocated);
            double second = Side(f, !pipelineFirst, ref allocated);
            if (r < 0)
            {
                allocated = 0;
                continue;
            }
            a[r] = pipelineFirst ? second : first;
            b[r] = pipelineFirst ? first : second;
            ratio[r] = b[r] / a[r];
        }
        f.Reset();
        Array.Sort(a);
        Array.Sort(b);
        Array.Sort(ratio);
        double perPacket = (double)allocated / (2L * rounds * PerSide);
        o.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-18} {a[rounds / 2],12:F1} {b[rounds / 2],10:F1} {ratio[rounds / 4],10:F3} {ratio[rounds / 2],8:F3} {ratio[3 * rounds / 4],8:F3} {perPacket,7:F3}"));
        if (f.Unexpected != 0 || allocated != 0)
        {
            o.WriteLine($"FAIL {name}: {f.Unexpected} of {f.Packets} packets not {f.Expected}, {allocated} B allocated");
            return 1;
        }
        return 0;
    }

    private static double Side(DecisionFixture f, bool pipeline, ref long allocated)
    {
        f.Reset();
        long a0 = GC.GetAllocatedBytesForCurrentThread();
        long c0 = ThreadCpuClock.Instance.GetTimestamp();
        if (pipeline)
            f.RunPipeline(PerSide);
        else
            f.RunComposition(PerSide);
        long c1 = ThreadCpuClock.Instance.GetTimestamp();
        allocated += GC.GetAllocatedBytesForCurrentThread() - a0;
        return (double)(c1 - c0) / PerSide;
    }
}
