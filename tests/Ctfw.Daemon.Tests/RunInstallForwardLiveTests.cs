using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Ctfw.Linux;
using Ctfw.Packets;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw run --install FORWARD` in the gateway namespace: queue balancing, GSO bulk transfer, LOG,
/// INVALID drops, and what happens to traffic and rules after a SIGKILL (bypass vs --fail-closed).
/// Every wait is bounded; the lab's Dispose deletes the namespaces (and every rule in them).
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class RunInstallForwardLiveTests
{
    private const int TestTimeoutMs = 180_000;

    private const string PortRuleset = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 5001 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -j DROP
        COMMIT

        """;

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(20);

    private readonly ITestOutputHelper _output;

    public RunInstallForwardLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Run_TwoBalancedQueues_SpreadConnectionsOverBothQueues()
    {
        using var lab = new GatewayLab();
        string rules = WriteRules(PortRuleset);
        try
        {
            lab.Listen(8080);
            // --queue-balance hashes the addresses only: eight client addresses (plus IPv6) make
            // "all on one queue" a 1-in-256 chance for IPv4 alone.
            List<IPAddress> sources = [lab.ClientV4];
            for (int host = 3; host <= 9; host++)
                sources.Add(lab.AddClientV4(host));

            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queues", "10-11", "--install", "FORWARD");
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);
            Assert.Contains("--queue-balance 10:11", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);

            int i = 0;
            foreach (IPAddress source in sources)
            {
                for (int k = 0; k < 2; k++, i++)
                {
                    string message = $"hello-{i}";
                    Assert.Equal(message, await lab.TryEcho(lab.ServerV4, 8080, message, TimeSpan.FromSeconds(5), source));
                }
            }
            Assert.Equal("hello-v6", await lab.TryEcho(lab.ServerV6, 8080, "hello-v6", TimeSpan.FromSeconds(5)));
            string proc = Tool.RunIn(lab.Gateway, "cat", "/proc/net/netfilter/nfnetlink_queue");
            _output.WriteLine("/proc/net/netfilter/nfnetlink_queue in the gateway:\n" + proc);

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(s_stopTimeout));
            string stderr = ctfw.StdErr;
            _output.WriteLine(stderr);
            long q10 = QueuePackets(stderr, 10), q11 = QueuePackets(stderr, 11);
            Assert.True(q10 > 0 && q11 > 0, $"packets per queue: 10 → {q10}, 11 → {q11}\n{stderr}");
            Assert.DoesNotContain("ctfw:", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Run_GsoBulkTcp_50MegabytesArriveWithinBoundedTime()
    {
        const long Total = 50L * 1024 * 1024;
        using var lab = new GatewayLab();
        string rules = WriteRules(PortRuleset);
        try
        {
            string features = lab.SetOffloads(on: true);
            _output.WriteLine("gateway g0 offloads: " + string.Join(", ", features.Split('\n')
                .Where(l => l.Contains("segmentation-offload:", StringComparison.Ordinal) || l.Contains("receive-offload:", StringComparison.Ordinal))
                .Select(l => l.Trim())));

            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "13", "--install", "FORWARD");
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);

            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            using Socket listener = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Bind(new IPEndPoint(IPAddress.Any, 5001));
                s.Listen(1);
                return s;
            });
            Task<long> sink = Sink(listener, cts.Token);

            using Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
                () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
            var clock = Stopwatch.StartNew();
            long acknowledged;
            try
            {
                await client.ConnectAsync(new IPEndPoint(lab.ServerV4, 5001), cts.Token);
                byte[] chunk = new byte[1 << 20];
                Random.Shared.NextBytes(chunk);
                for (long sent = 0; sent < Total; sent += chunk.Length)
                {
                    int n = (int)Math.Min(chunk.Length, Total - sent);
                    int done = 0;
                    while (done < n)
                        done += await client.SendAsync(chunk.AsMemory(done, n - done), SocketFlags.None, cts.Token);
                }
                client.Shutdown(SocketShutdown.Send);
                // The server answers with the byte count it received, after the client's FIN.
                byte[] answer = new byte[8];
                int got = 0;
                while (got < answer.Length)
                {
                    int n = await client.ReceiveAsync(answer.AsMemory(got), SocketFlags.None, cts.Token);
                    if (n == 0)
                        break;
                    got += n;
                }
                Assert.Equal(8, got);
                acknowledged = BinaryPrimitives.ReadInt64BigEndian(answer);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"bulk transfer did not finish within 90 s\n{ctfw.StdErr}");
                throw;
            }
            clock.Stop();
            Assert.Equal(Total, await sink);
            Assert.Equal(Total, acknowledged);
            double mbitPerSecond = Total * 8 / clock.Elapsed.TotalSeconds / 1e6;
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"GSO bulk: {Total / (1024 * 1024)} MiB through ctfw in {clock.Elapsed.TotalSeconds:F2} s = {mbitPerSecond:F0} Mbit/s"));

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(s_stopTimeout));
            string stderr = ctfw.StdErr;
            _output.WriteLine(stderr);
            // Informational: far fewer packets than MTU-sized segments means ctfw judged GSO superpackets.
            long packets = QueuePackets(stderr, 13);
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw judged {packets} packets for {Total} bytes ({Total / 1448} MSS-sized segments without GSO)"));
            Assert.Matches(@"verdicts: accept [1-9]\d*, drop 0,", stderr);
        }
        finally
        {
            File.Delete(rules);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Run_LogRule_WritesKernelStyleLineToStderr()
    {
        const string Ruleset = """
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A FORWARD -p tcp --dport 7070 -j LOG --log-prefix "ctfw-test: "
            -A FORWARD -p tcp --dport 7070 -j DROP
            COMMIT

            """;
        using var lab = new GatewayLab();
        string rules = WriteRules(Ruleset);
        try
        {
            lab.Listen(7070);
            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "14", "--install", "FORWARD");
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);

            Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 7070, "x", TimeSpan.FromSeconds(2)));
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw-test: IN=", TimeSpan.FromSeconds(5)), ctfw.StdErr);
            string line = ctfw.StdErr.Split('\n').First(l => l.Contains("ctfw-test: IN=", StringComparison.Ordinal));
            _output.WriteLine(line);
            Assert.Contains("IN=g0 ", line, StringComparison.Ordinal);
            Assert.Contains("OUT=g1 ", line, StringComparison.Ordinal);
            Assert.Contains($"SRC={lab.ClientV4} ", line, StringComparison.Ordinal);
            Assert.Contains($"DST={lab.ServerV4} ", line, StringComparison.Ordinal);
            Assert.Contains("PROTO=TCP", line, StringComparison.Ordinal);
            Assert.Contains("DPT=7070", line, StringComparison.Ordinal);
            Assert.Contains("SYN", line, StringComparison.Ordinal);

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(s_stopTimeout));
            Assert.Matches(@"ctfw: log lines [1-9]", ctfw.StdErr);
        }
        finally
        {
            File.Delete(rules);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Run_InvalidRule_DropsStrayFinAckButPassesNormalConnection()
    {
        const string Ruleset = """
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A FORWARD -m conntrack --ctstate INVALID -j DROP
            COMMIT

            """;
        using var lab = new GatewayLab();
        string rules = WriteRules(Ruleset);
        try
        {
            lab.Listen(8080);
            // Sanity: without ctfw the stray FIN/ACK reaches the server.
            Assert.True(await StrayFinAckArrives(lab, sourcePort: 40123), "FIN/ACK without ctfw did not reach the server");

            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "15", "--install", "FORWARD");
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);

            Assert.False(await StrayFinAckArrives(lab, sourcePort: 40124), $"FIN/ACK for no connection passed ctfw\n{ctfw.StdErr}");
            Assert.Equal("normal", await lab.TryEcho(lab.ServerV4, 8080, "normal", TimeSpan.FromSeconds(5)));

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(s_stopTimeout));
            string stderr = ctfw.StdErr;
            _output.WriteLine(stderr);
            Assert.Matches(@"INVALID [1-9]\d*", stderr);
            Assert.Matches(@"verdicts: accept [1-9]\d*, drop [1-9]\d*", stderr);
        }
        finally
        {
            File.Delete(rules);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Run_AfterSigkill_BypassKeepsTrafficFlowing_AndRestartReplacesLeftoverRules() =>
        await SigkillThenRestart(failClosed: false);

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Run_AfterSigkill_FailClosedBlocksTraffic_AndRestartReplacesLeftoverRules() =>
        await SigkillThenRestart(failClosed: true);

    private async Task SigkillThenRestart(bool failClosed)
    {
        using var lab = new GatewayLab();
        string rules = WriteRules(PortRuleset);
        try
        {
            lab.Listen(8080);
            lab.Listen(9091);
            string[] args = ["run", "--rules", rules, "--queue", "16", "--install", "FORWARD", .. failClosed ? (string[])["--fail-closed"] : []];

            int firstPid;
            using (var first = CtfwProcess.Start(lab.Gateway, args))
            {
                Assert.True(first.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), first.StdErr);
                firstPid = first.Pid;
                Assert.Equal("before", await lab.TryEcho(lab.ServerV4, 8080, "before", TimeSpan.FromSeconds(5)));
                Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 9091, "x", TimeSpan.FromSeconds(2)));
                first.KillTree();
                Assert.NotNull(first.WaitForExit(s_stopTimeout));
            }

            // No cleanup happened: the rules of the dead run are still there.
            string leftover = Tool.RunIn(lab.Gateway, "iptables-save");
            _output.WriteLine("after SIGKILL:\n" + leftover);
            Assert.Contains($"ctfw:{firstPid}:", leftover, StringComparison.Ordinal);
            Assert.Equal(failClosed ? 0 : 1, Regex.Count(leftover, "--queue-bypass"));
            if (failClosed)
            {
                // Nobody is bound to the queue and there is no bypass: every forwarded packet is dropped.
                Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 8080, "x", TimeSpan.FromSeconds(2)));
                Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 9091, "x", TimeSpan.FromSeconds(2)));
            }
            else
            {
                // --queue-bypass: with no reader the queue accepts, so even the port ctfw drops answers.
                Assert.Equal("bypass-8080", await lab.TryEcho(lab.ServerV4, 8080, "bypass-8080", TimeSpan.FromSeconds(5)));
                Assert.Equal("bypass-9091", await lab.TryEcho(lab.ServerV4, 9091, "bypass-9091", TimeSpan.FromSeconds(5)));
            }

            using var second = CtfwProcess.Start(lab.Gateway, args);
            Assert.True(second.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), second.StdErr);
            Assert.Contains("iptables rules left by a run that is gone", second.StdErr, StringComparison.Ordinal);
            foreach (string tool in (string[])["iptables-save", "ip6tables-save"])
            {
                string saved = Tool.RunIn(lab.Gateway, tool);
                _output.WriteLine($"{tool} after restart:\n{saved}");
                string[] tagged = [.. saved.Split('\n').Where(l => l.Contains("ctfw:", StringComparison.Ordinal))];
                // Exactly one set: the NFQUEUE rule in CTFW and the jump from FORWARD, both of the new run.
                Assert.Equal(2, tagged.Length);
                Assert.All(tagged, l => Assert.Contains($"ctfw:{second.Pid}:", l, StringComparison.Ordinal));
                Assert.Single(tagged, l => l.StartsWith("-A FORWARD ", StringComparison.Ordinal));
                Assert.Single(tagged, l => l.Contains("-j NFQUEUE", StringComparison.Ordinal));
                Assert.Single(saved.Split('\n'), l => l.StartsWith(":CTFW ", StringComparison.Ordinal));
            }
            // Traffic flows again, judged by ctfw (the port it drops stays dropped).
            Assert.Equal("after", await lab.TryEcho(lab.ServerV4, 8080, "after", TimeSpan.FromSeconds(5)));
            Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 9091, "x", TimeSpan.FromSeconds(2)));

            second.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, second.WaitForExit(s_stopTimeout));
            Assert.DoesNotContain("ctfw:", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
        }
    }

    /// <summary>
    /// Sends a FIN/ACK for no connection from the client with a raw socket and reports whether a
    /// raw TCP socket in the server namespace saw it within 2 s.
    /// </summary>
    private static async Task<bool> StrayFinAckArrives(GatewayLab lab, ushort sourcePort)
    {
        const ushort DestinationPort = 7171;
        using Socket capture = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server),
            () => new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Tcp));
        using Socket sender = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Raw)); // IPPROTO_RAW: header included

        byte[] packet = new byte[128];
        var spec = new TcpSpec
        {
            Src = IpAddress.FromV4(lab.ClientV4.GetAddressBytes()),
            Dst = IpAddress.FromV4(lab.ServerV4.GetAddressBytes()),
            SrcPort = sourcePort,
            DstPort = DestinationPort,
            Seq = 0x12345678,
            Ack = 0x9abcdef0,
            Flags = TcpFlags.Fin | TcpFlags.Ack,
            Window = 502,
        };
        int length = PacketBuilder.Tcp(packet, spec);
        sender.SendTo(packet.AsSpan(0, length), new IPEndPoint(lab.ServerV4, 0));

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        byte[] buffer = new byte[2048];
        try
        {
            while (true)
            {
                int n = await capture.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n < 40)
                    continue;
                int ihl = (buffer[0] & 0x0F) * 4;
                if (n < ihl + 14)
                    continue;
                var source = new IPAddress(buffer.AsSpan(12, 4));
                ushort sport = BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(ihl));
                ushort dport = BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(ihl + 2));
                byte flags = buffer[ihl + 13];
                if (source.Equals(lab.ClientV4) && sport == sourcePort && dport == DestinationPort && flags == (byte)(TcpFlags.Fin | TcpFlags.Ack))
                    return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Accepts one connection, counts its bytes to EOF, answers the count (8 bytes, big endian).</summary>
    private static async Task<long> Sink(Socket listener, CancellationToken token)
    {
        using Socket peer = await listener.AcceptAsync(token);
        byte[] buffer = new byte[1 << 18];
        long total = 0;
        int n;
        while ((n = await peer.ReceiveAsync(buffer, SocketFlags.None, token)) > 0)
            total += n;
        byte[] answer = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(answer, total);
        await peer.SendAsync(answer, SocketFlags.None, token);
        peer.Shutdown(SocketShutdown.Send);
        return total;
    }

    private static long QueuePackets(string stderr, int queue)
    {
        Match m = Regex.Match(stderr, $@"ctfw: queue {queue}: packets (\d+)");
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    private static string WriteRules(string ruleset)
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-daemon-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        File.WriteAllText(path, ruleset);
        return path;
    }
}
