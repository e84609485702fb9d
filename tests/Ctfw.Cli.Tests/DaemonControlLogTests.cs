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
}
