using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Ctfw.Linux;
using Ctfw.Packets;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw run --ab kernel --install FORWARD` (shadow mode) in the gateway namespace, with real traffic
/// and kernel conntrack as the oracle: the live counters, listing, count and flush of the control
/// socket, the exit report and cleanup; and one disagreement pinned on purpose (tcp_loose differs)
/// whose verdict depends on whose ctstate the rules use.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class ShadowModeLiveTests
{
    private const int TestTimeoutMs = 180_000;

    private const string StatefulRuleset = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport 5353 -m conntrack --ctstate NEW -j ACCEPT
        -4 -A FORWARD -p icmp -m icmp --icmp-type echo-request -m conntrack --ctstate NEW -j ACCEPT
        -6 -A FORWARD -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -j DROP
        COMMIT

        """;

    /// <summary>NEW is accepted for port 7171 only; INVALID is dropped, so who decides a mid-stream ACK's state decides its fate.</summary>
    private const string StrayAckRuleset = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 7171 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -j DROP
        COMMIT

        """;

    private const ushort StrayPort = 7171;

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan s_cliTimeout = TimeSpan.FromSeconds(30);

    private readonly ITestOutputHelper _output;

    public ShadowModeLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Shadow_RealTcpUdpPing_AgreesWithKernel_ControlSocketMatchesConntrack_CleansUpOnSigterm()
    {
        using var lab = new GatewayLab();
        string rules = WriteRules(StatefulRuleset);
        string control = ControlPath();
        var held = new List<Socket>();
        using var stopUdp = new CancellationTokenSource();
        var udpServers = new List<Socket>();
        try
        {
            lab.Listen(8080);
            foreach (bool v6 in (bool[])[false, true])
                udpServers.Add(UdpEcho(lab, 5353, v6, stopUdp.Token));

            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "20", "--install", "FORWARD",
                "--ab", "kernel", "--control", control);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);
            Assert.Contains("shadow mode against kernel conntrack", ctfw.StdErr, StringComparison.Ordinal);
            Assert.True(File.Exists(control), $"no control socket at {control}\n{ctfw.StdErr}");
            foreach (string tool in (string[])["iptables-save", "ip6tables-save"])
            {
                string mangle = Tool.RunIn(lab.Gateway, tool, "-t", "mangle");
                Assert.Contains($"ctfw:{ctfw.Pid}:", mangle, StringComparison.Ordinal);
                Assert.Contains("--set-xmark", mangle, StringComparison.Ordinal);
            }

            // Short connections (closed by the client: TIME_WAIT), connections held open (ESTABLISHED),
            // UDP, ping, and a port the rules drop (the kernel's NEW decides: SYNs go unanswered).
            Assert.Equal("short-v4", await lab.TryEcho(lab.ServerV4, 8080, "short-v4", TimeSpan.FromSeconds(5)));
            Assert.Equal("short-v6", await lab.TryEcho(lab.ServerV6, 8080, "short-v6", TimeSpan.FromSeconds(5)));
            held.Add(await OpenEcho(lab, lab.ServerV4, 8080));
            held.Add(await OpenEcho(lab, lab.ServerV6, 8080));
            Assert.Equal("udp-v4", await UdpExchange(lab, lab.ServerV4, 5353, "udp-v4"));
            Assert.Equal("udp-v6", await UdpExchange(lab, lab.ServerV6, 5353, "udp-v6"));
            Assert.True(lab.Ping(lab.ServerV4), "IPv4 ping through shadow-mode ctfw failed");
            Assert.True(lab.Ping(lab.ServerV6), "IPv6 ping through shadow-mode ctfw failed");
            Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 9091, "x", TimeSpan.FromSeconds(2)));

            // Live counters: every packet carried the kernel's mark, and every one agreed.
            Dictionary<string, long> stats = await SettledStats(control);
            _output.WriteLine("ctfw stats --raw:\n" + string.Join('\n', stats.Select(kv => $"{kv.Key} {kv.Value}")));
            long compared = stats.GetValueOrDefault("ab.compared");
            Assert.True(compared > 20, $"ab.compared {compared}");
            Assert.Equal(compared, stats.GetValueOrDefault("ab.agreed"));
            Assert.Equal(0, stats.GetValueOrDefault("ab.disagreed"));
            Assert.Equal(0, stats.GetValueOrDefault("ab.unmarked"));
            Assert.Equal(stats["packets"], compared);
            Assert.True(stats.GetValueOrDefault("ab.NEW.NEW") > 0 && stats.GetValueOrDefault("ab.ESTABLISHED.ESTABLISHED") > 0, "ab matrix lacks NEW.NEW or ESTABLISHED.ESTABLISHED");
            Assert.True(stats.GetValueOrDefault("verdict.drop") >= 1, "the SYN to port 9091 was not dropped");

            // The human report shows the same numbers.
            ToolResult report = CtfwProcess.Run(s_cliTimeout, "stats", "--control", control);
            Assert.Equal(0, report.ExitCode);
            Assert.Contains("A/B against kernel conntrack", report.StdOut, StringComparison.Ordinal);

            // TCP flows: ctfw's table as `ctfw conntrack -L -p tcp` shows it against `conntrack -L` in the gateway.
            (List<TcpFlow> kernelTcp, List<TcpFlow> ctfwTcp) = await SettledTcpTables(lab, control);
            _output.WriteLine("kernel tcp:\n  " + string.Join("\n  ", kernelTcp));
            _output.WriteLine("ctfw tcp:\n  " + string.Join("\n  ", ctfwTcp));
            Assert.Equal(kernelTcp.Order(), ctfwTcp.Order());
            Assert.Equal(4, ctfwTcp.Count(f => f.OrigDport == 8080));
            foreach (Socket s in held)
            {
                var local = (IPEndPoint)s.LocalEndPoint!;
                var remote = (IPEndPoint)s.RemoteEndPoint!;
                TcpFlow flow = Assert.Single(ctfwTcp, f => f.OrigSport == local.Port);
                Assert.Equal(("ESTABLISHED", local.Address.ToString(), remote.Address.ToString(), 8080, true), (flow.State, flow.OrigSrc, flow.OrigDst, flow.OrigDport, flow.Assured));
                Assert.Equal((remote.Address.ToString(), local.Address.ToString(), 8080, local.Port), (flow.ReplySrc, flow.ReplyDst, flow.ReplySport, flow.ReplyDport));
            }
            Assert.Equal(2, ctfwTcp.Count(f => f.OrigDport == 8080 && f.State == "TIME_WAIT"));
            Assert.DoesNotContain(ctfwTcp, f => f.OrigDport == 9091);

            // Filters are applied by the daemon: one family, one state.
            ToolResult v6Established = CtfwProcess.Run(s_cliTimeout, "conntrack", "-L", "--control", control, "-p", "tcp", "-f", "ipv6", "--state", "ESTABLISHED");
            Assert.Equal(0, v6Established.ExitCode);
            TcpFlow only = Assert.Single(ParseTcp(v6Established.StdOut));
            Assert.Equal(((IPEndPoint)held[1].LocalEndPoint!).Port, only.OrigSport);
            Assert.Contains("1 flow entries have been shown", v6Established.StdErr, StringComparison.Ordinal);

            // Count: the same number as the unfiltered listing and as the kernel's table (TCP, UDP and ICMP of both families).
            ToolResult all = CtfwProcess.Run(s_cliTimeout, "conntrack", "-L", "--control", control);
            Assert.Equal(0, all.ExitCode);
            int listed = Lines(all.StdOut).Length;
            ToolResult count = CtfwProcess.Run(s_cliTimeout, "conntrack", "-C", "--control", control);
            Assert.Equal(0, count.ExitCode);
            int counted = int.Parse(count.StdOut.Trim(), CultureInfo.InvariantCulture);
            int kernelCount = KernelEntries(lab).Length;
            _output.WriteLine($"ctfw conntrack -C: {counted}; -L lines: {listed}; kernel entries: {kernelCount}\n{all.StdOut}");
            Assert.Equal(listed, counted);
            Assert.Equal(kernelCount, counted);
            Assert.True(counted >= 4 + 2 + 2, $"expected at least 4 TCP, 2 UDP and 2 ICMP entries, counted {counted}");

            // Flush: the daemon reports what it removed, and the table is empty after.
            ToolResult flush = CtfwProcess.Run(s_cliTimeout, "conntrack", "-F", "--control", control);
            Assert.Equal(0, flush.ExitCode);
            Assert.Contains($"emptied ({counted} entries)", flush.StdErr, StringComparison.Ordinal);
            ToolResult empty = CtfwProcess.Run(s_cliTimeout, "conntrack", "-C", "--control", control);
            Assert.Equal("0", empty.StdOut.Trim());
            Assert.Empty(Lines(CtfwProcess.Run(s_cliTimeout, "conntrack", "-L", "--control", control).StdOut));

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(s_stopTimeout));
            string stderr = ctfw.StdErr;
            _output.WriteLine(stderr);
            Match ab = AbSummary().Match(stderr);
            Assert.True(ab.Success, stderr);
            long finalCompared = long.Parse(ab.Groups["compared"].Value, CultureInfo.InvariantCulture);
            Assert.True(finalCompared >= compared, $"final compared {finalCompared} < live {compared}");
            Assert.Equal(ab.Groups["compared"].Value, ab.Groups["agreed"].Value);
            Assert.Equal("0", ab.Groups["unmarked"].Value);
            Assert.DoesNotContain("ctfw: ab: kernel ", stderr, StringComparison.Ordinal);

            foreach (string tool in (string[])["iptables-save", "ip6tables-save"])
            {
                foreach (string table in (string[])["mangle", "filter"])
                {
                    string saved = Tool.RunIn(lab.Gateway, tool, "-t", table);
                    Assert.DoesNotContain("ctfw:", saved, StringComparison.Ordinal);
                    Assert.DoesNotContain(":CTFW ", saved, StringComparison.Ordinal);
                }
            }
            Assert.False(File.Exists(control), $"control socket {control} is still there after exit");
        }
        finally
        {
            foreach (Socket s in held)
                s.Dispose();
            stopUdp.Cancel();
            foreach (Socket s in udpServers)
                s.Dispose();
            File.Delete(rules);
            File.Delete(control);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Shadow_LooseDisabledInCtfwOnly_MidStreamAckIsKernelNewCtfwInvalid_KernelVerdictLetsItPass() =>
        await StrayAck(enforceCtfw: false);

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Shadow_LooseDisabledInCtfwOnly_MidStreamAckIsKernelNewCtfwInvalid_EnforceCtfwDropsIt() =>
        await StrayAck(enforceCtfw: true);

    /// <summary>
    /// The kernel's nf_conntrack_tcp_loose is 1 in the gateway, ctfw's is set to 0: a pure ACK for a
    /// connection neither knows is NEW (picked up) for the kernel, INVALID (tcp-loose-disabled) for
    /// ctfw. The rules accept NEW to the port and drop INVALID, so the packet passes exactly when the
    /// kernel's ctstate is used.
    /// </summary>
    private async Task StrayAck(bool enforceCtfw)
    {
        using var lab = new GatewayLab();
        string rules = WriteRules(StrayAckRuleset);
        string control = ControlPath();
        try
        {
            lab.Listen(8080);
            // The server's stack answers an ACK for no socket with a RST; keep it home so that the
            // stray ACK is the only packet of its flow the gateway sees.
            Tool.RunIn(lab.Server, "iptables", "-A", "OUTPUT", "-p", "tcp", "--sport", StrayPort.ToString(CultureInfo.InvariantCulture),
                "--tcp-flags", "RST", "RST", "-j", "DROP");
            Assert.Equal("1", Tool.RunIn(lab.Gateway, "sysctl", "-n", "net.netfilter.nf_conntrack_tcp_loose").Trim());
            // Sanity: without ctfw the stray ACK reaches the server.
            Assert.True(await StrayAckArrives(lab, sourcePort: 40200), "a stray ACK without ctfw did not reach the server");
            FlushKernel(lab);

            string[] args = ["run", "--rules", rules, "--queue", "21", "--install", "FORWARD", "--ab", "kernel", "--control", control,
                "--set", "nf_conntrack_tcp_loose=0", .. enforceCtfw ? (string[])["--ab-enforce", "ctfw"] : []];
            using var ctfw = CtfwProcess.Start(lab.Gateway, args);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout), ctfw.StdErr);
            Assert.Contains(enforceCtfw ? "rules use ctfw's ctstate" : "rules use the kernel's ctstate", ctfw.StdErr, StringComparison.Ordinal);

            // A normal connection agrees (loose only matters for pickups); then wait past a sysctl
            // re-read (once a second), which must keep the --set value.
            Assert.Equal("normal", await lab.TryEcho(lab.ServerV4, 8080, "normal", TimeSpan.FromSeconds(5)));
            await Task.Delay(1500);

            const ushort SourcePort = 40201;
            bool arrived = await StrayAckArrives(lab, SourcePort);
            Assert.Equal(!enforceCtfw, arrived);

            // Kernel conntrack confirmed its picked-up entry only if the packet was accepted.
            string[] kernel = [.. KernelEntries(lab).Where(l => l.Contains($"sport={SourcePort} dport={StrayPort}", StringComparison.Ordinal))];
            _output.WriteLine("kernel entries for the stray ACK:\n  " + string.Join("\n  ", kernel));
            if (enforceCtfw)
            {
                Assert.Empty(kernel);
            }
            else
            {
                string entry = Assert.Single(kernel);
                Assert.Matches(@"^tcp\s+6\s+\d+ ESTABLISHED ", entry);
            }
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: ab: kernel NEW ORIGINAL, ctfw INVALID", TimeSpan.FromSeconds(5)), ctfw.StdErr);

            Dictionary<string, long> stats = await SettledStats(control);
            _output.WriteLine("ctfw stats --raw:\n" + string.Join('\n', stats.Select(kv => $"{kv.Key} {kv.Value}")));
            // The stray ACK is the only disagreement: the normal connection before it agreed packet for packet.
            Assert.Equal(1, stats.GetValueOrDefault("ab.NEW.INVALID"));
            Assert.Equal(1, stats.GetValueOrDefault("ab.disagreed"));
            Assert.Equal(stats["ab.compared"] - 1, stats["ab.agreed"]);
            Assert.Equal(0, stats.GetValueOrDefault("ab.unmarked"));
            Assert.Equal(1, stats.GetValueOrDefault("invalid.tcp-loose-disabled"));
            Assert.Equal(enforceCtfw ? 1 : 0, stats.GetValueOrDefault("verdict.drop"));
            // ctfw made no entry for it either way.
            ToolResult listing = CtfwProcess.Run(s_cliTimeout, "conntrack", "-L", "--control", control, "-p", "tcp",
                "--sport", SourcePort.ToString(CultureInfo.InvariantCulture));
            Assert.Equal(0, listing.ExitCode);
            Assert.Empty(Lines(listing.StdOut));

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(s_stopTimeout));
            string stderr = ctfw.StdErr;
            _output.WriteLine(stderr);
            string line = Assert.Single(Lines(stderr), l => l.StartsWith("ctfw: ab: kernel ", StringComparison.Ordinal));
            Assert.StartsWith("ctfw: ab: kernel NEW ORIGINAL, ctfw INVALID - (tcp-loose-disabled), tcp ", line, StringComparison.Ordinal);
            Assert.Contains($"SRC={lab.ClientV4} DST={lab.ServerV4} ", line, StringComparison.Ordinal);
            Assert.Contains($"SPT={SourcePort} DPT={StrayPort} ", line, StringComparison.Ordinal);
            Assert.Contains(" ACK ", line + " ", StringComparison.Ordinal);
            Assert.DoesNotContain(" SYN ", line, StringComparison.Ordinal);
            Match ab = AbSummary().Match(stderr);
            Assert.True(ab.Success, stderr);
            Assert.Equal("1", ab.Groups["disagreed"].Value);
            Assert.Contains("kernel NEW / ctfw INVALID 1", stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
            File.Delete(control);
        }
    }

    /// <summary>
    /// Sends a pure ACK (no SYN) for no connection from the client with a raw socket and reports
    /// whether a raw TCP socket in the server namespace saw it within 2 s.
    /// </summary>
    private static async Task<bool> StrayAckArrives(GatewayLab lab, ushort sourcePort)
    {
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
            DstPort = StrayPort,
            Seq = 0x2468ace0,
            Ack = 0x13579bdf,
            Flags = TcpFlags.Ack,
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
                if (source.Equals(lab.ClientV4) && sport == sourcePort && dport == StrayPort && buffer[ihl + 13] == (byte)TcpFlags.Ack)
                    return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>A TCP connection from the client that has echoed once and stays open.</summary>
    private static async Task<Socket> OpenEcho(GatewayLab lab, IPAddress server, int port)
    {
        Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await socket.ConnectAsync(new IPEndPoint(server, port), cts.Token);
            byte[] data = Encoding.ASCII.GetBytes("held");
            await socket.SendAsync(data, SocketFlags.None, cts.Token);
            byte[] buffer = new byte[data.Length];
            int got = 0;
            while (got < buffer.Length)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cts.Token);
                Assert.NotEqual(0, n);
                got += n;
            }
            Assert.Equal("held", Encoding.ASCII.GetString(buffer));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static Socket UdpEcho(GatewayLab lab, int port, bool v6, CancellationToken stop)
    {
        Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
        {
            var s = new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            if (v6)
                s.DualMode = false;
            s.Bind(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, port));
            return s;
        });
        _ = Task.Run(async () =>
        {
            byte[] buffer = new byte[2048];
            EndPoint any = new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    SocketReceiveFromResult r = await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, stop);
                    await socket.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint, stop);
                }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }
            }
        }, stop);
        return socket;
    }

    private static async Task<string> UdpExchange(GatewayLab lab, IPAddress server, int port, string message)
    {
        using Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
        socket.Connect(new IPEndPoint(server, port));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        await socket.SendAsync(Encoding.ASCII.GetBytes(message), SocketFlags.None, cts.Token);
        byte[] buffer = new byte[2048];
        try
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return Encoding.ASCII.GetString(buffer, 0, n);
        }
        catch (OperationCanceledException)
        {
            return "timeout";
        }
    }

    /// <summary>`ctfw stats --raw` once the packet counter has stopped moving (every queued packet judged).</summary>
    private static async Task<Dictionary<string, long>> SettledStats(string control)
    {
        Dictionary<string, long> last = Stats(control);
        for (int i = 0; i < 20; i++)
        {
            await Task.Delay(200);
            Dictionary<string, long> now = Stats(control);
            if (now["packets"] == last["packets"] && now["verdicts_sent"] == now["packets"])
                return now;
            last = now;
        }
        return last;
    }

    private static Dictionary<string, long> Stats(string control)
    {
        ToolResult r = CtfwProcess.Run(s_cliTimeout, "stats", "--raw", "--control", control);
        Assert.True(r.ExitCode == 0, r.ToString());
        var stats = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in Lines(r.StdOut))
        {
            string[] parts = line.Split(' ');
            Assert.True(parts.Length == 2, $"not a `name value` line: '{line}'");
            stats[parts[0]] = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return stats;
    }

    /// <summary>
    /// The TCP entries of both tables, read until two rounds in a row agree or 10 s pass (a close
    /// handshake may still be crossing the gateway when the first listing is taken).
    /// </summary>
    private static async Task<(List<TcpFlow> Kernel, List<TcpFlow> Ctfw)> SettledTcpTables(GatewayLab lab, string control)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            List<TcpFlow> kernel = [.. ParseTcp(string.Join('\n', KernelEntries(lab, "-p", "tcp")))];
            ToolResult r = CtfwProcess.Run(s_cliTimeout, "conntrack", "-L", "--control", control, "-p", "tcp");
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains($"{Lines(r.StdOut).Length} flow entries have been shown.", r.StdErr, StringComparison.Ordinal);
            List<TcpFlow> ctfw = [.. ParseTcp(r.StdOut)];
            Assert.Equal(Lines(r.StdOut).Length, ctfw.Count);
            if (kernel.Order().SequenceEqual(ctfw.Order()) || clock.Elapsed > TimeSpan.FromSeconds(10))
                return (kernel, ctfw);
            await Task.Delay(250);
        }
    }

    /// <summary>`conntrack -L` in the gateway, IPv4 then IPv6 (conntrack-tools lists one family at a time).</summary>
    private static string[] KernelEntries(GatewayLab lab, params string[] filters) =>
    [
        .. Lines(Tool.RunIn(lab.Gateway, ["conntrack", "-L", "-f", "ipv4", .. filters])),
        .. Lines(Tool.RunIn(lab.Gateway, ["conntrack", "-L", "-f", "ipv6", .. filters])),
    ];

    private static void FlushKernel(GatewayLab lab)
    {
        foreach (string family in (string[])["ipv4", "ipv6"])
        {
            try
            {
                Tool.RunIn(lab.Gateway, "conntrack", "-F", "-f", family);
            }
            catch (InvalidOperationException)
            {
                // conntrack -F exits 1 when that family's table is already empty.
            }
        }
    }

    private static IEnumerable<TcpFlow> ParseTcp(string listing)
    {
        foreach (string line in Lines(listing))
        {
            Match m = TcpEntry().Match(line);
            Assert.True(m.Success, $"not a TCP conntrack line: '{line}'");
            yield return new TcpFlow(
                m.Groups["state"].Value,
                Address(m.Groups["s1"].Value), Address(m.Groups["d1"].Value), Port(m.Groups["sp1"].Value), Port(m.Groups["dp1"].Value),
                Address(m.Groups["s2"].Value), Address(m.Groups["d2"].Value), Port(m.Groups["sp2"].Value), Port(m.Groups["dp2"].Value),
                m.Groups["assured"].Success, m.Groups["unreplied"].Success);
        }

        static string Address(string text) => IPAddress.Parse(text).ToString();
        static int Port(string text) => int.Parse(text, CultureInfo.InvariantCulture);
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string ControlPath() =>
        Path.Combine(Path.GetTempPath(), $"ctfw-shadow-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.sock");

    private static string WriteRules(string ruleset)
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-shadow-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        File.WriteAllText(path, ruleset);
        return path;
    }

    [GeneratedRegex(@"^tcp\s+6\s+\d+\s+(?<state>[A-Z_0-9]+)\s+src=(?<s1>\S+) dst=(?<d1>\S+) sport=(?<sp1>\d+) dport=(?<dp1>\d+) (?<unreplied>\[UNREPLIED\] )?src=(?<s2>\S+) dst=(?<d2>\S+) sport=(?<sp2>\d+) dport=(?<dp2>\d+) (?<assured>\[ASSURED\] )?")]
    private static partial Regex TcpEntry();

    [GeneratedRegex(@"ctfw: ab: compared (?<compared>\d+), agreed (?<agreed>\d+), disagreed (?<disagreed>\d+) \(direction only \d+\), unmarked (?<unmarked>\d+)")]
    private static partial Regex AbSummary();

    /// <summary>One TCP entry as `conntrack -L` prints it (timeout left out: the two clocks differ), addresses normalised.</summary>
    private sealed record TcpFlow(string State, string OrigSrc, string OrigDst, int OrigSport, int OrigDport,
        string ReplySrc, string ReplyDst, int ReplySport, int ReplyDport, bool Assured, bool Unreplied) : IComparable<TcpFlow>
    {
        public int CompareTo(TcpFlow? other) => string.CompareOrdinal(ToString(), other?.ToString());
    }
}
