using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Ctfw.Cli.Control;
using Ctfw.Linux;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Issue 13 part 3: `ctfw run` with its stderr on a pipe nobody reads, and LOG rules hit by
/// traffic. Nothing on the packet path may wait for that pipe: forbidden packets stay out (even
/// with the default fail-open queue), allowed traffic keeps flowing, the packet counter keeps
/// moving, and SIGTERM ends the process within 5 s with its iptables rules removed.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class BlockedStderrLiveTests
{
    private const int Allowed = 7001, Forbidden = 7002, Flood = 7003;

    // Every datagram to the three ports hits the LOG rule (ctfw rate-limits LOG lines to 20/s after
    // a burst of 100, so the pipe's last 4 KiB are gone within the first burst).
    private const string Ruleset = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -p udp -m udp --dport 7001:7003 -j LOG --log-prefix "ctfw-blocked: " --log-ip-options
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p udp -m udp --dport 7001 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport 7003 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport 7002 -j DROP
        -A FORWARD -j DROP
        COMMIT

        """;

    private static readonly TimeSpan s_traffic = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan s_stopBound = TimeSpan.FromSeconds(5);

    private readonly ITestOutputHelper _output;

    public BlockedStderrLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    [Fact(Timeout = 180_000)]
    public async Task Run_StderrPipeNeverRead_LogRulesHit_FiltersOnAndStopsWithin5s()
    {
        using var lab = new GatewayLab();
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}"[..16];
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-blocked-{tag}.rules");
        string fifo = Path.Combine(Path.GetTempPath(), $"ctfw-blocked-{tag}.fifo");
        string control = Path.Combine(Path.GetTempPath(), $"ctfw-blocked-{tag}.sock");
        File.WriteAllText(rules, Ruleset);
        using var stop = new CancellationTokenSource();
        var servers = new List<Socket>();
        try
        {
            servers.Add(RunUdpLiveTests.UdpEcho(lab, Allowed, v6: false, stop.Token));
            Socket forbiddenServer = ServerSocket(lab, Forbidden);
            servers.Add(forbiddenServer);
            servers.Add(ServerSocket(lab, Flood)); // bound, never read: the flood ends in its full buffer, no ICMP
            var forbiddenReceived = new StrongBox<long>();
            Task forbiddenCount = CountDatagrams(forbiddenServer, forbiddenReceived, stop.Token);

            using Socket allowedClient = ClientSocket(lab, Allowed);
            using Socket forbiddenClient = ClientSocket(lab, Forbidden);
            using Socket floodClient = ClientSocket(lab, Flood);
            // Sanity: without ctfw the forbidden port is reachable and counted, so a 0 below is ctfw's drop.
            forbiddenClient.Send(new byte[16]);
            Assert.True(await WaitUntil(() => Interlocked.Read(ref forbiddenReceived.Value) == 1, TimeSpan.FromSeconds(5)), "the forbidden port's server saw nothing without ctfw");
            Assert.Equal("pre", await Talk.Say(allowedClient, "pre"));
            Interlocked.Exchange(ref forbiddenReceived.Value, 0);

            // The pipe: a FIFO this test holds open for reading and writing (so ctfw's writes neither
            // fail nor find a reader), filled to the brim, then 4 KiB read back so ctfw's start lines fit.
            Tool.Run("mkfifo", "-m", "600", fifo);
            using var pipe = new FileStream(fifo, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, bufferSize: 0);
            ToolResult fill = Tool.Run(checkExit: false, "dd", "if=/dev/zero", $"of={fifo}", "bs=4096", "count=1024", "oflag=nonblock");
            Assert.True(fill.ExitCode != 0 && fill.StdErr.Contains("records out", StringComparison.Ordinal), $"dd did not fill the pipe: {fill.StdErr}");
            pipe.ReadExactly(new byte[4096]);

            using ChildProcess ctfw = CtfwProcess.StartCommand(
                "sh", "-c", "f=$1; shift; exec \"$@\" 2>\"$f\"", "sh", fifo,
                "ip", "netns", "exec", lab.Gateway, "dotnet", CtfwProcess.Dll,
                "run", "--rules", rules, "--queue", "23", "--install", "FORWARD", "--control", control);
            Assert.True(await WaitUntil(() => ControlClient.Answers(control) && Tool.RunIn(lab.Gateway, "iptables-save").Contains("NFQUEUE", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30)), $"ctfw did not come up: {ctfw.StdOut}");

            // Traffic: a UDP flood on an allowed, logged port; a forbidden datagram every millisecond;
            // an echo on the allowed port every 100 ms; the daemon's counters once a second.
            var clock = Stopwatch.StartNew();
            long floodSent = 0, forbiddenSent = 0;
            Thread flood = Sender(floodClient, perMs: 8, () => clock.Elapsed < s_traffic, () => floodSent++);
            Thread forbidden = Sender(forbiddenClient, perMs: 1, () => clock.Elapsed < s_traffic, () => forbiddenSent++);
            flood.Start();
            forbidden.Start();
            var samples = new List<(TimeSpan At, Dictionary<string, long> Stats)>();
            int probes = 0, answered = 0;
            TimeSpan nextSample = TimeSpan.Zero;
            while (clock.Elapsed < s_traffic)
            {
                string message = $"probe-{probes++}";
                if (await Talk.Say(allowedClient, message, timeoutSeconds: 1) == message)
                    answered++;
                if (clock.Elapsed >= nextSample)
                {
                    samples.Add((clock.Elapsed, Stats(control)));
                    nextSample += TimeSpan.FromSeconds(1);
                }
                await Task.Delay(100);
            }
            flood.Join();
            forbidden.Join();
            samples.Add((clock.Elapsed, Stats(control)));

            var stopping = Stopwatch.StartNew();
            ctfw.Signal(ChildProcess.SigTerm);
            int? exit = await ctfw.WaitForExitAsync(s_stopBound);
            TimeSpan stopTime = stopping.Elapsed;
            string iptables = Tool.RunIn(lab.Gateway, "iptables-save");
            await Task.Delay(500); // datagrams still in flight
            long forbiddenPassed = Interlocked.Read(ref forbiddenReceived.Value);

            foreach ((TimeSpan at, Dictionary<string, long> s) in samples)
            {
                _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{at.TotalSeconds,5:F1} s: packets {Get(s, "packets")}, log.written {Get(s, "log.written")}, log.pending {Get(s, "log.pending")}, log.lost {Get(s, "log.lost")}"));
            }
            _output.WriteLine($"flood sent {floodSent}, forbidden sent {forbiddenSent}, forbidden that reached the server {forbiddenPassed}");
            _output.WriteLine($"allowed echoes {answered}/{probes}");
            _output.WriteLine($"SIGTERM → {(exit is null ? "still running" : $"exit {exit}")} after {stopTime.TotalSeconds:F2} s");

            Assert.Equal(0, forbiddenPassed);
            Assert.True(answered >= probes * 9 / 10, $"allowed echoes {answered}/{probes}");
            // The packet counter kept moving to the end (a worker stuck in a write freezes it).
            long lastPackets = Get(samples[^1].Stats, "packets"), earlierPackets = Get(samples[^3].Stats, "packets");
            Assert.True(lastPackets - earlierPackets > 1000, $"packets {earlierPackets} → {lastPackets} over the last 2 s");
            // The test did block stderr: lines were waiting for the writer at the end.
            Assert.True(Get(samples[^1].Stats, "log.pending") > 0, "nothing was pending: stderr was not blocked");
            Assert.True(exit is not null, $"SIGTERM did not end ctfw within {s_stopBound.TotalSeconds} s");
            Assert.Equal(0, exit);
            Assert.DoesNotContain("ctfw:", iptables, StringComparison.Ordinal);
        }
        finally
        {
            stop.Cancel();
            foreach (Socket s in servers)
                s.Dispose();
            File.Delete(rules);
            File.Delete(fifo);
        }
    }

    private static Dictionary<string, long> Stats(string control)
    {
        var stats = new Dictionary<string, long>(StringComparer.Ordinal);
        if (ControlClient.TryGetStats(control, out List<KeyValuePair<string, long>> list, out _))
        {
            foreach (KeyValuePair<string, long> kv in list)
                stats[kv.Key] = kv.Value;
        }
        return stats;
    }

    private static long Get(Dictionary<string, long> stats, string name) => stats.TryGetValue(name, out long v) ? v : -1;

    private static Socket ServerSocket(GatewayLab lab, int port) => NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Any, port));
        return s;
    });

    private static Socket ClientSocket(GatewayLab lab, int port)
    {
        Socket s = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client), () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
        s.Connect(new IPEndPoint(lab.ServerV4, port));
        return s;
    }

    private static async Task CountDatagrams(Socket socket, StrongBox<long> count, CancellationToken stop)
    {
        byte[] buffer = new byte[2048];
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await socket.ReceiveAsync(buffer, SocketFlags.None, stop);
                Interlocked.Increment(ref count.Value);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
        }
    }

    /// <summary>A thread sending <paramref name="perMs"/> 64-byte datagrams per millisecond tick while <paramref name="go"/> says so.</summary>
    private static Thread Sender(Socket socket, int perMs, Func<bool> go, Action sent)
    {
        byte[] payload = new byte[64];
        return new Thread(() =>
        {
            while (go())
            {
                for (int i = 0; i < perMs; i++)
                {
                    try
                    {
                        socket.Send(payload);
                        sent();
                    }
                    catch (SocketException)
                    {
                        // ECONNREFUSED from an earlier ICMP error, ENOBUFS: the next send goes on.
                    }
                }
                Thread.Sleep(1);
            }
        }) { IsBackground = true };
    }

    private static async Task<bool> WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
                return false;
            await Task.Delay(50);
        }
        return true;
    }
}
