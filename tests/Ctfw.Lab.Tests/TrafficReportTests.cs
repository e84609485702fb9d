namespace Ctfw.Lab.Tests;

public sealed class TrafficReportTests
{
    private static readonly HttpLoadResult s_http = new(1200, TimeSpan.FromSeconds(3), 0, 1, 0, 0, 2,
        TimeSpan.FromMicroseconds(120), TimeSpan.FromMicroseconds(1450));

    private static readonly PingResult s_ping = new(15, 14, 0, 0, null, null, null, TimeSpan.FromMicroseconds(80), TimeSpan.FromMicroseconds(310));

    [Fact]
    public void Summary_EveryWorkload_OneLineInFixedOrder()
    {
        var r = new TrafficReport(Workloads.All, TimeSpan.FromSeconds(3.04), s_http, s_http,
            new TcpBulkResult(10, 10, TimeSpan.FromSeconds(3), 9.1e9, 9.0e9, 12),
            new UdpStreamResult(11718, 3, TimeSpan.FromSeconds(3), 2e6, 0.01),
            s_ping, s_ping, []);

        Assert.Equal(
            "http4 1200 req 3 err p50 0.12 ms p99 1.45 ms | http6 1200 req 3 err p50 0.12 ms p99 1.45 ms | tcp4 9.00 Gbit/s 12 retr"
            + " | udp6 11718 sent 3 lost (0.03%) | ping4 14/15 p50 0.08 ms p99 0.31 ms | ping6 14/15 p50 0.08 ms p99 0.31 ms (3.0 s)",
            r.Summary);
        Assert.True(r.Succeeded);
        Assert.DoesNotContain('\n', r.Summary);
    }

    [Fact]
    public void Summary_FailedAndUnrequested_MarksFailedSkipsOthersAndCountsProblems()
    {
        var r = new TrafficReport(Workloads.HttpV4 | Workloads.PingV6, TimeSpan.FromSeconds(1), null, null, null, null, null, s_ping,
            ["http4 (exit 1): no 'N requests in T' line", "second"]);

        Assert.Equal("http4 failed | ping6 14/15 p50 0.08 ms p99 0.31 ms (1.0 s); 2 problem(s): http4 (exit 1): no 'N requests in T' line", r.Summary);
        Assert.False(r.Succeeded);
    }
}
