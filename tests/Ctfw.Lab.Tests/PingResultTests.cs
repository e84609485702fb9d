namespace Ctfw.Lab.Tests;

public sealed class PingResultTests
{
    // TimeSpan.FromMilliseconds truncates 0.071 to 709 ticks; ping's 0.071 ms is 710.
    private static TimeSpan Ms(double ms) => TimeSpan.FromTicks((long)Math.Round(ms * TimeSpan.TicksPerMillisecond));

    [Fact]
    public void Parse_AllAnswered_ReadsCountsSummaryAndPercentiles()
    {
        PingResult r = PingResult.Parse(TestData.Read("ping4.txt"));

        Assert.Equal((10, 10, 0), (r.Transmitted, r.Received, r.Lost));
        Assert.Equal(Ms(0.071), r.RttMin);
        Assert.Equal(Ms(0.087), r.RttAvg);
        Assert.Equal(Ms(0.179), r.RttMax);
        // Sorted replies: .071 .075 .076 .077 .077 .078 .078 .081 .082 .179 (nearest rank 5 and 10).
        Assert.Equal(Ms(0.077), r.RttP50);
        Assert.Equal(Ms(0.179), r.RttP99);
    }

    [Fact]
    public void Parse_SomeLost_CountsLossAndUsesOnlyReplies()
    {
        PingResult r = PingResult.Parse(TestData.Read("ping6-loss.txt"));

        Assert.Equal((14, 10, 4), (r.Transmitted, r.Received, r.Lost));
        Assert.Equal(Ms(0.093), r.RttP50);
        Assert.Equal(Ms(0.100), r.RttP99);
    }

    [Fact]
    public void Parse_NothingAnswered_HasNoTimes()
    {
        PingResult r = PingResult.Parse(TestData.Read("ping4-unanswered.txt"));

        Assert.Equal((15, 0, 15), (r.Transmitted, r.Received, r.Lost));
        Assert.Null(r.RttMin);
        Assert.Null(r.RttP50);
        Assert.Null(r.RttP99);
    }

    [Fact]
    public void Parse_IcmpErrors_CountsErrors()
    {
        PingResult r = PingResult.Parse(TestData.Read("ping4-errors.txt"));

        Assert.Equal((4, 0, 2), (r.Transmitted, r.Received, r.Errors));
        Assert.Null(r.RttP50);
    }

    [Fact]
    public void Parse_Duplicates_CountedButNotSampled()
    {
        const string output = """
            PING 10.99.2.2 (10.99.2.2) 56(84) bytes of data.
            64 bytes from 10.99.2.2: icmp_seq=1 ttl=63 time=0.100 ms
            64 bytes from 10.99.2.2: icmp_seq=1 ttl=63 time=9.000 ms (DUP!)
            64 bytes from 10.99.2.2: icmp_seq=2 ttl=63 time=0.300 ms

            --- 10.99.2.2 ping statistics ---
            2 packets transmitted, 2 received, +1 duplicates, 0% packet loss, time 201ms
            rtt min/avg/max/mdev = 0.100/3.133/9.000/4.150 ms
            """;

        PingResult r = PingResult.Parse(output);

        Assert.Equal(1, r.Duplicates);
        Assert.Equal(Ms(0.1), r.RttP50);
        Assert.Equal(Ms(0.3), r.RttP99);
    }

    [Fact]
    public void Parse_EveryPrefix_ThrowsFormatUntilTheStatisticsLineIsWhole()
    {
        string full = TestData.Read("ping6-loss.txt");
        int statsEnd = full.IndexOf("packet loss, time 2656ms", StringComparison.Ordinal);
        int lineStart = full.LastIndexOf('\n', statsEnd) + 1;
        int receivedEnd = full.IndexOf(" received", lineStart, StringComparison.Ordinal) + " received".Length;
        foreach (string prefix in TestData.Prefixes(full))
        {
            if (prefix.Length < receivedEnd)
                Assert.Throws<FormatException>(() => PingResult.Parse(prefix));
            else
                Assert.Equal((14, 10), (PingResult.Parse(prefix).Transmitted, PingResult.Parse(prefix).Received));
        }
    }

    [Theory]
    [InlineData(new double[] { 5 }, 0.5, 5)]
    [InlineData(new double[] { 1, 2, 3, 4 }, 0.5, 2)]
    [InlineData(new double[] { 1, 2, 3, 4 }, 0.99, 4)]
    [InlineData(new double[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 0.9, 9)]
    public void Percentile_NearestRank(double[] sortedMs, double p, double expectedMs) =>
        Assert.Equal(TimeSpan.FromMilliseconds(expectedMs),
            PingResult.Percentile([.. sortedMs.Select(TimeSpan.FromMilliseconds)], p));

    [Fact]
    public void Percentile_NoSamples_IsNull() => Assert.Null(PingResult.Percentile([], 0.5));
}
