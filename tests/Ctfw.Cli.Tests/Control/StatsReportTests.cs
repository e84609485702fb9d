using Ctfw.Cli.Control;

namespace Ctfw.Cli.Tests.Control;

public class StatsReportTests
{
    private static List<KeyValuePair<string, long>> Counters(params (string Name, long Value)[] counters) =>
        [.. counters.Select(c => new KeyValuePair<string, long>(c.Name, c.Value))];

    private static readonly (string, long)[] s_daemon =
    [
        ("uptime_ms", 7_384_000), ("packets", 1000),
        ("state.NEW", 100), ("state.ESTABLISHED", 880), ("state.RELATED", 0), ("state.INVALID", 20), ("state.UNTRACKED", 0), ("state.DROPPED", 0),
        ("verdict.accept", 990), ("verdict.drop", 10), ("verdict.reject", 0), ("verdict.confirm_drop", 0),
        ("reject.sent", 0), ("reject.send_errors", 0),
        ("invalid.tcp-bad-seq", 5), ("invalid.tcp-bad-flags", 15),
        ("ab.compared", 1000), ("ab.agreed", 998), ("ab.disagreed", 2), ("ab.unmarked", 0), ("ab.dir_mismatch", 0),
        ("ab.NEW.NEW", 100), ("ab.ESTABLISHED.ESTABLISHED", 878), ("ab.ESTABLISHED.INVALID", 2), ("ab.INVALID.INVALID", 20),
        ("queue.1.packets", 400), ("queue.1.queue_dropped", 0), ("queue.1.user_dropped", 0), ("queue.1.enobufs", 0),
        ("queue.0.packets", 600), ("queue.0.queue_dropped", 3), ("queue.0.user_dropped", 0), ("queue.0.enobufs", 1),
        ("table.entries", 12), ("table.max", 262144), ("table.early_drops", 0), ("table.alloc_failures", 0),
        ("log.written", 4), ("log.suppressed", 0),
    ];

    [Fact]
    public void Format_FullDaemon_GroupedReport()
    {
        string report = StatsReport.Format(Counters(s_daemon));
        Assert.StartsWith(
            "uptime                        2h 03m 04s\n"
            + "packets                             1000  0.1/s\n"
            + "\nctstate\n"
            + "  NEW                                100   10.00%\n"
            + "  ESTABLISHED                        880   88.00%\n"
            + "  RELATED                              0\n"
            + "  INVALID                             20    2.00%\n", report);
        Assert.Contains("\nverdicts\n  accept                             990   99.00%\n  drop                                10    1.00%\n", report);
        // Most frequent reason first.
        Assert.Contains("\nINVALID reasons\n  tcp-bad-flags                       15\n  tcp-bad-seq                          5\n", report);
        Assert.Contains("\nA/B against kernel conntrack\n  compared                          1000\n  agreed                             998   99.80%\n  disagreed                            2    0.20%\n", report);
        Assert.Contains(
            "  kernel \\ ctfw  NEW  ESTABLISHED  INVALID\n"
            + "  NEW            100            0        0\n"
            + "  ESTABLISHED      0          878        2\n"
            + "  INVALID          0            0       20\n", report);
        // Queues in number order, one line each.
        Assert.Contains("\nqueues\n  queue 0  packets 600  queue_dropped 3  user_dropped 0  enobufs 1\n  queue 1  packets 400  queue_dropped 0", report);
        Assert.Contains("\ntable\n  entries                             12  of 262144 (<0.01%)\n  early_drops                          0\n", report);
        Assert.DoesNotContain("  max ", report);
        // Families without a layout are printed as they come.
        Assert.Contains("\nreject\n  sent                                 0\n  send_errors                          0\n", report);
        Assert.Contains("\nlog\n  written                              4\n  suppressed                           0\n", report);
    }

    [Fact]
    public void Format_EveryCounterShown_NoneFallsThrough()
    {
        string report = StatsReport.Format(Counters(s_daemon));
        foreach ((string name, long value) in s_daemon)
        {
            if (name.StartsWith("ab.", StringComparison.Ordinal) && name.Count(c => c == '.') == 2)
                continue;
            // table.max is shown on the entries line.
            string label = name switch
            {
                "uptime_ms" => "uptime",
                "table.max" => $"of {value}",
                _ => name[(name.LastIndexOf('.') + 1)..],
            };
            Assert.Contains(label, report);
        }
        // Nothing of a known family fell through to the generic sections.
        foreach (string generic in (string[])["state", "verdict", "invalid", "ab", "queue", "uptime_ms", "other"])
            Assert.DoesNotContain($"\n{generic}\n", report);
    }

    [Fact]
    public void Format_UnderAFlood_UnjudgedDropsInTheHeaderAndTableRefusalsInOrder()
    {
        string report = StatsReport.Format(Counters(
            ("packets", 1000), ("unjudged_dropped", 250),
            ("table.entries", 5000), ("table.max", 5000), ("table.early_drops", 900), ("table.alloc_failures", 7),
            ("table.full_drops", 7), ("table.slot_shortages", 0), ("table.insert_failed", 2), ("table.reclaims_on_demand", 1)));

        Assert.StartsWith(
            "packets                             1000\n"
            + "unjudged                             250  dropped at a full queue\n", report);
        Assert.Contains(
            "\ntable\n  entries                           5000  of 5000 (100.00%)\n"
            + "  early_drops                        900\n"
            + "  alloc_failures                       7\n"
            + "  full_drops                           7\n"
            + "  slot_shortages                       0\n"
            + "  insert_failed                        2\n"
            + "  reclaims_on_demand                   1\n", report);
    }

    [Fact]
    public void Format_NothingCompared_NoMatrix()
    {
        string report = StatsReport.Format(Counters(("packets", 10), ("ab.compared", 0), ("ab.agreed", 0), ("ab.disagreed", 0), ("ab.unmarked", 10), ("ab.NEW.NEW", 0)));
        Assert.Contains("A/B against kernel conntrack\n  compared                             0\n", report);
        Assert.Contains("  unmarked                            10\n", report);
        Assert.DoesNotContain("kernel \\ ctfw", report);
        Assert.DoesNotContain("NEW", report);
    }

    [Fact]
    public void Format_NoAbCounters_NoAbBlock()
    {
        string report = StatsReport.Format(Counters(("packets", 10), ("state.NEW", 10)));
        Assert.DoesNotContain("A/B", report);
        Assert.Equal("packets                               10\n\nctstate\n  NEW                                 10  100.00%\n", report);
    }

    [Fact]
    public void Format_UnknownCounters_PrintedGenerically()
    {
        string report = StatsReport.Format(Counters(
            ("packets", 1), ("rescue.adopted", 3), ("halfclosed.tcp.fin_only", 4), ("rescue.refused", 5), ("mystery", 6),
            ("state.WEIRD", 7), ("queue.2.new_thing", 8), ("ab.NEW.BOGUS", 9), ("ab.compared", 9), ("ab.flaky", 1), ("table.resizes", 2)));
        Assert.Contains("\nrescue\n  adopted                              3\n  refused                              5\n", report);
        Assert.Contains("\nhalfclosed\n  tcp.fin_only                         4\n", report);
        Assert.Contains("\nother\n  mystery                              6\n", report);
        Assert.Contains("\nctstate\n  WEIRD                                7  100.00%\n", report);
        Assert.Contains("  queue 2  new_thing 8\n", report);
        Assert.Contains("  flaky                                1\n", report);
        Assert.Contains("  kernel \\ ctfw  BOGUS\n  NEW                9\n", report);
        Assert.Contains("\ntable\n  resizes                              2\n", report);
    }

    [Fact]
    public void Format_Empty_Empty() => Assert.Equal("", StatsReport.Format([]));

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(59_999, "59s")]
    [InlineData(60_000, "1m 00s")]
    [InlineData(3_600_000, "1h 00m 00s")]
    [InlineData(90_061_000, "1d 01h 01m 01s")]
    public void Duration_LargestUnitFirst(long ms, string text) => Assert.Equal(text, StatsReport.Duration(ms));

    [Theory]
    [InlineData(0, 10, "")]
    [InlineData(5, 0, "")]
    [InlineData(1, 3, "33.33%")]
    [InlineData(99_999, 100_000, "99.99%")]
    [InlineData(1, 1_000_000, "<0.01%")]
    [InlineData(7, 7, "100.00%")]
    public void Percent_NeverRoundsToAllOrNothing(long part, long whole, string text) => Assert.Equal(text, StatsReport.Percent(part, whole));
}
