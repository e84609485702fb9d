using System.Net.Sockets;

namespace Ctfw.Daemon.Tests;

/// <summary>`ctfw top --once` against a live daemon shows the flow the test made, with its packets and bytes.</summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class TopLiveTests
{
    [Fact(Timeout = 120_000)]
    public async Task TopOnce_FlowThroughDaemon_ShownWithItsCounters()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        using Socket server = RunUdpLiveTests.UdpEcho(lab, 5353, v6: false, stop.Token);
        try
        {
            using var daemon = new LiveDaemon(lab, "top", LiveDaemon.Udp5353Rules, 16, "--set", "nf_conntrack_acct=1");
            ChildProcess ctfw = daemon.Process;
            string control = daemon.ControlPath;
            Assert.Equal("hello", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5353, "hello"));

            ToolResult top = CtfwProcess.Run(TimeSpan.FromSeconds(30), "top", "--once", "--control", control, "-p", "udp", "--dport", "5353");
            Assert.True(top.ExitCode == 0, top.StdErr);
            string[] lines = top.StdOut.TrimEnd('\n').Split('\n');
            Assert.StartsWith("ctfw top ", lines[0], StringComparison.Ordinal);
            Assert.Contains("entries 1/", lines[0], StringComparison.Ordinal);
            Assert.StartsWith("PROTO", lines[1], StringComparison.Ordinal);
            string row = Assert.Single(lines[2..]);
            string[] cells = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // PROTO STATE SOURCE SPORT DESTINATION DPORT TTL AGE PACKETS BYTES FLAGS
            Assert.Equal("udp", cells[0]);
            Assert.Equal(lab.ClientV4.ToString(), cells[2]);
            Assert.Equal(lab.ServerV4.ToString(), cells[4]);
            Assert.Equal("5353", cells[5]);
            Assert.Equal("2", cells[8]); // the request and its echo
            Assert.Equal((2 * (20 + 8 + "hello".Length)).ToString(System.Globalization.CultureInfo.InvariantCulture), cells[9]);

            Assert.True(ctfw.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            stop.Cancel();
        }
    }
}
