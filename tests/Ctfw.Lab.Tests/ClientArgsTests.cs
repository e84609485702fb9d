namespace Ctfw.Lab.Tests;

public sealed class ClientArgsTests
{
    private static readonly HttpSite s_site = new("/tmp/ctfw-traffic-x");
    private static readonly TimeSpan s_three = TimeSpan.FromSeconds(3);

    private static IReadOnlyList<string> Args(Workloads w, TrafficOptions? o = null) =>
        TrafficMix.ClientArgs(w, s_three, o ?? TrafficOptions.Default, s_site);

    [Fact]
    public void Http_ClosesEveryConnectionAndBracketsIPv6()
    {
        Assert.Equal(
            ["wrk", "-t", "1", "-c", "4", "-d", "3s", "--latency", "-H", "Connection: close", "-s", "/tmp/ctfw-traffic-x/requests.lua", "http://10.99.2.2:80/"],
            Args(Workloads.HttpV4));
        Assert.Equal("http://[fd99:2::2]:80/", Args(Workloads.HttpV6)[^1]);
    }

    [Fact]
    public void TcpBulk_JsonForDurationUnlimitedUnlessRateGiven()
    {
        Assert.Equal(
            ["iperf3", "-c", "10.99.2.2", "-p", "5201", "-t", "3", "-J", "--connect-timeout", "3000"],
            Args(Workloads.TcpBulkV4));
        IReadOnlyList<string> limited = Args(Workloads.TcpBulkV4, new TrafficOptions { TcpBulkBitsPerSecond = 500_000_000 });
        Assert.Equal(["-b", "500000000"], limited.TakeLast(2));
    }

    [Fact]
    public void Udp_SmallDatagramsAtRateOverIPv6()
    {
        IReadOnlyList<string> args = Args(Workloads.UdpV6);

        Assert.Equal(["iperf3", "-c", "fd99:2::2", "-p", "5202"], args.Take(5));
        Assert.Equal(["-u", "-l", "64", "-b", "2000000"], args.TakeLast(5));
    }

    [Fact]
    public void Ping_CountFillsDurationAtInterval()
    {
        Assert.Equal(["ping", "-4", "-n", "-i", "0.2", "-c", "15", "-W", "1", "10.99.2.2"], Args(Workloads.PingV4));
        IReadOnlyList<string> v6 = Args(Workloads.PingV6, new TrafficOptions { PingInterval = TimeSpan.FromMilliseconds(50) });
        Assert.Equal(["ping", "-6", "-n", "-i", "0.05", "-c", "60", "-W", "1", "fd99:2::2"], v6);
    }

    [Fact]
    public void Group_IsNotASingleWorkload() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => Args(Workloads.Ping));
}
