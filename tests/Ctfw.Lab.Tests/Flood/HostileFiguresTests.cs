using Ctfw.Lab.Flood;

namespace Ctfw.Lab.Tests.Flood;

/// <summary>The hostile-load suite's figures and ruleset, without a lab: what counts as a success, a survival, a table within its max.</summary>
public sealed class HostileFiguresTests
{
    [Fact]
    public void ProbeFigures_Of_CountsSlotsLongestFailedRunAndReasons()
    {
        ProbeAttempt[] attempts =
        [
            new(3, false, double.NaN, "timeout"),
            new(0, true, 2, null),
            new(1, false, double.NaN, "timeout"),
            new(2, false, double.NaN, "ConnectionRefused"),
            new(4, true, 10, null),
            new(5, true, 4, null),
        ];
        ProbeFigures f = ProbeFigures.Of(attempts);
        Assert.Equal(6, f.Attempts);
        Assert.Equal(3, f.Successes);
        Assert.Equal(50.0, f.SuccessPercent);
        Assert.Equal(3, f.LongestFailedRun); // slots 1-3, in slot order whatever the completion order
        Assert.Equal(4, f.MedianConnectMs);
        Assert.Equal(10, f.MaxConnectMs);
        Assert.Equal(2, f.Failures["timeout"]);
        Assert.Equal(1, f.Failures["ConnectionRefused"]);
        Assert.Contains("3/6 (50.0 % of 100 ms slots)", f.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void ProbeFigures_NoAttempts_ZeroPercent()
    {
        ProbeFigures f = ProbeFigures.Of([]);
        Assert.Equal(0, f.SuccessPercent);
        Assert.True(double.IsNaN(f.MedianConnectMs));
    }

    [Theory]
    [InlineData(80, 80, 0, null, true)]
    [InlineData(80, 79, 0, null, false)] // one message never echoed
    [InlineData(80, 80, 1, null, false)] // out of order
    [InlineData(80, 80, 0, "receive: ConnectionReset (Connection reset by peer)", false)]
    public void ConversationFigures_Survived_OnlyWhenEverythingEchoedInOrderWithoutError(int sent, int echoed, int outOfOrder, string? error, bool survived)
    {
        var c = new ConversationFigures(sent, echoed, outOfOrder, error, 300, 0);
        Assert.Equal(survived, c.Survived);
        Assert.StartsWith(survived ? "survived" : "BROKEN", c.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void HostileResult_TableWithinMax_FalseWhenOneSampleExceedsIt_UnreadSamplesIgnored()
    {
        HostileResult within = Result([new(0, 4999, 5000, null, null, null, null), new(0.5, 5000, 5000, null, null, null, null), new(1, null, null, null, null, null, null)]);
        HostileResult over = Result([new(0, 4999, 5000, null, null, null, null), new(0.5, 5001, 5000, null, null, null, null)]);
        Assert.True(within.TableWithinMax);
        Assert.Equal(5000, within.TableEntriesMax);
        Assert.False(over.TableWithinMax);
        Assert.Contains("within max at every sample: NO", over.Report(), StringComparison.Ordinal);
        Assert.Contains("OVER MAX", over.Summary(), StringComparison.Ordinal);
    }

    [Fact]
    public void HostileResult_ForbiddenPassed_SumsTcpAndUdpArrivals()
    {
        HostileResult r = Result([]) with { Arrived = new ServerCounts(ForbiddenTcp: 16, ForbiddenUdp: 8, Syn: 1000, Udp: 2000) };
        Assert.Equal(24, r.ForbiddenPassed);
        Assert.Contains("PASSED to the server: 24 (16 TCP, 8 UDP)", r.Report(), StringComparison.Ordinal);
    }

    [Fact]
    public void HostileRules_Ruleset_LogRuleOnlyWhenAsked_ForbiddenPortNeverAccepted()
    {
        string plain = HostileRules.Ruleset(logFlood: false);
        string logged = HostileRules.Ruleset(logFlood: true);
        Assert.DoesNotContain("-j LOG", plain, StringComparison.Ordinal);
        Assert.Contains("-j LOG", logged, StringComparison.Ordinal);
        Assert.Contains(":FORWARD DROP", plain, StringComparison.Ordinal);
        Assert.DoesNotContain(HostileRules.ForbiddenPort.ToString(System.Globalization.CultureInfo.InvariantCulture), plain, StringComparison.Ordinal);
        // LOG comes before the ESTABLISHED accept, so every flood SYN hits it.
        Assert.True(logged.IndexOf("-j LOG", StringComparison.Ordinal) < logged.IndexOf("RELATED,ESTABLISHED", StringComparison.Ordinal));
    }

    [Fact]
    public void HostileLoad_DefaultIsBursts_SteadyIsOneStream()
    {
        var load = new HostileLoad();
        Assert.Equal(HostileLoad.DefaultBurst, load.Burst);
        Assert.Contains("in 200 ms bursts every 1500 ms", load.Describe(), StringComparison.Ordinal);
        Assert.Null(load.Steady().Burst);
        Assert.Contains("SYN flood at max rate +", load.Steady().Describe(), StringComparison.Ordinal);
    }

    private static HostileResult Result(IReadOnlyList<HostileSample> samples) =>
        new() { Firewall = "test", Load = "test", Samples = samples };
}
