using System.Text.Json;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Tests.Control;

/// <summary>`ctfw stats` with rates next to the totals, and `--json`.</summary>
public sealed class StatsRatesReportTests
{
    private static readonly List<KeyValuePair<string, long>> s_stats =
    [
        new("uptime_ms", 100_000), new("packets", 50_000),
        new("state.NEW", 1_000), new("state.ESTABLISHED", 49_000),
        new("verdict.accept", 49_990), new("verdict.drop", 10),
        new("table.entries", 12), new("control.busy", 0),
        new("rate.1s.packets", 2_000), new("rate.1s.state.NEW", 40), new("rate.1s.state.ESTABLISHED", 1_960),
        new("rate.1s.verdict.accept", 2_000), new("rate.1s.verdict.drop", 0),
        new("rate.10s.packets", 1_500), new("rate.10s.state.NEW", 30), new("rate.10s.state.ESTABLISHED", 1_470),
        new("rate.10s.verdict.accept", 1_499), new("rate.10s.verdict.drop", 1),
        new("rate.60s.packets", 600), new("rate.60s.state.NEW", 12), new("rate.60s.state.ESTABLISHED", 588),
        new("rate.60s.verdict.accept", 600), new("rate.60s.verdict.drop", 0),
    ];

    [Fact]
    public void Format_Rates_NextToTheirTotals_NotRepeatedBelow()
    {
        string report = StatsReport.Format(s_stats);
        Assert.StartsWith(
            "uptime                            1m 40s\n"
            + "packets                            50000  500.0/s since start; last 1s 2000/s, 10s 1500/s, 60s 600/s\n"
            + "\nctstate                                              last 1s   last 10s   last 60s\n"
            + "  NEW                               1000    2.00%       40/s       30/s       12/s\n"
            + "  ESTABLISHED                      49000   98.00%     1960/s     1470/s      588/s\n"
            + "\nverdicts                                             last 1s   last 10s   last 60s\n"
            + "  accept                           49990   99.98%     2000/s     1499/s      600/s\n"
            + "  drop                                10    0.02%        0/s        1/s        0/s\n", report);
        Assert.DoesNotContain("rate", report, StringComparison.Ordinal);
        Assert.Contains("\ncontrol\n  busy ", report, StringComparison.Ordinal);
    }

    [Fact]
    public void Format_NoRates_LayoutAsBefore()
    {
        string report = StatsReport.Format(s_stats.FindAll(s => !s.Key.StartsWith("rate.", StringComparison.Ordinal)));
        Assert.StartsWith("uptime                            1m 40s\npackets                            50000  500.0/s\n\nctstate\n  NEW                               1000    2.00%\n", report);
    }

    [Fact]
    public void FormatJson_ParsesBack_TotalsAndRatesByWindow()
    {
        using JsonDocument doc = JsonDocument.Parse(StatsReport.FormatJson(s_stats));
        JsonElement root = doc.RootElement;
        Assert.Equal(["counters", "rates"], root.EnumerateObject().Select(p => p.Name));

        JsonElement counters = root.GetProperty("counters");
        Assert.Equal(s_stats.Where(s => !s.Key.StartsWith("rate.", StringComparison.Ordinal)).Select(s => (s.Key, s.Value)),
            counters.EnumerateObject().Select(p => (p.Name, p.Value.GetInt64())));

        JsonElement rates = root.GetProperty("rates");
        Assert.Equal(["1s", "10s", "60s"], rates.EnumerateObject().Select(p => p.Name));
        Assert.Equal(1_500, rates.GetProperty("10s").GetProperty("packets").GetInt64());
        Assert.Equal(12, rates.GetProperty("60s").GetProperty("state.NEW").GetInt64());
        Assert.Equal(5, rates.GetProperty("1s").EnumerateObject().Count());
    }

    [Fact]
    public void FormatJson_NoRates_EmptyRatesObject_LargeAndNegativeValuesExact()
    {
        List<KeyValuePair<string, long>> stats = [new("packets", long.MaxValue), new("ab.NEW.INVALID", -1), new("packets", 3), new("rate.bogus", 9)];
        using JsonDocument doc = JsonDocument.Parse(StatsReport.FormatJson(stats));
        JsonElement counters = doc.RootElement.GetProperty("counters");
        Assert.Equal(long.MaxValue, counters.GetProperty("packets").GetInt64()); // the first of a repeated name
        Assert.Equal(-1, counters.GetProperty("ab.NEW.INVALID").GetInt64());
        Assert.Equal(9, counters.GetProperty("rate.bogus").GetInt64()); // not WINDOW.NAME: an ordinary counter
        Assert.Equal(3, counters.EnumerateObject().Count());
        Assert.Empty(doc.RootElement.GetProperty("rates").EnumerateObject());
    }
}
