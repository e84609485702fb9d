using Ctfw.Lab.Bench;

namespace Ctfw.Lab.Tests.Bench;

public sealed class BenchSummaryTests
{
    private static readonly BenchMachine s_machine = new(new DateTime(2026, 12, 3, 16, 40, 0, DateTimeKind.Utc), "6.18.44", "AMD EPYC", 2, "10.0.12");

    /// <summary>Three reps of every set-up and workload with figures chosen so each target lands on a known side.</summary>
    private static BenchRun KnownRun(SoakResult? soak = null)
    {
        List<BenchMeasurement> m = [];
        void Add(BenchSetup s, BenchWorkload w, params double[] values)
        {
            for (int i = 0; i < values.Length; i++)
            {
                double v = values[i];
                m.Add(w == BenchWorkload.Lat
                    ? new BenchMeasurement(s, w, i + 1) { Value = v, P50Us = v / 4, P99Us = v, MaxUs = v * 3, StealPercent = 0.5 }
                    : new BenchMeasurement(s, w, i + 1) { Value = v, LossPercent = w == BenchWorkload.Udp ? 1 : null, Errors = w == BenchWorkload.Conn ? 0 : null, StealPercent = 0.5 });
            }
        }
        Add(BenchSetup.Plain, BenchWorkload.Tcp, 10, 12, 11);
        Add(BenchSetup.Kernel, BenchWorkload.Tcp, 9, 9, 9);
        Add(BenchSetup.CLoop, BenchWorkload.Tcp, 8, 8.4, 8.2);
        Add(BenchSetup.Ctfw1, BenchWorkload.Tcp, 7, 7.2, 7.1);   // 0.866 of cloop
        Add(BenchSetup.Ctfw2, BenchWorkload.Tcp, 7.5, 7.6, 7.4); // 0.915 of cloop
        Add(BenchSetup.Plain, BenchWorkload.Udp, 200_000, 200_000, 200_000);
        Add(BenchSetup.Kernel, BenchWorkload.Udp, 150_000, 150_000, 150_000);
        Add(BenchSetup.CLoop, BenchWorkload.Udp, 100_000, 100_000, 100_000);
        Add(BenchSetup.Ctfw1, BenchWorkload.Udp, 80_000, 80_000, 80_000);
        Add(BenchSetup.Ctfw2, BenchWorkload.Udp, 85_000, 85_000, 85_000); // 0.85: missed
        Add(BenchSetup.Plain, BenchWorkload.Conn, 25_000, 25_000, 25_000);
        Add(BenchSetup.Kernel, BenchWorkload.Conn, 20_000, 20_000, 20_000);
        Add(BenchSetup.CLoop, BenchWorkload.Conn, 19_000, 19_000, 19_000);
        Add(BenchSetup.Ctfw1, BenchWorkload.Conn, 18_500, 18_500, 18_500); // 0.925 of kernel: met
        Add(BenchSetup.Ctfw2, BenchWorkload.Conn, 17_000, 17_000, 17_000);
        Add(BenchSetup.Plain, BenchWorkload.Lat, 20, 20, 20);
        Add(BenchSetup.Kernel, BenchWorkload.Lat, 24, 24, 24);
        Add(BenchSetup.CLoop, BenchWorkload.Lat, 120, 120, 120);  // adds 100
        Add(BenchSetup.Ctfw1, BenchWorkload.Lat, 170, 170, 170);  // adds 150 = 1.5 × cloop: met (boundary)
        Add(BenchSetup.Ctfw2, BenchWorkload.Lat, 200, 200, 200);
        return new BenchRun(s_machine, new BenchOptions(), m, soak);
    }

    [Fact]
    public void Spread_OddAndEvenCounts_MedianMinMax()
    {
        Assert.Equal(new Spread(2, 1, 9, 3), Spread.Of([9, 1, 2]));
        Assert.Equal(new Spread(2.5, 1, 9, 4), Spread.Of([9, 1, 2, 3]));
        Assert.Equal(new Spread(4, 4, 4, 1), Spread.Of([4, double.NaN]));
        Assert.Null(Spread.Of([]));
    }

    [Fact]
    public void Ratio_MediansOfReps_AndAddedP99ForLatency()
    {
        var s = new BenchSummary(KnownRun());
        Assert.Equal(7.1 / 8.2, s.Ratio(BenchSetup.Ctfw1, BenchSetup.CLoop, BenchWorkload.Tcp)!.Value, 9);
        Assert.Equal(18_500.0 / 20_000, s.Ratio(BenchSetup.Ctfw1, BenchSetup.Kernel, BenchWorkload.Conn)!.Value, 9);
        Assert.Equal(150, s.AddedLatency(BenchSetup.Ctfw1, p99: true));
        Assert.Equal(200 / 4.0 - 20 / 4.0, s.AddedLatency(BenchSetup.Ctfw2, p99: false)!.Value, 9);
        Assert.Equal(1.5, s.Ratio(BenchSetup.Ctfw1, BenchSetup.CLoop, BenchWorkload.Lat)!.Value, 9);
    }

    [Fact]
    public void Ratio_FailedMeasurementsAreLeftOut_AndNoReferenceGivesNull()
    {
        BenchRun run = KnownRun();
        List<BenchMeasurement> m = [.. run.Measurements.Where(x => x.Setup != BenchSetup.Kernel),
            new BenchMeasurement(BenchSetup.Kernel, BenchWorkload.Tcp, 1) { Failure = "iperf3 died", Value = 100 }];
        var s = new BenchSummary(run with { Measurements = m });
        Assert.Null(s.Ratio(BenchSetup.Ctfw1, BenchSetup.Kernel, BenchWorkload.Tcp));
        Assert.Null(s.Median(BenchSetup.Kernel, BenchWorkload.Tcp));
    }

    [Fact]
    public void Targets_KnownRun_MetAndMissedWithTheBetterCtfw()
    {
        var soak = new SoakResult { Duration = TimeSpan.FromSeconds(60), Packets = 1000, Gen0 = 0, Gen1 = 0, Gen2 = 0, WorkerAllocatedBytes = 0 };
        Dictionary<string, TargetResult> t = new BenchSummary(KnownRun(soak)).Targets().Where(x => !x.Name.Contains("offload", StringComparison.Ordinal)).ToDictionary(x => x.Name.Split(':')[0] + (x.Name.Contains("gen2", StringComparison.Ordinal) ? "-gc" : x.Name.Contains("alloc", StringComparison.Ordinal) ? "-alloc" : ""));
        Assert.Equal(TargetStatus.Met, t["tcp"].Status);
        Assert.Equal("ctfw1 0.87, ctfw2 0.91; best 0.91", t["tcp"].Detail);
        Assert.Equal(TargetStatus.Missed, t["udp"].Status);
        Assert.Equal("ctfw1 0.80, ctfw2 0.85; best 0.85", t["udp"].Detail);
        Assert.Equal(TargetStatus.Met, t["conn"].Status);
        Assert.Equal(TargetStatus.Met, t["lat"].Status);
        Assert.Contains("cloop 100 µs, ctfw1 150 µs, ctfw2 180 µs; budget 150 µs", t["lat"].Detail, StringComparison.Ordinal);
        Assert.Equal(TargetStatus.Met, t["soak-gc"].Status);
        Assert.Equal(TargetStatus.Met, t["soak-alloc"].Status);
    }

    [Fact]
    public void Targets_SoakWithGen2AndAllocations_Missed()
    {
        var soak = new SoakResult { Duration = TimeSpan.FromSeconds(60), Packets = 1000, Gen0 = 4, Gen1 = 1, Gen2 = 1, WorkerAllocatedBytes = 24_000 };
        List<TargetResult> t = [.. new BenchSummary(KnownRun(soak)).Targets().Where(x => x.Name.StartsWith("soak", StringComparison.Ordinal))];
        Assert.All(t, x => Assert.Equal(TargetStatus.Missed, x.Status));
        Assert.Contains("= 24.00 B/packet", t[1].Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_CountersAbsentOrNothingMeasured_Unknown()
    {
        var soak = new SoakResult { Duration = TimeSpan.FromSeconds(5), Packets = 1000 };
        BenchRun run = KnownRun(soak) with { Measurements = [] };
        Assert.All(new BenchSummary(run).Targets(), x => Assert.Equal(TargetStatus.Unknown, x.Status));
    }

    [Fact]
    public void Targets_CLoopAddedNoLatency_CtfwMustAddNoneEither()
    {
        BenchRun run = KnownRun();
        List<BenchMeasurement> m = [.. run.Measurements.Select(x => x.Setup == BenchSetup.CLoop && x.Workload == BenchWorkload.Lat ? x with { P99Us = 18 } : x)];
        TargetResult lat = new BenchSummary(run with { Measurements = m }).Targets().Single(x => x.Name.StartsWith("lat", StringComparison.Ordinal));
        Assert.Equal(TargetStatus.Missed, lat.Status);
        Assert.Contains("budget 0 µs", lat.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_KnownRun_TablesRatiosTargetsAndProfile()
    {
        BenchRun run = KnownRun(new SoakResult { Duration = TimeSpan.FromSeconds(60), Packets = 2_000_000, Gen0 = 0, Gen1 = 0, Gen2 = 0, WorkerAllocatedBytes = 128, RssBytes = 100 << 20, Load = "tcp 0.50 Gbit/s" });
        List<BenchMeasurement> m = [.. run.Measurements.Select(x => x.Setup == BenchSetup.Ctfw1 && x.Workload == BenchWorkload.Tcp
            ? x with { Profile = new DaemonProfile { Packets = 1000 * x.Rep, UserUsPerPacket = 1, SysUsPerPacket = 2, SyscallsPerPacket = 0.25, AverageBatch = 8 } }
            : x)];
        string report = BenchReport.Render(run with { Measurements = m });

        Assert.StartsWith("# ctfw bench — 2026-12-03 16:40 UTC\n", report, StringComparison.Ordinal);
        Assert.Contains("| kernel | 6.18.44 |", report, StringComparison.Ordinal);
        Assert.Contains("| steal | median 0.5 %, max 0.5 % over 60 measurements |", report, StringComparison.Ordinal);
        Assert.Contains("| workload | unit | plain | kernel | cloop | ctfw1 | ctfw2 | offload |", report, StringComparison.Ordinal);
        Assert.Contains("| tcp | Gbit/s | 11.00 [10.00–12.00] | 9.00 [9.00–9.00] | 8.20 [8.00–8.40] | 7.10 [7.00–7.20] | 7.50 [7.40–7.60] |", report, StringComparison.Ordinal);
        Assert.Contains("| udp | kpps | 200.0 [200.0–200.0] |", report, StringComparison.Ordinal);
        Assert.Contains("| added p99 µs | 4 | 100 | 150 | 180 |", report, StringComparison.Ordinal);
        Assert.Contains("| workload | ctfw1÷cloop | ctfw2÷cloop | offload÷cloop | ctfw1÷kernel | ctfw2÷kernel | offload÷kernel |", report, StringComparison.Ordinal);
        Assert.Contains("| tcp | 0.87 | 0.91 | - | 0.79 | 0.83 | - |", report, StringComparison.Ordinal);
        Assert.Contains("| lat | 1.50 | 1.80 | - | 37.50 | 45.00 | - |", report, StringComparison.Ordinal);
        Assert.Contains("- udp: ctfw ÷ cloop ≥ 0.90: **MISSED** — ctfw1 0.80, ctfw2 0.85; best 0.85", report, StringComparison.Ordinal);
        Assert.Contains("- tcp: ctfw ÷ cloop ≥ 0.90: **met**", report, StringComparison.Ordinal);
        Assert.Contains("| ctfw1 | tcp | 2000 | - | 1.000 | 2.000 | - | 0.250 | 8.0 | - | - |", report, StringComparison.Ordinal);
        Assert.Contains("| 2000000 | 0 / 0 / 0 | - | 128 B | 0.00 | - | - / - | 100.0 MiB | 0.0 % |", report, StringComparison.Ordinal);
        Assert.DoesNotContain("## Failures", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_FailedMeasurement_ListedUnderFailuresAndRunIncomplete()
    {
        BenchRun run = KnownRun();
        run = run with { Measurements = [.. run.Measurements, new BenchMeasurement(BenchSetup.Ctfw2, BenchWorkload.Conn, 4) { Failure = "wrk completed no request" }] };
        Assert.False(run.Complete);
        Assert.Contains("- ctfw2 conn rep 4: wrk completed no request", BenchReport.Render(run), StringComparison.Ordinal);
        Assert.True(KnownRun().Complete);
    }

    /// <summary><see cref="KnownRun"/> plus the offload set-up: tcp 9.5 Gbit/s, udp 140 kpps, conn 19 000/s, 9 of every 10 packets offloaded.</summary>
    private static BenchRun OffloadRun()
    {
        BenchRun run = KnownRun();
        List<BenchMeasurement> m = [.. run.Measurements];
        foreach ((BenchWorkload w, double v) in ((BenchWorkload, double)[])[(BenchWorkload.Tcp, 9.5), (BenchWorkload.Udp, 140_000), (BenchWorkload.Conn, 19_000), (BenchWorkload.Lat, 150)])
        {
            for (int rep = 1; rep <= 3; rep++)
            {
                m.Add(new BenchMeasurement(BenchSetup.Offload, w, rep)
                {
                    Value = v,
                    P50Us = w == BenchWorkload.Lat ? v / 4 : null,
                    P99Us = w == BenchWorkload.Lat ? v : null,
                    StealPercent = 0.5,
                    Profile = new DaemonProfile { Packets = 1000 * rep, OffloadedPackets = 9000 * rep, UserUsPerPacket = 1 },
                });
            }
        }
        return run with { Measurements = m };
    }

    [Fact]
    public void Targets_OffloadMeasured_IssueTargetsAgainstKernelAndCLoop()
    {
        List<TargetResult> t = [.. new BenchSummary(OffloadRun()).Targets().Where(x => x.Name.Contains("offload", StringComparison.Ordinal))];
        Assert.Equal(["tcp: offload ÷ kernel ≥ 1.00", "tcp: offload ÷ cloop ≥ 2.00", "udp: offload ÷ kernel ≥ 1.00", "conn: offload ÷ kernel ≥ 0.90"], t.Select(x => x.Name));
        Assert.Equal([TargetStatus.Met, TargetStatus.Missed, TargetStatus.Missed, TargetStatus.Met], t.Select(x => x.Status));
        Assert.Equal("offload 1.06; 90.0 % of the packets offloaded", t[0].Detail);   // 9.5 ÷ 9
        Assert.Equal("offload 1.16; 90.0 % of the packets offloaded", t[1].Detail);   // 9.5 ÷ 8.2
        Assert.Equal("offload 0.93; 90.0 % of the packets offloaded", t[2].Detail);   // 140 ÷ 150
        Assert.Equal(0.9, new BenchSummary(OffloadRun()).OffloadedShare(BenchWorkload.Tcp)!.Value, 9);
    }

    [Fact]
    public void Targets_OffloadNotSelected_NoOffloadTargets_SelectedButFailed_Unknown()
    {
        BenchRun run = OffloadRun();
        BenchRun without = run with { Options = run.Options with { Setups = [BenchSetup.Kernel, BenchSetup.CLoop, BenchSetup.Ctfw2] } };
        Assert.DoesNotContain(new BenchSummary(without).Targets(), x => x.Name.Contains("offload", StringComparison.Ordinal));

        List<BenchMeasurement> failed = [.. run.Measurements.Select(x => x.Setup == BenchSetup.Offload ? x with { Failure = "ctfw exited" } : x)];
        List<TargetResult> t = [.. new BenchSummary(run with { Measurements = failed }).Targets().Where(x => x.Name.Contains("offload", StringComparison.Ordinal))];
        Assert.Equal(4, t.Count);
        Assert.All(t, x => Assert.Equal(TargetStatus.Unknown, x.Status));
        Assert.Equal("offload -; offloaded packets not counted (not measured)", t[0].Detail);
    }

    [Fact]
    public void Render_OffloadRun_RatiosTargetsAndOffloadedPackets()
    {
        string report = BenchReport.Render(OffloadRun());
        Assert.Contains("| tcp | Gbit/s | 11.00 [10.00–12.00] | 9.00 [9.00–9.00] | 8.20 [8.00–8.40] | 7.10 [7.00–7.20] | 7.50 [7.40–7.60] | 9.50 [9.50–9.50] |", report, StringComparison.Ordinal);
        Assert.Contains("| tcp | 0.87 | 0.91 | 1.16 | 0.79 | 0.83 | 1.06 |", report, StringComparison.Ordinal);
        Assert.Contains("| conn | 0.97 | 0.89 | 1.00 | 0.93 | 0.85 | 0.95 |", report, StringComparison.Ordinal);
        Assert.Contains("- tcp: offload ÷ cloop ≥ 2.00: **MISSED** — offload 1.16; 90.0 % of the packets offloaded", report, StringComparison.Ordinal);
        Assert.Contains("| set-up | workload | packets | offloaded | user µs/pkt |", report, StringComparison.Ordinal);
        // Medians over the reps: 2000 packets seen by ctfw, 18 000 offloaded, 90 % of the gateway's packets.
        Assert.Contains("| offload | tcp | 2000 | 18000 (90.0 %) | 1.000 |", report, StringComparison.Ordinal);
        Assert.Contains("| ctfw2 | tcp | - | - | - |", report, StringComparison.Ordinal);

        BenchRun run = OffloadRun();
        string plain = BenchReport.Render(run with { Options = run.Options with { Setups = [BenchSetup.CLoop, BenchSetup.Ctfw1] } });
        Assert.DoesNotContain("offloaded", plain, StringComparison.Ordinal);
        Assert.Contains("| set-up | workload | packets | user µs/pkt |", plain, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_OffloadProfile_ShowsOffloadedPacketsAndShare()
    {
        var m = new BenchMeasurement(BenchSetup.Offload, BenchWorkload.Tcp, 1)
        {
            Value = 30,
            Profile = new DaemonProfile { Packets = 250, OffloadedPackets = 750, UserUsPerPacket = 1, SysUsPerPacket = 1 },
        };
        Assert.StartsWith("30.00 Gbit/s; 250 packets + 750 offloaded (75.0 % bypassed ctfw), 2.00 µs CPU/packet", BenchRunner.Describe(m), StringComparison.Ordinal);
        Assert.DoesNotContain("offloaded", BenchRunner.Describe(m with { Profile = m.Profile with { OffloadedPackets = null } }), StringComparison.Ordinal);
    }
}
