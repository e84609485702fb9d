using System.Diagnostics;
using Xunit.Abstractions;

namespace Ctfw.Lab.Tests;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PrivilegedCollection
{
    public const string Name = "Privileged";
}

/// <summary>
/// Privileged tier: the real programs between a <see cref="KernelLab"/>'s client and server, through
/// its gateway with no firewall. Like the other privileged tests it fails, naming the reason, when it
/// cannot run (run-all.sh filters the tier out for non-root runs).
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class TrafficMixLiveTests(ITestOutputHelper output)
{
    [Fact]
    public void Run_ThreeSecondsWithoutFirewall_EveryWorkloadMovesTrafficAndNoProcessRemains()
    {
        RequirePrivileges();
        using var lab = new KernelLab();
        TrafficMix.Unmute(lab.Client);
        TrafficMix.Unmute(lab.Server);
        var log = new StringWriter();

        var clock = Stopwatch.StartNew();
        TrafficReport r = TrafficMix.Run(lab.Client, lab.Server, TimeSpan.FromSeconds(3), TrafficOptions.Default, log);
        clock.Stop();
        output.WriteLine(log.ToString());
        output.WriteLine(r.Summary);

        Assert.Empty(r.Problems);
        Assert.True(r.HttpV4 is { Requests: > 0 }, r.Summary);
        Assert.True(r.HttpV6 is { Requests: > 0 }, r.Summary);
        Assert.True(r.TcpBulk is { BytesReceived: > 0, ReceivedBitsPerSecond: > 0 }, r.Summary);
        Assert.True(r.Udp is { PacketsSent: > 0 } u && u.PacketsReceived > 0, r.Summary);
        Assert.True(r.PingV4 is { Transmitted: 15, Received: > 0 }, r.Summary);
        Assert.True(r.PingV6 is { Transmitted: 15, Received: > 0 }, r.Summary);
        Assert.InRange(r.Elapsed, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the run took {clock.Elapsed}");
        AssertNoProcessIn(lab);
    }

    [Fact]
    public void Run_CancelledMidway_ThrowsAndLeavesNoProcess()
    {
        RequirePrivileges();
        using var lab = new KernelLab();
        TrafficMix.Unmute(lab.Client);
        TrafficMix.Unmute(lab.Server);
        var log = new StringWriter();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));

        var clock = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            TrafficMix.Run(lab.Client, lab.Server, TimeSpan.FromSeconds(60), TrafficOptions.Default, log, cts.Token));
        clock.Stop();
        output.WriteLine(log.ToString());

        Assert.Contains("traffic: running", log.ToString(), StringComparison.Ordinal); // the clients were up when it was cancelled
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"cancellation took {clock.Elapsed}");
        AssertNoProcessIn(lab);
    }

    [Fact]
    public void Run_GatewayRejectsBulkPort_ReportsThatProblemAndTheOtherResults()
    {
        RequirePrivileges();
        using var lab = new KernelLab();
        TrafficMix.Unmute(lab.Client);
        TrafficMix.Unmute(lab.Server);
        lab.InGateway("iptables", "-A", "FORWARD", "-p", "tcp", "--dport", "5201", "-j", "REJECT", "--reject-with", "tcp-reset");
        var options = new TrafficOptions { Workloads = Workloads.TcpBulkV4 | Workloads.PingV4 };

        TrafficReport r = TrafficMix.Run(lab.Client, lab.Server, TimeSpan.FromSeconds(1), options, TextWriter.Null);
        output.WriteLine(r.Summary);

        Assert.Null(r.TcpBulk);
        string problem = Assert.Single(r.Problems);
        Assert.StartsWith("tcp4", problem, StringComparison.Ordinal);
        Assert.Contains("unable to connect", problem, StringComparison.Ordinal);
        Assert.True(r.PingV4 is { Transmitted: 5, Received: 5 }, r.Summary);
        Assert.Null(r.HttpV4);
        Assert.StartsWith("tcp4 failed | ping4 5/5", r.Summary, StringComparison.Ordinal);
        AssertNoProcessIn(lab);
    }

    [Fact]
    public void Run_ServerCannotBind_ThrowsWithItsErrorAndLeavesNoProcess()
    {
        RequirePrivileges();
        using var lab = new KernelLab();
        // Not an address of the server namespace: nginx cannot bind it.
        var options = new TrafficOptions { Workloads = Workloads.HttpV4 | Workloads.PingV4, ServerV4 = "10.99.2.77" };

        var e = Assert.Throws<InvalidOperationException>(() =>
            TrafficMix.Run(lab.Client, lab.Server, TimeSpan.FromSeconds(1), options, TextWriter.Null));
        output.WriteLine(e.Message);

        Assert.StartsWith("nginx exited", e.Message, StringComparison.Ordinal);
        Assert.Contains("10.99.2.77:80", e.Message, StringComparison.Ordinal);
        AssertNoProcessIn(lab);
    }

    private static void RequirePrivileges()
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged traffic tests cannot run: {why}.");
        IReadOnlyList<TrafficProgram> missing = TrafficTools.Missing();
        if (missing.Count != 0)
            Assert.Fail($"Privileged traffic tests cannot run: {TrafficTools.Describe(missing)}.");
    }

    private static string Describe(string pid)
    {
        try
        {
            return $"{pid} {File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim()} ({File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2]})";
        }
        catch (IOException)
        {
            return pid + " (gone)";
        }
    }

    private static void AssertNoProcessIn(KernelLab lab)
    {
        foreach (string ns in (string[])[lab.Client, lab.Gateway, lab.Server])
        {
            string[] pids = Tool.Run("ip", "netns", "pids", ns).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.True(pids.Length == 0, $"left in {ns}: {string.Join("; ", pids.Select(Describe))}");
        }
    }
}
