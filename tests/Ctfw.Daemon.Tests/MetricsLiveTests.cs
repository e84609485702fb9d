using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Cli.Control;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw run --metrics 127.0.0.1:PORT` inside the gateway namespace: /metrics answers from that
/// namespace, its counters rise with the traffic the daemon judges and agree with `ctfw stats`; a
/// port already taken fails the start with one line before any queue is bound.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class MetricsLiveTests
{
    private const int Port = 9469;

    /// <summary>An HttpClient whose connections are made inside <paramref name="ns"/> (where the daemon's loopback is).</summary>
    internal static HttpClient ClientIn(string ns) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancel) =>
        {
            Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(ns), () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancel);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>Samples of the text format, keyed <c>name{labels}</c> exactly as written.</summary>
    internal static Dictionary<string, double> Scrape(HttpClient http)
    {
        string text = http.GetStringAsync(new Uri($"http://127.0.0.1:{Port}/metrics")).GetAwaiter().GetResult();
        Dictionary<string, double> samples = [];
        foreach (string line in text.Split('\n'))
        {
            if (line.Length == 0 || line.StartsWith('#'))
                continue;
            int space = line.LastIndexOf(' ');
            samples[line[..space]] = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
        }
        return samples;
    }

    private static Dictionary<string, long> Stats(string control)
    {
        Assert.True(ControlClient.TryGetStats(control, out List<KeyValuePair<string, long>> list, out string? error), error);
        return list.ToDictionary(p => p.Key, p => p.Value);
    }

    [Fact(Timeout = 120_000)]
    public async Task Metrics_TrafficThroughDaemon_CountersRiseAndAgreeWithStats()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        using Socket server = RunUdpLiveTests.UdpEcho(lab, 5353, v6: false, stop.Token);
        try
        {
            using var daemon = new LiveDaemon(lab, "metrics", LiveDaemon.Udp5353Rules, 15, "--metrics", $"127.0.0.1:{Port}");
            ChildProcess ctfw = daemon.Process;
            string control = daemon.ControlPath;
            Assert.Contains($"metrics http://127.0.0.1:{Port}/metrics", ctfw.StdErr, StringComparison.Ordinal);
            using HttpClient http = ClientIn(lab.Gateway);

            Dictionary<string, double> before = Scrape(http);
            Assert.Equal(0, before["ctfw_packets_total{state=\"new\"}"]);
            const int Flows = 4;
            for (int i = 0; i < Flows; i++)
                Assert.Equal($"ping {i}", await RunUdpLiveTests.Exchange(lab, lab.ServerV4, 5353, $"ping {i}"));
            Dictionary<string, long> stats = Stats(control);
            Dictionary<string, double> after = Scrape(http);
            Dictionary<string, long> statsAfter = Stats(control);

            // One NEW (the request) and one ESTABLISHED (the echo) per flow, the same in both views.
            Assert.True(after["ctfw_packets_total{state=\"new\"}"] >= Flows, $"{after["ctfw_packets_total{state=\"new\"}"]} NEW");
            Assert.True(after["ctfw_packets_total{state=\"established\"}"] >= Flows);
            foreach ((string metric, string stat) in new[]
            {
                ("ctfw_packets_total{state=\"new\"}", "state.NEW"),
                ("ctfw_packets_total{state=\"established\"}", "state.ESTABLISHED"),
                ("ctfw_verdicts_total{verdict=\"accept\"}", "verdict.accept"),
                ("ctfw_queue_packets_total{queue=\"15\"}", "queue.15.packets"),
                ("ctfw_queue_verdicts_sent_total{queue=\"15\"}", "queue.15.verdicts_sent"),
                ("ctfw_conntrack_insert_failed_total", "table.insert_failed"),
                ("ctfw_queue_allocated_bytes_total{queue=\"15\"}", "queue.15.allocated_bytes"),
            })
            {
                // The scrape came between two `stats` reads; nothing else passes, so all three agree.
                Assert.InRange(after[metric], stats[stat], statsAfter[stat]);
            }
            Assert.Equal(Stats(control)["table.entries"], after["ctfw_conntrack_entries"]);
            Assert.Equal(Stats(control)["table.max"], after["ctfw_conntrack_max"]);
            Assert.True(after["ctfw_queue_receive_syscalls_total{queue=\"15\"}"] > 0);
            Assert.True(after["ctfw_process_cpu_seconds_total{mode=\"user\"}"] > 0);

            Assert.True(ctfw.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            stop.Cancel();
        }
    }

    [Fact]
    public void Metrics_PortTaken_StartFailsWithOneLineBeforeBindingQueues()
    {
        using var lab = new GatewayLab();
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-metrics-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        File.WriteAllText(rules, LiveDaemon.Udp5353Rules);
        using Socket holder = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Gateway), () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(IPAddress.Loopback, Port));
            s.Listen();
            return s;
        });
        try
        {
            using ChildProcess ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "15", "--install", "FORWARD", "--metrics", $"127.0.0.1:{Port}");
            Assert.Equal(1, ctfw.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.Contains($"ctfw: --metrics 127.0.0.1:{Port}: cannot listen: the port is in use", ctfw.StdErr, StringComparison.Ordinal);
            Assert.DoesNotContain("NFQUEUE", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
        }
    }
}
