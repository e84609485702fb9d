using System.Diagnostics;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;
using Ctfw.Linux;
using Ctfw.Packets;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// The state file at 1 M flows (half TCP ESTABLISHED with windows, half UDP assured): how long a
/// checkpoint takes, its size per flow, how long a restore into a fresh engine takes, and what the
/// packet path feels while the checkpoint is written. As <see cref="ExpiryPause"/>: one thread
/// classifies established traffic in receive-sized batches and times every batch, first with
/// nothing else going on (baseline), then while another thread writes the checkpoint (atomic file
/// write with fsync, as the daemon would). The longest batch is the figure; the bar is 10 ms.
/// `--state-file [DIR]` (the file goes to DIR, else CTFW_ARTIFACTS, else the temp directory).
/// </summary>
internal static class StatePersistence
{
    public const int Flows = 1_000_000;
    private static readonly PacketContext s_context = new() { VerifyChecksums = false };

    public readonly record struct Result(double WriteMs, long Bytes, long Entries, double RestoreMs, double ArmMs, int Restored,
        ExpiryPause.Phase Baseline, ExpiryPause.Phase DuringWrite, long Bad, string Reason)
    {
        /// <summary>Managed bytes the checkpoint allocated (its block buffer and the file stream): the table is never copied.</summary>
        public long WriteAllocatedBytes { get; init; }

        public bool Met => DuringWrite.MaxBatchMs <= 10 && Restored == Entries && Entries >= Flows;
    }

    public static Result Measure(string directory, TimeSpan baseline)
    {
        var trace = new EstablishedTrace(10_000, seed: 5, max: Flows + 50_000);
        trace.ValidateRound(verifyChecksums: false);
        ConnTable table = trace.Engine.Table;
        long start = trace.Now;
        Fill(table, trace.Flows, Flows, start);
        long bad = 0;
        for (int i = 0; i < 50; i++) // warm up to tier-1 code
            bad += ExpiryPause.Batch - trace.Replay(ExpiryPause.Batch, s_context);

        string path = Path.Combine(directory, $"ctfw-bench-{Environment.ProcessId}.state");
        StateWriteResult written = default;
        long writeTicks = 0;
        ExpiryPause.Phase b = Classify(trace, () => Thread.Sleep(baseline), ref bad);
        long writeAllocated = 0;
        ExpiryPause.Phase w = Classify(trace, () =>
        {
            long t0 = Stopwatch.GetTimestamp();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            StateFiles.WriteAtomic(path, s => written = trace.Engine.WriteState(s, start, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            writeAllocated = GC.GetAllocatedBytesForCurrentThread() - a0;
            writeTicks = Stopwatch.GetTimestamp() - t0;
        }, ref bad);
        long bytes = new FileInfo(path).Length;

        // Restore into a fresh engine of the same size, one second later on both clocks.
        var fresh = new ConntrackEngine(trace.Engine.Settings, start + 1000, maxWorkers: 2, hashSeed: 6);
        long r0 = Stopwatch.GetTimestamp();
        StateRestoreResult restored;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
            fresh.RestoreState(fs, start + 1000, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), out restored);
        long r1 = Stopwatch.GetTimestamp();
        fresh.Maintain(start + 1000, budget: 0); // arms every restored entry, as the housekeeper's first tick
        long r2 = Stopwatch.GetTimestamp();
        File.Delete(path);
        return new Result(Ms(writeTicks), bytes, written.Entries, Ms(r1 - r0), Ms(r2 - r1), restored.Restored, b, w, bad, restored.Message)
        {
            WriteAllocatedBytes = writeAllocated,
        };
    }

    /// <summary>
    /// `--make-state FILE [FLOWS]`: writes a state file of <paramref name="flows"/> synthetic flows (as
    /// <see cref="Measure"/> uses) for live measurements with a daemon — the takeover gap at 1 M
    /// flows (bench/takeover-gap.sh). Returns the number of entries written.
    /// </summary>
    public static long MakeFile(string path, int flows)
    {
        var trace = new EstablishedTrace(1_000, seed: 5, max: flows + 10_000);
        Fill(trace.Engine.Table, trace.Flows, flows, trace.Now);
        StateWriteResult written = default;
        StateFiles.WriteAtomic(path, s => written = trace.Engine.WriteState(s, trace.Now, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        return written.Entries;
    }

    /// <summary>Synthetic flows <paramref name="first"/>..: even ones TCP ESTABLISHED with scaled windows, odd ones UDP assured.</summary>
    private static void Fill(ConnTable table, int first, int count, long now)
    {
        for (int f = first; f < first + count; f++)
        {
            ConnTuple t = SyntheticFlows.Tuple(f);
            bool tcp = (f & 1) == 0;
            if (!tcp)
                t.Protocol = IpProto.Udp;
            int idx = table.Allocate(table.Hash(t), now);
            if (idx < 0)
                throw new InvalidOperationException($"table full after {f - first} of {count} inserts (max {table.Max})");
            ref ConnEntry e = ref table.Entries[idx];
            e.Orig = t;
            e.Status = (uint)(CtStatus.SeenReply | CtStatus.Assured);
            e.Deadline = now + 600_000 + (f % 60_000);
            e.Tcp = default;
            if (tcp)
            {
                uint seq = (uint)f * 2654435761u;
                e.Tcp.State = TcpState.Established;
                e.Tcp.Seen0 = new TcpSide { TdEnd = seq, TdMaxEnd = seq + 64_000, TdMaxWin = 64_000, TdMaxAck = seq ^ 0x5555 };
                e.Tcp.Seen1 = new TcpSide { TdEnd = seq ^ 0x5555, TdMaxEnd = (seq ^ 0x5555) + 65_000, TdMaxWin = 65_000, TdMaxAck = seq };
                e.Tcp.Scale0 = 7;
                e.Tcp.Scale1 = 7;
                e.Tcp.Flags0 = e.Tcp.Flags1 = 0x03;
            }
            else
            {
                e.StreamTs = now - 1000;
            }
            table.Ages[idx].StateSinceMs = now - (f % 100_000);
            table.Insert(idx);
        }
        table.Maintain(now, budget: 0);
    }

    /// <summary>Classifies batches on this thread while <paramref name="other"/> runs on another; every batch timed.</summary>
    private static ExpiryPause.Phase Classify(EstablishedTrace trace, Action other, ref long bad)
    {
        var histogram = new long[1 << 16]; // µs
        long batches = 0, max = 0;
        var worker = new Thread(() => other()) { Name = "bench-state-writer", IsBackground = true };
        worker.Start();
        while (worker.IsAlive)
        {
            long t0 = Stopwatch.GetTimestamp();
            bad += ExpiryPause.Batch - trace.Replay(ExpiryPause.Batch, s_context);
            long dt = Stopwatch.GetTimestamp() - t0;
            max = Math.Max(max, dt);
            histogram[(int)Math.Min(histogram.Length - 1, dt * 1_000_000 / Stopwatch.Frequency)]++;
            batches++;
        }
        worker.Join();
        (long over1Ms, int p999) = ExpiryPause.Summarize(histogram, batches);
        return new ExpiryPause.Phase(batches, Ms(max), p999, over1Ms, 0, 0, 0);
    }

    public static void Print(in Result r, TextWriter o)
    {
        o.WriteLine($"state file at {r.Entries:N0} flows (half TCP ESTABLISHED, half UDP; atomic write with fsync):");
        o.WriteLine($"  write {r.WriteMs:F0} ms, {r.Bytes:N0} B = {(double)r.Bytes / Math.Max(1, r.Entries):F1} B per flow; allocated during the write {r.WriteAllocatedBytes:N0} B (the table is not copied)");
        o.WriteLine($"  restore {r.RestoreMs:F0} ms (+ arming on the first Maintain {r.ArmMs:F0} ms), {r.Restored:N0} restored: {r.Reason}");
        o.WriteLine($"  packet thread, batches of {ExpiryPause.Batch} established packets:");
        o.WriteLine($"    baseline        {r.Baseline.Batches,10:N0} batches  longest {r.Baseline.MaxBatchMs,7:F3} ms  p99.9 {r.Baseline.P999BatchUs,5:F0} µs  >1 ms: {r.Baseline.BatchesOver1Ms}");
        o.WriteLine($"    during write    {r.DuringWrite.Batches,10:N0} batches  longest {r.DuringWrite.MaxBatchMs,7:F3} ms  p99.9 {r.DuringWrite.P999BatchUs,5:F0} µs  >1 ms: {r.DuringWrite.BatchesOver1Ms}");
        o.WriteLine($"  packets not ESTABLISHED: {r.Bad}; bar (longest batch during the write ≤ 10 ms, all restored): {(r.Met ? "met" : "NOT met")}");
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
