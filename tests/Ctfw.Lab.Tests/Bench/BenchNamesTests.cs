using Ctfw.Lab.Bench;

namespace Ctfw.Lab.Tests.Bench;

public sealed class BenchNamesTests
{
    [Fact]
    public void ParseSetups_AnyOrderAndCase_CanonicalOrder()
    {
        Assert.Equal([BenchSetup.Plain, BenchSetup.CLoop, BenchSetup.Ctfw2], BenchNames.ParseSetups("ctfw2, CLOOP,plain,cloop"));
        Assert.Equal(BenchNames.AllSetups, BenchNames.ParseSetups("all"));
        Assert.Equal([BenchWorkload.Udp, BenchWorkload.Lat], BenchNames.ParseWorkloads("lat,udp"));
    }

    [Fact]
    public void ParseSetups_Ctfw1m_OnlyWhenNamedAndRunsCtfw1WithMetrics()
    {
        Assert.Equal([BenchSetup.Ctfw1, BenchSetup.Ctfw1Scraped], BenchNames.ParseSetups("ctfw1m,ctfw1"));
        Assert.DoesNotContain(BenchSetup.Ctfw1Scraped, BenchNames.ParseSetups("all"));
        IReadOnlyList<string> ctfw1 = BenchRunner.DaemonArgs(BenchSetup.Ctfw1, 7, "loop", ["ctfw"], "r.rules", "c.sock")!;
        IReadOnlyList<string> scraped = BenchRunner.DaemonArgs(BenchSetup.Ctfw1Scraped, 7, "loop", ["ctfw"], "r.rules", "c.sock")!;
        Assert.Equal([.. ctfw1, "--metrics", MetricsScraper.Endpoint], scraped);
        Assert.Equal(BenchRunner.GatewayCommands(BenchSetup.Ctfw1, "r", "n", "c"), BenchRunner.GatewayCommands(BenchSetup.Ctfw1Scraped, "r", "n", "c"));
    }

    [Theory]
    [InlineData("")]
    [InlineData(",")]
    [InlineData("plain,ctfw3")]
    [InlineData("ctfw")]
    public void ParseSetups_UnknownOrEmpty_FormatException(string text)
    {
        Assert.Throws<FormatException>(() => BenchNames.ParseSetups(text));
    }

    [Fact]
    public void ParseWorkloads_Unknown_MessageListsTheKnownOnes()
    {
        FormatException e = Assert.Throws<FormatException>(() => BenchNames.ParseWorkloads("tcp,http"));
        Assert.Contains("unknown workload 'http'", e.Message, StringComparison.Ordinal);
        Assert.Contains("tcp, udp, conn, lat", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SetupOrder_RotatesByOnePerRep_AndWrapsAround()
    {
        var o = new BenchOptions { Setups = [BenchSetup.Plain, BenchSetup.Kernel, BenchSetup.CLoop] };
        Assert.Equal([BenchSetup.Plain, BenchSetup.Kernel, BenchSetup.CLoop], o.SetupOrder(1));
        Assert.Equal([BenchSetup.Kernel, BenchSetup.CLoop, BenchSetup.Plain], o.SetupOrder(2));
        Assert.Equal([BenchSetup.CLoop, BenchSetup.Plain, BenchSetup.Kernel], o.SetupOrder(3));
        Assert.Equal(o.SetupOrder(1), o.SetupOrder(4));
    }

    [Fact]
    public void GatewayCommands_EachSetup_TheIptablesRestoreCallsOfTheSpec()
    {
        Assert.Empty(BenchRunner.GatewayCommands(BenchSetup.Plain, "R", "N", "C"));
        Assert.Equal([["iptables-restore", "R"]], BenchRunner.GatewayCommands(BenchSetup.Kernel, "R", "N", "C"));
        Assert.Equal([["iptables-restore", "N"], ["iptables-restore", "--noflush", "C"]], BenchRunner.GatewayCommands(BenchSetup.CLoop, "R", "N", "C"));
        Assert.Equal([["iptables-restore", "N"]], BenchRunner.GatewayCommands(BenchSetup.Ctfw2, "R", "N", "C"));
    }

    [Fact]
    public void DaemonArgs_EachSetup_TheConsumerCommandLine()
    {
        string[] ctfw = ["/usr/bin/dotnet", "/x/ctfw.dll"];
        Assert.Null(BenchRunner.DaemonArgs(BenchSetup.Plain, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock"));
        Assert.Null(BenchRunner.DaemonArgs(BenchSetup.Kernel, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock"));
        Assert.Equal(["/t/nfq_accept", "-q", "7"], BenchRunner.DaemonArgs(BenchSetup.CLoop, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock"));
        Assert.Equal(["/t/nfq_accept", "-q", "7", "-r", "256"], BenchRunner.DaemonArgs(BenchSetup.CLoop, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock", 256));
        Assert.Equal(["--copy-range", "256"], BenchRunner.DaemonArgs(BenchSetup.Ctfw2, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock", 256)!.TakeLast(2));
        Assert.Equal(["/usr/bin/dotnet", "/x/ctfw.dll", "run", "--rules", "/r/bench.rules", "--queue", "7", "--install", "FORWARD", "--control", "/run/ctfw/s.sock"],
            BenchRunner.DaemonArgs(BenchSetup.Ctfw1, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock"));
        Assert.Equal(["/usr/bin/dotnet", "/x/ctfw.dll", "run", "--rules", "/r/bench.rules", "--queues", "7-8", "--install", "FORWARD", "--control", "/run/ctfw/s.sock"],
            BenchRunner.DaemonArgs(BenchSetup.Ctfw2, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock"));
    }

    [Fact]
    public void Offload_InAllAfterCtfw2_Ctfw2WithOffloadEstablished()
    {
        Assert.Equal(BenchSetup.Offload, BenchNames.AllSetups[^1]);
        Assert.Equal([BenchSetup.Ctfw2, BenchSetup.Offload], BenchNames.ParseSetups("offload,ctfw2"));
        Assert.Equal("offload", BenchNames.Of(BenchSetup.Offload));
        Assert.True(BenchNames.HasDaemon(BenchSetup.Offload));
        Assert.True(BenchNames.IsCtfw(BenchSetup.Offload));
        Assert.False(BenchNames.IsCtfw(BenchSetup.CLoop));
        Assert.Equal(2, BenchNames.QueueCount(BenchSetup.Offload));
        Assert.Equal(1, BenchNames.QueueCount(BenchSetup.Ctfw1));
        string[] ctfw = ["/usr/bin/dotnet", "/x/ctfw.dll"];
        IReadOnlyList<string> ctfw2 = BenchRunner.DaemonArgs(BenchSetup.Ctfw2, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock", 256)!;
        Assert.Equal([.. ctfw2, "--offload", "established"],
            BenchRunner.DaemonArgs(BenchSetup.Offload, 7, "/t/nfq_accept", ctfw, "/r/bench.rules", "/run/ctfw/s.sock", 256));
        // Kernel conntrack bypassed as for the other ctfw set-ups: ctfw's own conntrack decides what is offloaded.
        Assert.Equal([["iptables-restore", "N"]], BenchRunner.GatewayCommands(BenchSetup.Offload, "R", "N", "C"));
    }
}
