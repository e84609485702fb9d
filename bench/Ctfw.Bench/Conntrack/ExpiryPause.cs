using System.Diagnostics;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// The packet path while 1 M entries expire at once: one thread classifies established traffic in
/// receive-sized batches (as a queue worker does) and times every batch; another thread is the
/// daemon's housekeeper (Maintain every 10 ms with the daemon's budget). First a baseline phase with
/// nothing to expire, then the phase in which all 1 M synthetic entries are due at the same moment.
/// The figure that matters is the longest batch of the packet thread in each phase: a pause caused by
/// expiry would show up there. Needs two CPUs to mean anything (the daemon has the housekeeper on its
/// own thread too). `--expiry-pause`, and part of `--quick`.
/// </summary>
internal static class ExpiryPause
{
    public const int ExpiringFlows = 1_000_000;
    public const int Batch = 64;
    /// <summary>The daemon's housekeeping budget per 10 ms tick (FirewallDaemon.HousekeepingBudget).</summary>
    public const int DaemonBudget = 16_384;
    private static readonly PacketContext s_context = new() { VerifyChecksums = false };

    public readonly record struct Phase(long Batches, double MaxBatchMs, double P999BatchUs, long BatchesOver1Ms, int Expired, double LongestMaintainMs, int Ticks);

    public readonly record struct Result(Phase Baseline, Phase Expiry, int Budget, long Bad, long Allocated)
    {
        public bool Met => Expiry.MaxBatchMs <= 10 && Expiry.Expired == ExpiringFlows;
    }

    public static Result Measure(int budget, TimeSpan baseline, TimeSpan maxExpiry)
    {
        var trace = new EstablishedTrace(10_000, seed: 5, max: ExpiringFlows + 50_000);
        trace.ValidateRound(verifyChecksums: false);
        ConnTable table = trace.Engine.Table;
        long start = trace.Now;
        // Housekeeper time at which every synthetic entry expires: 200 s on, before any trace entry
        // could (the trace's flows always have data in flight: their timeout is the 300 s "unacknowledged").
        long due = start + 200_000;
        TableFill.Fill(table, trace.Flows, ExpiringFlows, start, _ => due);

        long bad = 0;
        long allocated = 0;
        for (int i = 0; i < 50; i++) // warm up to tier-1 code
            bad += Batch - trace.Replay(Batch, s_context);

        Phase b = Run(trace, table, start, due, budget, baseline, expire: false, ref bad, ref allocated);
        Phase e = Run(trace, table, start, due, budget, maxExpiry, expire: true, ref bad, ref allocated);
        if (table.Count != trace.Flows)
            bad += Math.Abs(table.Count - trace.Flows);
        return new Result(b, e, budget, bad, allocated);
    }

    private static Phase Run(EstablishedTrace trace, ConnTable table, long start, long due, int budget, TimeSpan limit, bool expire,
        ref long bad, ref long allocated)
    {
        int expired = 0, ticks = 0;
        long longestMaintain = 0;
        var stop = new ManualResetEventSlim();
        var housekeeper = new Thread(() =>
        {
            // Housekeeper clock, 10 ms a tick as in the daemon: the baseline ends well before the due time;
            // the expiry phase starts 1 s before it, so the wheel cascades as it would in a daemon.
            long now = expire ? due - 1_000 : start + 1;
            while (!stop.IsSet)
            {
                long t0 = Stopwatch.GetTimestamp();
                expired += table.Maintain(now, budget);
                longestMaintain = Math.Max(longestMaintain, Stopwatch.GetTimestamp() - t0);
                ticks++;
                if (expire && table.Count == trace.Flows)
                    break;
                now += 10;
                Thread.Sleep(10);
            }
        }) { Name = "bench-housekeeper", IsBackground = true };

        var histogram = new long[1 << 16]; // batch time in µs, last bucket = "65 ms or more"
        long batches = 0, max = 0;
        var clock = Stopwatch.StartNew();
        housekeeper.Start();
        long a0 = GC.GetAllocatedBytesForCurrentThread();
        while (clock.Elapsed < limit && (expire ? housekeeper.IsAlive : true))
        {
            long t0 = Stopwatch.GetTimestamp();
            bad += Batch - trace.Replay(Batch, s_context);
            long dt = Stopwatch.GetTimestamp() - t0;
            max = Math.Max(max, dt);
            histogram[(int)Math.Min(histogram.Length - 1, dt * 1_000_000 / Stopwatch.Frequency)]++;
            batches++;
        }
        allocated += GC.GetAllocatedBytesForCurrentThread() - a0;
        stop.Set();
        housekeeper.Join();

        (long over1Ms, int p999) = Summarize(histogram, batches);
        return new Phase(batches, Ms(max), p999, over1Ms, expired, Ms(longestMaintain), ticks);
    }

    public static void Print(in Result r, TextWriter o)
    {
        o.WriteLine($"packet path while 1 M entries expire at once (housekeeper: Maintain every 10 ms, budget {r.Budget}; packet thread: batches of {Batch} established packets):");
        Line(o, "baseline (nothing due)", r.Baseline);
        Line(o, "1 M entries due", r.Expiry);
        o.WriteLine($"  packets not ESTABLISHED or entries lost: {r.Bad}; allocated on the packet thread: {r.Allocated} B");
    }

    private static void Line(TextWriter o, string name, in Phase p) =>
        o.WriteLine($"  {name,-24} {p.Batches,10:N0} batches  longest {p.MaxBatchMs,7:F3} ms  p99.9 {p.P999BatchUs,5:F0} µs  >1 ms: {p.BatchesOver1Ms,4}" +
            $"   housekeeper: {p.Expired:N0} expired in {p.Ticks} ticks, longest Maintain {p.LongestMaintainMs:F2} ms");

    /// <summary>Batches over 1 ms and the 99.9th percentile (µs) of a histogram of batch times in µs.</summary>
    internal static (long Over1Ms, int P999Us) Summarize(long[] histogram, long batches)
    {
        long over1Ms = 0;
        for (int us = 1000; us < histogram.Length; us++)
            over1Ms += histogram[us];
        long rank = (long)Math.Ceiling(batches * 0.999), seen = 0;
        int p999 = 0;
        for (; p999 < histogram.Length; p999++)
        {
            seen += histogram[p999];
            if (seen >= rank)
                break;
        }
        return (over1Ms, p999);
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
