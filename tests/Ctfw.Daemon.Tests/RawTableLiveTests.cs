using System.Globalization;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// A live daemon whose rules file has a `*raw` table: it loads, runs raw PREROUTING on the packets it
/// is handed before tracking them (the CT rule's counter grows with the forwarded datagrams), and
/// `ctfw rules -L` shows the raw table under its name.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class RawTableLiveTests
{
    private const string Rules = """
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A PREROUTING -p udp -m udp --dport 5353 -j CT --helper tftp
        COMMIT

        """ + LiveDaemon.Udp5353Rules;

    [Fact(Timeout = 120_000)]
    public async Task RawTable_LiveDaemon_CtRuleCountsTheForwardedRequestsAndListsUnderRaw()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        using System.Net.Sockets.Socket server = RunUdpLiveTests.UdpEcho(lab, 5353, v6: false, stop.Token);
        try
        {
            using var daemon = new LiveDaemon(lab, "raw", Rules, 47);
            ChildProcess ctfw = daemon.Process;
            const int Flows = 3;
            for (int i = 0; i < Flows; i++)
                Assert.Equal($"ping {i}", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5353, $"ping {i}"));

            ToolResult list = CtfwProcess.Run(TimeSpan.FromSeconds(30), "rules", "-L", "-v", "-x", "-n", "--control", daemon.ControlPath);
            Assert.True(list.ExitCode == 0, list.StdErr);
            int raw = list.StdOut.IndexOf("Table: raw\n", StringComparison.Ordinal);
            Assert.True(raw > 0, list.StdOut);
            string ct = Assert.Single(list.StdOut[raw..].Split('\n'), l => l.Contains("helper tftp", StringComparison.Ordinal));
            long packets = long.Parse(ct.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
            Assert.True(packets >= Flows, $"{packets} packets on the CT rule after {Flows} requests:\n{list.StdOut}");

            Assert.True(ctfw.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            stop.Cancel();
        }
    }
}
