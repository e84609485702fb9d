using System.Diagnostics;
using System.Runtime.InteropServices;
using Ctfw.Bench.Conntrack;
using Ctfw.Bench.Firewall;
using Ctfw.Bench.Fixtures;
using Ctfw.Bench.Packets;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench;

/// <summary>
/// `--quick`: a Stopwatch smoke run of every scenario for CI, well under 30 s. Each figure is the
/// median of several repetitions after a warm-up long enough for tiered JIT to reach tier 1; bytes
/// per operation come from GC.GetAllocatedBytesForCurrentThread over all measured repetitions.
/// Exit code 1 when a hot path allocates or a scenario's validation fails; throughput targets are
/// printed, not enforced (a shared 2-vCPU machine is too noisy to gate on them).
/// </summary>
internal static class QuickRun
{
    private const int Reps = 7;
    private const int ExpiryReps = 1; // each repetition refills 1 M entries three times: the slowest part of the run
    private static readonly PacketContext s_noChecksum = new() { VerifyChecksums = false };
    private static readonly PacketContext s_checksum = new() { VerifyChecksums = true };

    /// <summary>Runs <paramref name="scenario"/> with one event subscriber whose rings a background thread drains every 10 ms.</summary>
    private static int WithEventDrainer(ConntrackEngine engine, Func<int> scenario, TextWriter o)
    {
        engine.Events.Subscribe();
        long drained = 0;
        bool stop = false;
        var drainer = new Thread(() =>
        {
            var batch = new List<ConntrackEvent>(8192);
            while (!Volatile.Read(ref stop)) // fresh read each turn of the flag set below
            {
                batch.Clear();
                drained += engine.Events.TakeAll(batch);
                Thread.Sleep(10);
            }
        }) { IsBackground = true, Name = "bench events drainer" };
        drainer.Start();
        int failures = scenario();
        Volatile.Write(ref stop, true); // release: ends the drainer's loop
        drainer.Join();
        o.WriteLine($"  (events drained {drained:N0}, dropped by full rings {engine.Events.DroppedTotal:N0})");
        engine.Events.Unsubscribe();
        return failures;
    }

    private readonly record struct Stat(double MedianNs, double MinNs, double MaxNs, double CpuNs, double BytesPerOp)
    {
        public double PerSecond => 1e9 / MedianNs;
        public double CpuPerSecond => 1e9 / CpuNs;
    }

    public static int Run(TextWriter o)
    {
        var wall = Stopwatch.StartNew();
        int failures = 0;
        ThreadCpuClock.Instance.GetTimestamp(); // initialise the clock (and its P/Invoke stub) outside any measurement
        o.WriteLine($"ctfw quick bench  {DateTime.UtcNow:yyyy-MM-dd HH:mm}Z  {RuntimeInformation.FrameworkDescription}  {Environment.ProcessorCount} CPUs  " +
            $"{(System.Runtime.GCSettings.IsServerGC ? "server" : "workstation")} GC");
        o.WriteLine("ns/op: Stopwatch, median of 7 (min–max); cpu ns: thread CPU time, median (excludes time other processes had the core)");
        o.WriteLine($"{"scenario",-40} {"ns/op",9} {"(min–max)",17} {"ops/s",10} {"cpu ns",8} {"B/op",7}");

        // ---- parse ----
        byte[] tcp4 = new byte[128], tcp6 = new byte[256], udp4 = new byte[128];
        (int l4, int l6, int lu) = SamplePackets.Write(tcp4, tcp6, udp4);
        failures += Report(o, "parse tcp4 ack+ts", Measure(() => ParseMany(tcp4.AsSpan(0, l4), 1 << 20), 1 << 20), zeroAlloc: true);
        failures += Report(o, "parse tcp6 data+ts", Measure(() => ParseMany(tcp6.AsSpan(0, l6), 1 << 20), 1 << 20), zeroAlloc: true);
        failures += Report(o, "parse udp4", Measure(() => ParseMany(udp4.AsSpan(0, lu), 1 << 20), 1 << 20), zeroAlloc: true);

        // ---- rules evaluation ----
        var rules = new Ctfw.Bench.Rules.RulesFixture();
        failures += Report(o, "rules: ESTABLISHED (3rd rule accepts)", Measure(() => rules.EvaluateMany(Ctfw.Bench.Rules.RulesFixture.Case.Established, 1 << 20), 1 << 20), zeroAlloc: true);
        failures += Report(o, $"rules: NEW, accepted by rule {Ctfw.Bench.Rules.RulesBenchmarks.NewRules + 3}", Measure(() => rules.EvaluateMany(Ctfw.Bench.Rules.RulesFixture.Case.NewLast, 1 << 18), 1 << 18), zeroAlloc: true);
        failures += Report(o, "rules: NEW, no match, policy DROP", Measure(() => rules.EvaluateMany(Ctfw.Bench.Rules.RulesFixture.Case.NewNoMatch, 1 << 18), 1 << 18), zeroAlloc: true);

        // ---- memory per flow (first, while the heap is small) ----
        MemoryFootprint.Result mem = MemoryFootprint.Measure(1_000_000);
        MemoryFootprint.Print(mem, o);
        GC.Collect();

        // ---- classify, cache-resident table (1 000 flows): the compute of the whole path ----
        var small = new EstablishedTrace(1_000);
        small.ValidateRound(verifyChecksums: false);
        int smallPerRep = small.PacketsPerRound * 50;
        long smallBad = 0;
        Stat classifySmall = Measure(() => smallBad += smallPerRep - small.Replay(smallPerRep, s_noChecksum), smallPerRep);
        failures += Report(o, "classify 1k flows ESTABLISHED", classifySmall, zeroAlloc: true);
        if (smallBad != 0)
        {
            o.WriteLine($"FAIL classify 1k: {smallBad} packets not ESTABLISHED");
            failures++;
        }
        failures += DecisionScenario(o, "1k ESTABLISHED", DecisionFixture.Established(small), smallPerRep);
        small = null!;

        // ---- classify ----
        var setup = Stopwatch.StartNew();
        var trace = new EstablishedTrace(100_000);
        trace.ValidateRound(verifyChecksums: false);
        trace.ValidateRound(verifyChecksums: true);
        o.WriteLine($"  (classify setup: 100 000 handshakes + trace of {trace.PacketsPerRound:N0} packets, validated: {setup.ElapsedMilliseconds} ms)");
        int perRep = trace.PacketsPerRound * 2;
        long bad = 0;
        Stat classify = Measure(() => bad += perRep - trace.Replay(perRep, s_noChecksum), perRep);
        failures += Report(o, "classify 100k flows ESTABLISHED", classify, zeroAlloc: true);
        Stat classifyBatched = Measure(() => bad += perRep - trace.ReplayBatched(perRep, s_noChecksum), perRep);
        failures += Report(o, "classify 100k flows, batched (ProcessBatch)", classifyBatched, zeroAlloc: true);
        Stat classifyCs = Measure(() => bad += perRep - trace.Replay(perRep, s_checksum), perRep);
        failures += Report(o, "classify 100k flows, verify checksums", classifyCs, zeroAlloc: true);
        if (bad != 0 || trace.Engine.Count != trace.Flows)
        {
            o.WriteLine($"FAIL classify: {bad} packets not ESTABLISHED, table count {trace.Engine.Count}");
            failures++;
        }
        failures += DecisionScenario(o, "100k ESTABLISHED", DecisionFixture.Established(trace), trace.PacketsPerRound);
        // An `conntrack -E` subscriber attached: steady ESTABLISHED packets change nothing, so the
        // cost is the one volatile read per packet that asks whether anyone listens.
        trace.Engine.Events.Subscribe();
        Stat classifySubscribed = Measure(() => bad += perRep - trace.Replay(perRep, s_noChecksum), perRep);
        failures += Report(o, "classify 100k ESTABLISHED, -E subscribed", classifySubscribed, zeroAlloc: true);
        trace.Engine.Events.Unsubscribe();
        trace = null!;
        GC.Collect();

        // ---- whole decision, NEW: a fresh tuple per SYN, the table flushed between repetitions ----
        failures += DecisionScenario(o, "NEW SYN accepted", DecisionFixture.New(accepted: true, 1 << 16), 1 << 16);
        failures += DecisionScenario(o, "NEW SYN dropped", DecisionFixture.New(accepted: false, 1 << 16), 1 << 16);
        // Every accepted SYN confirms an entry: a NEW event per packet into the worker's ring, drained
        // every 10 ms by another thread as the daemon's event stream does.
        DecisionFixture subscribed = DecisionFixture.New(accepted: true, 1 << 16);
        failures += WithEventDrainer(subscribed.Engine, () => DecisionScenario(o, "NEW SYN accepted, -E subscribed", subscribed, 1 << 16), o);
        GC.Collect();
        failures += FloodScenario(o);
        GC.Collect();

        o.WriteLine($"  (classify done at {wall.Elapsed.TotalSeconds:F1} s)");

        // ---- lookup ----
        (Stat lookupSmall, Stat batchSmall) = LookupScenario(o, 10_000, ref failures);
        (Stat lookupLarge, Stat batchLarge) = LookupScenario(o, 1_000_000, ref failures);
        GC.Collect();

        // ---- expiry ----
        ExpiryScenario(o, 1_000_000, ref failures);

        o.WriteLine($"  (expiry scenario done at {wall.Elapsed.TotalSeconds:F1} s)");
        ExpiryPause.Result pause = ExpiryPause.Measure(ExpiryPause.DaemonBudget, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        ExpiryPause.Print(pause, o);
        if (pause.Bad != 0 || pause.Allocated != 0 || pause.Expiry.Expired != ExpiryPause.ExpiringFlows)
        {
            o.WriteLine("FAIL expiry pause scenario: packets misclassified, entries lost, allocation, or not all expired");
            failures++;
        }
        GC.Collect();

        // ---- targets ----
        o.WriteLine("targets, on thread CPU time (informational; gate on them only with a quiet machine):");
        Target(o, "classify >= 10 M packets/s (1k flows, in cache)", classifySmall.CpuPerSecond >= 10e6, $"{classifySmall.CpuPerSecond / 1e6:F2} M/s");
        Target(o, "classify >= 10 M packets/s (100k flows)", classify.CpuPerSecond >= 10e6, $"{classify.CpuPerSecond / 1e6:F2} M/s");
        Target(o, "classify batched >= 10 M packets/s (100k flows)", classifyBatched.CpuPerSecond >= 10e6, $"{classifyBatched.CpuPerSecond / 1e6:F2} M/s");
        Target(o, "classify 0 B/packet", classify.BytesPerOp == 0, $"{classify.BytesPerOp:F3} B");
        Target(o, "lookup 1M <= 2 x lookup 10k", lookupLarge.CpuNs <= 2 * lookupSmall.CpuNs,
            $"{lookupLarge.CpuNs:F1} / {lookupSmall.CpuNs:F1} ns = {lookupLarge.CpuNs / lookupSmall.CpuNs:F2}x");
        Target(o, "batched lookup 1M <= 2 x batched lookup 10k", batchLarge.CpuNs <= 2 * batchSmall.CpuNs,
            $"{batchLarge.CpuNs:F1} / {batchSmall.CpuNs:F1} ns = {batchLarge.CpuNs / batchSmall.CpuNs:F2}x");
        Target(o, "packet path: no batch > 10 ms while 1 M entries expire", pause.Met,
            $"longest batch {pause.Expiry.MaxBatchMs:F3} ms (baseline {pause.Baseline.MaxBatchMs:F3} ms)");
        Target(o, "1 M flows: process RSS <= 200 MB", mem.ProcessRssFilled <= 200_000_000,
            $"{mem.ProcessRssFilled / 1e6:F1} MB; table arrays {mem.ComputedBytes / (double)mem.Max:F1} B/flow");

        o.WriteLine($"quick run: {wall.Elapsed.TotalSeconds:F1} s, {(failures == 0 ? "OK" : $"{failures} FAILURE(S)")}");
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// The whole decision (<see cref="DecisionBenchmarks"/>): the pre-pipeline composition of
    /// QueueWorker.Judge, then FirewallPipeline.DecideBatch, on the same packets; NEW pools are
    /// flushed before each repetition, outside the measured interval.
    /// </summary>
    private static int DecisionScenario(TextWriter o, string name, DecisionFixture f, int perRep)
    {
        int failures = 0;
        Stat composition = Measure(() => f.RunComposition(perRep), perRep, f.Reset);
        failures += Report(o, $"decision {name}, composition", composition, zeroAlloc: true);
        Stat pipeline = Measure(() => f.RunPipeline(perRep), perRep, f.Reset);
        failures += Report(o, $"decision {name}, pipeline", pipeline, zeroAlloc: true);
        f.Reset();
        o.WriteLine($"  (pipeline ÷ composition: {pipeline.MedianNs / composition.MedianNs:F2} wall, {pipeline.CpuNs / composition.CpuNs:F2} cpu)");
        if (f.Unexpected != 0)
        {
            o.WriteLine($"FAIL decision {name}: {f.Unexpected} of {f.Packets} packets not {f.Expected}");
            failures++;
        }
        return failures;
    }

    /// <summary>
    /// A SYN flood at nf_conntrack_max (issue 13): every SYN is a fresh tuple, the table is full of
    /// unassured entries, so each one early-drops a victim; the worker reclaims its victims when it
    /// leaves each 64-packet batch, and no housekeeping runs at all. Checks that no new flow was
    /// refused for want of an entry (slot shortage) and that the path does not allocate.
    /// </summary>
    private static int FloodScenario(TextWriter o)
    {
        const int Max = 65_536, PerRep = 1 << 16, Batch = 64;
        const long Now = 1_000_000;
        var settings = new ConntrackSettings();
        if (settings.Set("nf_conntrack_max", Max.ToString(System.Globalization.CultureInfo.InvariantCulture)) is { } error)
            throw new InvalidOperationException(error);
        var engine = new ConntrackEngine(settings, Now, maxWorkers: 2, hashSeed: 1);
        ConntrackWorker worker = engine.CreateWorker();
        byte[] buffer = GC.AllocateArray<byte>(PerRep * 64, pinned: true);
        var offsets = new int[PerRep];
        var lengths = new int[PerRep];
        int offset = 0;
        for (int i = 0; i < PerRep; i++)
        {
            var spec = new TcpSpec
            {
                Src = SyntheticFlows.Client(i),
                Dst = SyntheticFlows.Server(i),
                SrcPort = 1024,
                DstPort = SyntheticFlows.ServerPort,
                Seq = unchecked((uint)i * 2654435761u),
                Flags = TcpFlags.Syn,
                Window = 64240,
                Mss = 1460,
            };
            offsets[i] = offset;
            lengths[i] = PacketBuilder.Tcp(buffer.AsSpan(offset), spec);
            offset += lengths[i];
        }
        ushort generation = 0;
        long notNew = 0;
        Stat flood = Measure(() =>
        {
            // A new source port each repetition: every SYN is a tuple the table has not seen.
            generation++;
            long created = 0;
            for (int b = 0; b < PerRep; b += Batch)
            {
                worker.Enter();
                for (int i = b; i < b + Batch; i++)
                {
                    Span<byte> packet = buffer.AsSpan(offsets[i], lengths[i]);
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(packet[20..], (ushort)(1024 + generation));
                    worker.Process(packet, Now, s_noChecksum, out Classification r);
                    created += r.State == CtState.New ? 1 : 0;
                }
                worker.Exit();
            }
            notNew += PerRep - created;
            return created;
        }, PerRep);
        int failures = Report(o, "NEW SYN flood at table max (early drop)", flood, zeroAlloc: true);
        o.WriteLine($"  (flood: {engine.EarlyDrops:N0} early drops, {engine.FullDrops:N0} refused table-full, {engine.SlotShortages} slot shortages, " +
            $"{engine.ReclaimsOnDemand:N0} worker reclaims, {notNew:N0} SYNs not NEW, table {engine.Count:N0}/{Max:N0})");
        if (engine.SlotShortages != 0 || engine.Count > Max || engine.EarlyDrops == 0 || notNew > engine.FullDrops)
        {
            o.WriteLine("FAIL flood at table max: new flows refused for want of an entry, table over max, or no early drop");
            failures++;
        }
        return failures;
    }

    private static (Stat One, Stat Batched) LookupScenario(TextWriter o, int flows, ref int failures)
    {
        const int Keys = 1 << 20;
        const long Now = 1_000_000;
        var table = new ConnTable(flows, maxThreads: 1, Now, hashSeed: 42);
        TableFill.Fill(table, 0, flows, Now, _ => Now + 3_600_000);
        (ConnTuple[] keys, ulong[] hashes) = LookupBenchmarks.MakeKeys(table, flows, Keys, seed: 7);
        int misses = 0;
        Stat prehashed = Measure(() =>
        {
            long acc = 0;
            for (int i = 0; i < Keys; i++)
            {
                int idx = table.Lookup(keys[i], hashes[i], Now, out int dir);
                misses += idx < 0 ? 1 : 0;
                acc += idx + dir;
            }
            return acc;
        }, Keys);
        Stat hashed = Measure(() =>
        {
            long acc = 0;
            for (int i = 0; i < Keys; i++)
                acc += table.Lookup(keys[i], table.Hash(keys[i]), Now, out int dir) + dir;
            return acc;
        }, Keys);
        string n = flows >= 1_000_000 ? $"{flows / 1_000_000}M" : $"{flows / 1000}k";
        failures += Report(o, $"lookup {n} flows (hash precomputed)", prehashed, zeroAlloc: true);
        failures += Report(o, $"hash + lookup {n} flows", hashed, zeroAlloc: true);
        const int Group = 32;
        var idx = new int[Group];
        var dirs = new int[Group];
        Stat batched = Measure(() =>
        {
            long acc = 0;
            for (int i = 0; i < Keys; i += Group)
            {
                table.LookupBatch(keys.AsSpan(i, Group), hashes.AsSpan(i, Group), Now, idx, dirs);
                for (int k = 0; k < Group; k++)
                {
                    misses += idx[k] < 0 || dirs[k] != ((i + k) & 1) ? 1 : 0;
                    acc += idx[k];
                }
            }
            return acc;
        }, Keys);
        failures += Report(o, $"lookup {n} flows, batches of {Group} (LookupBatch)", batched, zeroAlloc: true);
        if (misses != 0)
        {
            o.WriteLine($"FAIL lookup {n}: {misses} misses");
            failures++;
        }
        return (prehashed, batched);
    }

    private static void ExpiryScenario(TextWriter o, int flows, ref int failures)
    {
        const int Budget = ExpiryBenchmarks.Budget;
        long now = 1_000_000;
        var table = new ConnTable(flows, maxThreads: 1, now, hashSeed: 42);
        var all = new List<double>();
        var budgetedTotal = new List<double>();
        var budgetedMax = new List<double>();
        var tickMax = new List<double>();
        var tickTotal = new List<double>();
        long allocated = 0;
        int calls = 0;
        for (int rep = 0; rep < ExpiryReps; rep++)
        {
            for (int mode = 0; mode < 3; mode++)
            {
                now = table.Wheel.Now + 60_000;
                long b = now, end = now + 8_001;
                TableFill.Fill(table, 0, flows, b, f => b + 1_000 + (f * 7_000L / flows));
                long a0 = GC.GetAllocatedBytesForCurrentThread();
                long t0 = Stopwatch.GetTimestamp();
                long longest = 0;
                int expired = 0;
                if (mode == 0)
                {
                    expired = table.Maintain(end);
                }
                else if (mode == 1)
                {
                    calls = 0;
                    while (expired < flows && calls++ < flows)
                    {
                        long c0 = Stopwatch.GetTimestamp();
                        expired += table.Maintain(end, Budget);
                        longest = Math.Max(longest, Stopwatch.GetTimestamp() - c0);
                    }
                }
                else
                {
                    // Until the last entry fires: the wheel may fire up to one level-3 granule (512 ms) late.
                    for (long t = b + 10; table.Count > 0 && t <= end + 2_000; t += 10)
                    {
                        long c0 = Stopwatch.GetTimestamp();
                        expired += table.Maintain(t, Budget);
                        longest = Math.Max(longest, Stopwatch.GetTimestamp() - c0);
                    }
                }
                double ms = Ms(Stopwatch.GetTimestamp() - t0);
                allocated += GC.GetAllocatedBytesForCurrentThread() - a0;
                (mode == 0 ? all : mode == 1 ? budgetedTotal : tickTotal).Add(ms);
                if (mode == 1)
                    budgetedMax.Add(Ms(longest));
                if (mode == 2)
                    tickMax.Add(Ms(longest));
                if (expired != flows || table.Count != 0)
                {
                    o.WriteLine($"FAIL expiry mode {mode}: expired {expired} of {flows}, {table.Count} left");
                    failures++;
                }
            }
        }
        o.WriteLine($"expiry of 1M entries (deadlines spread over 7 s), wall clock, median of {ExpiryReps}:");
        o.WriteLine($"  one unbudgeted Maintain            {Median(all),8:F1} ms total = {Median(all) * 1e6 / flows:F1} ns/entry");
        o.WriteLine($"  budget {Budget}/call ({calls} calls)      {Median(budgetedTotal),8:F1} ms total, longest call {Median(budgetedMax):F2} ms");
        o.WriteLine($"  10 ms ticks, budget {Budget}          {Median(tickTotal),8:F1} ms total, longest tick {Median(tickMax):F2} ms");
        o.WriteLine($"  allocated during Maintain: {allocated} B");
        if (allocated != 0)
            failures++;
    }

    private static int ParseMany(ReadOnlySpan<byte> packet, int n)
    {
        int acc = 0;
        for (int i = 0; i < n; i++)
        {
            InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket p);
            acc += (int)reason + p.SrcPort;
        }
        return acc;
    }

    /// <param name="before">Run before every repetition, outside the measured interval (state to reset).</param>
    private static Stat Measure(Func<long> rep, long opsPerRep, Action? before = null)
    {
        // Warm-up: at least 3 repetitions and 200 ms, so hot methods are at tier 1 (30 calls + 100 ms delay).
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < 3 || warm.ElapsedMilliseconds < 200; i++)
        {
            before?.Invoke();
            rep();
        }
        double[] ns = new double[Reps];
        double[] cpu = new double[Reps];
        long bytes = 0;
        for (int r = 0; r < Reps; r++)
        {
            before?.Invoke();
            long a0 = GC.GetAllocatedBytesForCurrentThread();
            long c0 = ThreadCpuClock.Instance.GetTimestamp();
            long t0 = Stopwatch.GetTimestamp();
            rep();
            long t1 = Stopwatch.GetTimestamp();
            long c1 = ThreadCpuClock.Instance.GetTimestamp();
            bytes += GC.GetAllocatedBytesForCurrentThread() - a0;
            ns[r] = (t1 - t0) * 1e9 / Stopwatch.Frequency / opsPerRep;
            cpu[r] = (double)(c1 - c0) / opsPerRep;
        }
        Array.Sort(ns);
        Array.Sort(cpu);
        return new Stat(ns[Reps / 2], ns[0], ns[^1], cpu[Reps / 2], (double)bytes / (opsPerRep * Reps));
    }

    private static int Report(TextWriter o, string name, in Stat s, bool zeroAlloc)
    {
        o.WriteLine($"{name,-40} {s.MedianNs,9:F2} {$"({s.MinNs:F1}–{s.MaxNs:F1})",17} {FormatRate(s.PerSecond),10} {s.CpuNs,8:F2} {s.BytesPerOp,7:F3}");
        if (zeroAlloc && s.BytesPerOp > 0)
        {
            o.WriteLine($"FAIL {name}: allocates {s.BytesPerOp:F3} B per operation");
            return 1;
        }
        return 0;
    }

    private static void Target(TextWriter o, string name, bool met, string value) =>
        o.WriteLine($"  [{(met ? "met " : "MISS")}] {name,-34} {value}");

    private static string FormatRate(double perSecond) => perSecond >= 1e6 ? $"{perSecond / 1e6:F2} M" : $"{perSecond / 1e3:F1} k";

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static double Median(List<double> v)
    {
        v.Sort();
        return v[v.Count / 2];
    }
}
