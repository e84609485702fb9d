using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Firewall.Logging;
using Ctfw.Rules;

namespace Ctfw.Cli.Tests;

/// <summary>`ctfw stats` of a running daemon shows what became of its output lines.</summary>
public sealed class DaemonControlLogTests
{
    [Fact]
    public void Stats_OutputQueueFull_ShowsLostAndPendingLines()
    {
        var queue = new LogQueue(2);
        var writer = new LogWriter(queue, Stream.Null); // never started: stderr that does not drain
        var log = new LogSink(queue);
        for (int i = 0; i < 5; i++)
            queue.TryEnqueue($"line {i}");
        Assert.True(Ruleset.TryLoad("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "test.rules", out Ruleset? rules, out _));
        var control = new DaemonControl(new ConntrackEngine(new ConntrackSettings(), 0), [], log, null, 0, null, rules!) { Output = writer };

        Dictionary<string, long> stats = control.Stats().ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);

        Assert.Equal(3, stats["log.lost"]);
        Assert.Equal(2, stats["log.pending"]);
        Assert.Equal(0, stats["log.write_errors"]);
        Assert.Equal(0, stats["log.written"]);
    }

    [Fact]
    public void ZeroCounters_ZeroesRulesAndPolicy_LogsOneLine()
    {
        var queue = new LogQueue(16);
        var writer = new LogWriter(queue, Stream.Null); // never started: the lines stay in the queue to be read
        Assert.True(Ruleset.TryLoad("*filter\n:INPUT DROP [7:700]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[5:500] -A INPUT -p tcp -j ACCEPT\nCOMMIT\n", "zero.rules", out Ruleset? rules, out _));
        var control = new DaemonControl(new ConntrackEngine(new ConntrackSettings(), 0), [], new LogSink(queue), null, 0, null, rules!) { Output = writer };

        string listed = control.ListRules(verbose: true, exact: true, zero: false);
        Assert.Contains("       5        500 ACCEPT", listed);
        Assert.False(queue.TryPeek(out _));

        control.ZeroCounters();

        Assert.Equal(new PacketCounters(0, 0), rules!.GetCounters(0));
        Assert.Equal(new PacketCounters(0, 0), rules.GetPolicyCounters(Hook.Input));
        Assert.True(queue.TryPeek(out ReadOnlySpan<char> line));
        Assert.Equal("ctfw: rules: counters of zero.rules zeroed (ctfw rules -Z)", line.ToString());
        queue.Release();
        Assert.False(queue.TryPeek(out _));
    }

    [Fact]
    public void ListRules_WithZero_ListsTheCountsBeforeZeroing()
    {
        var queue = new LogQueue(16);
        var writer = new LogWriter(queue, Stream.Null);
        Assert.True(Ruleset.TryLoad("*filter\n:INPUT DROP [7:700]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n[5:500] -A INPUT -p tcp -j ACCEPT\nCOMMIT\n", "zero.rules", out Ruleset? rules, out _));
        var control = new DaemonControl(new ConntrackEngine(new ConntrackSettings(), 0), [], new LogSink(queue), null, 0, null, rules!) { Output = writer };

        string listed = control.ListRules(verbose: true, exact: true, zero: true);

        Assert.StartsWith("Chain INPUT (policy DROP 7 packets, 700 bytes)", listed, StringComparison.Ordinal);
        Assert.Contains("       5        500 ACCEPT", listed);
        Assert.Equal(new PacketCounters(0, 0), rules!.GetCounters(0));
        Assert.True(queue.TryPeek(out _));
    }
}
