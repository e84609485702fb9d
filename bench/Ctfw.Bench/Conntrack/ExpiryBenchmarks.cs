using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// Housekeeping cost (<see cref="ConnTable.Maintain"/>) for a mass expiry: a full table of
/// <see cref="Flows"/> entries whose deadlines are spread over 1–8 s, then the clock passes all of
/// them. Each iteration refills the table, so one invocation per iteration (Monitoring strategy).
/// "Budgeted" calls examine at most <see cref="Budget"/> due entries each, as a housekeeper
/// sharing a packet worker's thread would; the longest such call is the pause that worker sees.
/// </summary>
[MemoryDiagnoser]
[Monitoring]
[RunOncePerIteration]
[WarmupCount(2)]
[IterationCount(15)]
public class ExpiryBenchmarks
{
    public const int Budget = 10_000;
    private const long SpreadStartMs = 1_000;
    private const long SpreadMs = 7_000;
    /// <summary>ESTABLISHED timeout, 5 days: entries that will not expire during the benchmark.</summary>
    private const long LongLivedMs = 432_000_000;

    private ConnTable _table = null!;
    private long _base = 1_000_000;
    private readonly List<double> _maxPauseMs = [];
    private readonly List<int> _calls = [];
    private readonly List<double> _tickMaxMs = [];

    [Params(1_000_000)]
    public int Flows { get; set; }

    private long End => _base + SpreadStartMs + SpreadMs + 1;

    [GlobalSetup]
    public void Setup() => _table = new ConnTable(Flows, maxThreads: 1, _base, hashSeed: 42);

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_tickMaxMs.Count > 0)
            Console.WriteLine($"// 10 ms ticks, budget {Budget}: longest call {Summary(_tickMaxMs)}");
        if (_maxPauseMs.Count == 0)
            return;
        _maxPauseMs.Sort();
        Console.WriteLine($"// budgeted expiry ({Budget}/call): {_calls[0]} calls per 1 M; longest call per iteration: " +
            $"median {_maxPauseMs[_maxPauseMs.Count / 2]:F2} ms, max {_maxPauseMs[^1]:F2} ms, min {_maxPauseMs[0]:F2} ms");
    }

    private static string Summary(List<double> values)
    {
        values.Sort();
        return $"median {values[values.Count / 2]:F3} ms, min {values[0]:F3} ms, max {values[^1]:F3} ms over {values.Count} iterations";
    }

    /// <summary>Each iteration starts later than anything the wheel has seen (its clock only moves forward).</summary>
    private void NextBase() => _base = Math.Max(_base, _table.Wheel.Now) + 60_000;

    private void Fill(bool arm)
    {
        NextBase();
        if (_table.Count != 0)
            throw new InvalidOperationException($"table not empty before refill: {_table.Count}");
        long b = _base;
        int n = Flows;
        TableFill.Fill(_table, 0, n, b, f => b + SpreadStartMs + (f * SpreadMs / n), arm);
    }

    private void Drain(long now)
    {
        while (_table.Count > 0)
            _table.Maintain(now);
        _table.Maintain(now); // reclaim the last retired entries
    }

    [IterationSetup(Targets = [nameof(ExpireAll), nameof(ExpireAllBudgeted), nameof(FirstBudgetedCall), nameof(TickEvery10Ms)])]
    public void SetupFilledAndArmed() => Fill(arm: true);

    [IterationSetup(Target = nameof(Arm))]
    public void SetupFilledNotArmed() => Fill(arm: false);

    [IterationSetup(Target = nameof(LaterBudgetedCall))]
    public void SetupAfterFirstCall()
    {
        Fill(arm: true);
        _table.Maintain(End, Budget);
    }

    [IterationSetup(Target = nameof(RearmLive))]
    public void SetupLongLived()
    {
        NextBase();
        long b = _base;
        TableFill.Fill(_table, 0, Flows, b, _ => b + LongLivedMs, arm: true);
    }

    [IterationCleanup(Target = nameof(RearmLive))]
    public void CleanupLongLived() => Drain(_base + LongLivedMs + 1);

    [IterationCleanup(Targets = [nameof(Arm), nameof(ExpireAll), nameof(ExpireAllBudgeted), nameof(FirstBudgetedCall), nameof(LaterBudgetedCall), nameof(TickEvery10Ms)])]
    public void IterationCleanup() => Drain(End);

    /// <summary>Arming 1 M freshly inserted entries (one housekeeping pass after a burst of new flows).</summary>
    [Benchmark]
    public int Arm() => _table.Maintain(_base, budget: 0);

    /// <summary>Expire, unlink and recycle all 1 M entries in one unbudgeted call.</summary>
    [Benchmark]
    public int ExpireAll()
    {
        int expired = _table.Maintain(End);
        if (expired != Flows)
            throw new InvalidOperationException($"expired {expired}, expected {Flows}");
        return expired;
    }

    /// <summary>Expire all 1 M entries in calls of at most <see cref="Budget"/> each: the total, and (printed) the longest call.</summary>
    [Benchmark]
    public int ExpireAllBudgeted()
    {
        int total = 0, calls = 0;
        long longest = 0;
        while (total < Flows)
        {
            long t0 = Stopwatch.GetTimestamp();
            int expired = _table.Maintain(End, Budget);
            long dt = Stopwatch.GetTimestamp() - t0;
            longest = Math.Max(longest, dt);
            total += expired;
            calls++;
            if (calls > Flows)
                throw new InvalidOperationException("budgeted expiry makes no progress");
        }
        _maxPauseMs.Add(longest * 1000.0 / Stopwatch.Frequency);
        _calls.Add(calls);
        return total;
    }

    /// <summary>The first budgeted call after the clock passed every deadline: includes moving all fired slots to the due list.</summary>
    [Benchmark]
    public int FirstBudgetedCall() => _table.Maintain(End, Budget);

    /// <summary>A later budgeted call: <see cref="Budget"/> entries expired, unlinked and retired, nothing else.</summary>
    [Benchmark]
    public int LaterBudgetedCall() => _table.Maintain(End, Budget);

    /// <summary>
    /// A housekeeper ticking every 10 ms (budget <see cref="Budget"/>) while the 1 M deadlines pass:
    /// the total is the CPU spent on the whole expiry, and the longest tick (printed) the pause.
    /// </summary>
    [Benchmark]
    public int TickEvery10Ms()
    {
        int total = 0;
        long longest = 0;
        // Until the last entry fires: the wheel may fire up to one level-3 granule (512 ms) late.
        for (long t = _base + 10; _table.Count > 0 && t <= End + 2_000; t += 10)
        {
            long t0 = Stopwatch.GetTimestamp();
            total += _table.Maintain(t, Budget);
            longest = Math.Max(longest, Stopwatch.GetTimestamp() - t0);
        }
        _tickMaxMs.Add(longest * 1000.0 / Stopwatch.Frequency);
        if (total != Flows)
            throw new InvalidOperationException($"expired {total}, expected {Flows}");
        return total;
    }

    /// <summary>
    /// Steady state with 1 M long-lived entries: the clock passes one arming horizon
    /// (<see cref="TimerWheel.HorizonMs"/>), so every entry fires once and is re-armed (lazy re-arm).
    /// Divide by the horizon for the housekeeper's CPU share with 1 M idle flows.
    /// </summary>
    [Benchmark]
    public int RearmLive()
    {
        // + one level-3 granule (512 ms): arming rounds the slot up by at most that much.
        int expired = _table.Maintain(_base + TimerWheel.HorizonMs + 512);
        if (expired != 0 || _table.Wheel.Count != Flows)
            throw new InvalidOperationException($"expired {expired}, wheel holds {_table.Wheel.Count}");
        return expired;
    }
}
