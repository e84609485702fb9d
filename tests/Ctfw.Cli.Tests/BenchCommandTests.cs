using Ctfw.Cli.Bench;
using Ctfw.Lab.Bench;

namespace Ctfw.Cli.Tests;

/// <summary>`ctfw bench` options: defaults, --quick, and every bad option is one line and exit status 2 (before any root check).</summary>
[Collection("Console")]
public sealed class BenchCommandTests
{
    [Fact]
    public void TryParse_NoOptions_Defaults()
    {
        BenchOptions? o = BenchCommand.TryParse(["bench"], out string? error, out bool help);
        Assert.Null(error);
        Assert.False(help);
        Assert.NotNull(o);
        Assert.Equal(3, o.Reps);
        Assert.Equal(TimeSpan.FromSeconds(10), o.Seconds);
        Assert.Equal(TimeSpan.FromSeconds(60), o.Soak);
        Assert.Equal(1_000_000, o.ScaleFlows);
        Assert.Equal(7, o.Queue);
        Assert.Equal(BenchNames.AllSetups, o.Setups);
        Assert.Equal(BenchNames.AllWorkloads, o.Workloads);
        Assert.Null(o.Output);
    }

    [Fact]
    public void TryParse_QuickThenOverrides_LaterFlagsWin()
    {
        BenchOptions? o = BenchCommand.TryParse(["bench", "--quick", "--soak", "3", "--setups=plain,ctfw1", "--workloads", "tcp", "--queue", "20", "--output", "/tmp/r.md"], out string? error, out _);
        BenchOptions? scaled = BenchCommand.TryParse(["bench", "--quick", "--scale", "0"], out string? scaleError, out _);
        Assert.Null(scaleError);
        Assert.Equal(0, scaled!.ScaleFlows);
        Assert.Null(scaled.CopyRange);
        Assert.Equal(256, BenchCommand.TryParse(["bench", "--copy-range", "256"], out _, out _)!.CopyRange);
        Assert.Null(error);
        Assert.NotNull(o);
        Assert.Equal(1, o.Reps);
        Assert.Equal(TimeSpan.FromSeconds(2), o.Seconds);
        Assert.Equal(TimeSpan.FromSeconds(3), o.Soak);
        Assert.Equal(50_000, o.ScaleFlows);
        Assert.Equal([BenchSetup.Plain, BenchSetup.Ctfw1], o.Setups);
        Assert.Equal([BenchWorkload.Tcp], o.Workloads);
        Assert.Equal(20, o.Queue);
        Assert.Equal("/tmp/r.md", o.Output);
    }

    [Fact]
    public void TryParse_WorkloadsFlood_OnlyWhenNamed()
    {
        BenchOptions? flood = BenchCommand.TryParse(["bench", "--workloads", "flood"], out string? error, out _);
        Assert.Null(error);
        Assert.Equal([BenchWorkload.Flood], flood!.Workloads);
        Assert.Equal([BenchWorkload.Udp, BenchWorkload.Flood], BenchCommand.TryParse(["bench", "--workloads", "flood,udp"], out _, out _)!.Workloads);
        // Neither the default nor "all" runs the flood: it changes the kernel's global nf_conntrack_max and takes minutes.
        Assert.DoesNotContain(BenchWorkload.Flood, BenchCommand.TryParse(["bench", "--workloads", "all"], out _, out _)!.Workloads);
        Assert.DoesNotContain(BenchWorkload.Flood, BenchCommand.TryParse(["bench"], out _, out _)!.Workloads);
        Assert.Equal([BenchWorkload.Tcp, BenchWorkload.Udp, BenchWorkload.Conn, BenchWorkload.Lat, BenchWorkload.Flood],
            BenchCommand.TryParse(["bench", "--workloads", "all,flood"], out _, out _)!.Workloads);
        Assert.Equal("flood", BenchNames.Of(BenchWorkload.Flood));
    }

    [Fact]
    public void TryParse_SetupsOffload_InAllAfterCtfw2AndByName()
    {
        BenchOptions? o = BenchCommand.TryParse(["bench", "--setups", "offload", "--workloads", "tcp", "--reps", "1"], out string? error, out _);
        Assert.Null(error);
        Assert.Equal([BenchSetup.Offload], o!.Setups);
        Assert.Equal([BenchSetup.Plain, BenchSetup.Kernel, BenchSetup.CLoop, BenchSetup.Ctfw1, BenchSetup.Ctfw2, BenchSetup.Offload],
            BenchCommand.TryParse(["bench", "--setups", "all"], out _, out _)!.Setups);
        Assert.Equal([BenchSetup.Ctfw2, BenchSetup.Offload], BenchCommand.TryParse(["bench", "--setups", "offload,ctfw2"], out _, out _)!.Setups);
    }

    [Theory]
    [InlineData("--setups", "ctfw1,offloaded", "--setups ctfw1,offloaded: unknown set-up 'offloaded' (known: plain, kernel, cloop, ctfw1, ctfw2, offload, ctfw1m, all)")]
    [InlineData("--reps", "0", "--reps 0: expected 1..100")]
    [InlineData("--reps", "x", "--reps x: expected 1..100")]
    [InlineData("--seconds", "1.5", "--seconds 1.5: expected whole seconds 1..3600")]
    [InlineData("--soak", "-1", "--soak -1: expected whole seconds 0..86400")]
    [InlineData("--queue", "65535", "--queue 65535: expected 0..65534")]
    [InlineData("--scale", "5000000", "--scale 5000000: expected a number of flows 0..4000000")]
    [InlineData("--copy-range", "10", "--copy-range 10: expected bytes 64..65535")]
    [InlineData("--setups", "plain,nft", "--setups plain,nft: unknown set-up 'nft'")]
    [InlineData("--workloads", "", "--workloads : no workload given")]
    [InlineData("--workloads", "floods", "--workloads floods: unknown workload 'floods' (known: tcp, udp, conn, lat, flood, all)")]
    public void Run_BadValue_OneLineErrorExitTwo(string option, string value, string message)
    {
        var (code, output, err) = ConsoleCapture.Run("bench", option, value);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.StartsWith("ctfw: " + message, err, StringComparison.Ordinal);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("--frobnicate", "ctfw: unknown option '--frobnicate' for bench (see `ctfw bench --help`)")]
    [InlineData("--reps", "ctfw: option --reps needs a value")]
    public void Run_UnknownOptionOrMissingValue_ExitTwo(string arg, string message)
    {
        var (code, _, err) = ConsoleCapture.Run("bench", arg);
        Assert.Equal(2, code);
        Assert.Equal(message, err.Trim());
    }

    [Fact]
    public void Run_Help_UsageExitZero()
    {
        var (code, output, _) = ConsoleCapture.Run("bench", "--help");
        Assert.Equal(0, code);
        Assert.Contains("Usage: ctfw bench", output, StringComparison.Ordinal);
        Assert.Contains("--quick", output, StringComparison.Ordinal);
        var (top, usage, _) = ConsoleCapture.Run("--help");
        Assert.Equal(0, top);
        Assert.Contains("bench      line-rate benchmark", usage, StringComparison.Ordinal);
    }
}
