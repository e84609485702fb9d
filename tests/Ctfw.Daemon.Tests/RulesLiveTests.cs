using System.Globalization;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw rules -L -v -x` shows the counters of the ruleset a live daemon enforces, growing with the
/// traffic it judges, and `ctfw rules -Z` zeroes them (with one line in the daemon's log).
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class RulesLiveTests
{
    [Fact(Timeout = 120_000)]
    public async Task RulesList_TrafficThroughDaemon_AcceptingRuleCountsGrowThenZeroClearsThem()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        using Socket server = RunUdpLiveTests.UdpEcho(lab, 5353, v6: false, stop.Token);
        try
        {
            using var daemon = new LiveDaemon(lab, "rules", LiveDaemon.Udp5353Rules, 14);
            ChildProcess ctfw = daemon.Process;
            string control = daemon.ControlPath;

            Assert.Equal((0, 0), NewRuleCounters(control));
            const int Flows = 3;
            for (int i = 0; i < Flows; i++)
                Assert.Equal($"ping {i}", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5353, $"ping {i}")); // a fresh source port: NEW each time
            (long packets, long bytes) = NewRuleCounters(control);
            Assert.True(packets >= Flows, $"{packets} packets on the NEW rule after {Flows} flows");
            Assert.True(bytes >= packets * 28, $"{bytes} bytes for {packets} packets"); // at least IPv4 + UDP headers each

            ToolResult zero = CtfwProcess.Run(TimeSpan.FromSeconds(30), "rules", "-Z", "--control", control);
            Assert.Equal(0, zero.ExitCode);
            Assert.Equal("", zero.StdOut);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: rules: counters of ", TimeSpan.FromSeconds(10)), ctfw.StdErr);
            Assert.Equal((0, 0), NewRuleCounters(control));

            Assert.True(ctfw.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            stop.Cancel();
        }
    }

    /// <summary>The pkts and bytes columns of the `--dport 5353` rule in `ctfw rules -L -v -x -n`.</summary>
    private static (long Packets, long Bytes) NewRuleCounters(string control)
    {
        ToolResult list = CtfwProcess.Run(TimeSpan.FromSeconds(30), "rules", "-L", "-v", "-x", "-n", "--control", control);
        Assert.True(list.ExitCode == 0, list.StdErr);
        string line = Assert.Single(list.StdOut.Split('\n'), l => l.Contains("dport 5353", StringComparison.Ordinal));
        string[] columns = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return (long.Parse(columns[0], CultureInfo.InvariantCulture), long.Parse(columns[1], CultureInfo.InvariantCulture));
    }
}
