namespace Ctfw.Lab.Tests;

public sealed class HttpLoadResultTests
{
    [Fact]
    public void Parse_MixedRunWithLatency_ReadsRequestsElapsedAndPercentiles()
    {
        HttpLoadResult r = HttpLoadResult.Parse(TestData.Read("wrk-mix.txt"));

        Assert.Equal(10863, r.Requests);
        Assert.Equal(TimeSpan.FromSeconds(2.10), r.Elapsed);
        Assert.Equal(0, r.Errors);
        Assert.Equal(TimeSpan.FromMicroseconds(681), r.LatencyP50);
        Assert.Equal(TimeSpan.FromMilliseconds(1.72), r.LatencyP99);
        Assert.Equal(10863 / 2.10, r.RequestsPerSecond, 6);
    }

    [Fact]
    public void Parse_Non2xxLine_CountsThemAsErrors()
    {
        HttpLoadResult r = HttpLoadResult.Parse(TestData.Read("wrk-non2xx-v6.txt"));

        Assert.Equal(13617, r.Requests);
        Assert.Equal(13617, r.Non2xx);
        Assert.Equal(0, r.SocketErrors);
        Assert.Equal(13617, r.Errors);
    }

    [Fact]
    public void Parse_SocketErrorsLine_ReadsEachKind()
    {
        HttpLoadResult r = HttpLoadResult.Parse(TestData.Read("wrk-socket-errors.txt"));

        Assert.Equal(12925, r.Requests);
        Assert.Equal((0L, 308L, 592L, 0L), (r.ConnectErrors, r.ReadErrors, r.WriteErrors, r.Timeouts));
        Assert.Equal(900, r.SocketErrors);
        Assert.Equal(0, r.Non2xx);
        Assert.Equal(TimeSpan.FromMicroseconds(327), r.LatencyP99);
    }

    [Fact]
    public void Parse_WithoutLatencyDistribution_LeavesPercentilesNull()
    {
        const string output = """
            Running 1s test @ http://10.99.2.2/
              1 threads and 2 connections
              Thread Stats   Avg      Stdev     Max   +/- Stdev
                Latency    99.02us   83.76us   2.03ms   89.73%
                Req/Sec     4.61k     3.91k   14.88k    78.57%
              4400 requests in 1.00m, 2.91MB read
            Requests/sec:   73.33
            Transfer/sec:      0.97MB
            """;

        HttpLoadResult r = HttpLoadResult.Parse(output);

        Assert.Equal(4400, r.Requests);
        Assert.Equal(TimeSpan.FromMinutes(1), r.Elapsed);
        Assert.Null(r.LatencyP50);
        Assert.Null(r.LatencyP99);
    }

    [Theory]
    [InlineData("")]
    [InlineData("unable to connect to 10.99.2.2:http Connection refused")]
    [InlineData("Usage: wrk <options> <url>")]
    public void Parse_NoReport_ThrowsFormatException(string output) =>
        Assert.Throws<FormatException>(() => HttpLoadResult.Parse(output));

    [Fact]
    public void Parse_EveryPrefix_ThrowsFormatUntilTheRequestsLineIsWhole()
    {
        string full = TestData.Read("wrk-socket-errors.txt");
        int requestsLineEnd = full.IndexOf("3.00s", StringComparison.Ordinal) + "3.00s".Length;
        foreach (string prefix in TestData.Prefixes(full))
        {
            if (prefix.Length < requestsLineEnd)
            {
                Assert.Throws<FormatException>(() => HttpLoadResult.Parse(prefix));
            }
            else
            {
                HttpLoadResult r = HttpLoadResult.Parse(prefix);
                Assert.Equal(12925, r.Requests);
                Assert.Equal(TimeSpan.FromSeconds(3), r.Elapsed);
            }
        }
    }

    [Theory]
    [InlineData("681.00us", 0.681)]
    [InlineData("1.72ms", 1.72)]
    [InlineData("2.10s", 2100)]
    [InlineData("1.50m", 90_000)]
    public void Parse_LatencyUnits_ConvertToMilliseconds(string p50, double expectedMs)
    {
        string output = $"  Latency Distribution\n     50%  {p50}\n  1 requests in 1.00s, 1.00KB read\n";

        Assert.Equal(expectedMs, HttpLoadResult.Parse(output).LatencyP50!.Value.TotalMilliseconds, 6);
    }
}
