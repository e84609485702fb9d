namespace Ctfw.Lab.Tests;

public sealed class TrafficToolsTests
{
    [Fact]
    public void Needed_Http_IsNginxAndWrkButNotIperf()
    {
        string[] names = [.. TrafficTools.Needed(Workloads.Http).Select(p => p.Name)];

        Assert.Contains("nginx", names);
        Assert.Contains("wrk", names);
        Assert.Contains("nsenter", names);
        Assert.DoesNotContain("iperf3", names);
        Assert.DoesNotContain("ping", names);
    }

    [Fact]
    public void Needed_PingOnly_NeedsNoListenCheck()
    {
        Assert.Equal(["nsenter", "ping"], TrafficTools.Needed(Workloads.Ping).Select(p => p.Name));
    }

    [Fact]
    public void Needed_All_CoversEveryProgram() =>
        Assert.Equal(TrafficTools.Programs, TrafficTools.Needed(Workloads.All));

    [Fact]
    public void Describe_NamesProgramsAndOneInstallCommandWithDistinctPackages()
    {
        TrafficProgram[] missing = [new("iperf3", "iperf3", Workloads.TcpBulkV4), new("iperf3-again", "iperf3", Workloads.UdpV6), new("wrk", "wrk", Workloads.Http)];

        Assert.Equal(
            "missing traffic programs: iperf3, iperf3-again, wrk (apt-get install -y --no-install-recommends iperf3 wrk)",
            TrafficTools.Describe(missing));
    }

    [Theory]
    [InlineData("Reading package lists...\nE: Unable to locate package wrk\n", true)]
    [InlineData("Package nginx is not available, but is referred to by another package.\nE: Package 'nginx' has no installation candidate\n", true)]
    [InlineData("E: Failed to fetch http://deb.debian.org/debian/pool/main/w/wrk/wrk_4.1.0-3_amd64.deb  404  Not Found\n", true)]
    [InlineData("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)\n", false)]
    [InlineData("E: You don't have enough free space in /var/cache/apt/archives/.\n", false)]
    [InlineData("", false)]
    public void IsMissingListsError_OnlyForWhatAnUpdateCures(string output, bool expected) =>
        Assert.Equal(expected, TrafficTools.IsMissingListsError(output));
}
