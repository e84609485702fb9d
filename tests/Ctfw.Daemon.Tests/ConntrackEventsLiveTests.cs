using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw conntrack -E` against a live daemon on a gateway: a real TCP connection through it gives
/// NEW, the UPDATEs of its handshake and close, then DESTROY with its counters, in the kernel's
/// order and format; a subscriber that never reads loses events (counted) without slowing the
/// packet path; `-S` lists the worker.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class ConntrackEventsLiveTests
{
    private const int Port = 7007;
    private const int UdpPort = 9;

    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport 7007 -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport 9 -m conntrack --ctstate NEW -j ACCEPT
        COMMIT

        """;

    [Fact(Timeout = 180_000)]
    public async Task EventsSubscriber_TcpConnectionThroughDaemon_NewUpdatesDestroyInOrder_SlowSubscriberLosesWithoutStallingPackets()
    {
        using var lab = new GatewayLab();
        lab.Listen(Port);
        using var daemon = new LiveDaemon(lab, "events", Rules, 17, "--set", "nf_conntrack_acct=1", "--set", "nf_conntrack_tcp_timeout_time_wait=2");
        ChildProcess ctfw = daemon.Process;
        string control = daemon.ControlPath;

        using ChildProcess events = CtfwProcess.Start(null, "conntrack", "-E", "-p", "tcp", "--dport", $"{Port}", "--control", control);
        WaitForStat(control, "events.subscribers", v => v == 1);

        Assert.Equal("hello", await lab.TryEcho(lab.ServerV4, Port, "hello", TimeSpan.FromSeconds(10)));
        string? destroy = events.WaitForLine(OutputStream.StdOut, l => l.StartsWith("[DESTROY]", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        Assert.True(destroy != null, events.StdOut + events.StdErr);

        string[] lines = events.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Match first = NewLine().Match(lines[0]);
        Assert.True(first.Success, lines[0]);
        string sport = first.Groups["sport"].Value;
        string orig = $"src={lab.ClientV4} dst={lab.ServerV4} sport={sport} dport={Port}";
        string reply = $"src={lab.ServerV4} dst={lab.ClientV4} sport={Port} dport={sport}";
        Assert.All(lines, l => Assert.Contains(orig, l));
        Assert.All(lines, l => Assert.Contains(reply, l));
        // The kernel's sequence for an echo whose client closes first (tests/data/conntrack-tools/events.txt).
        string[] kinds = lines.Select(l => l[..9].Trim() + " " + StateOf(l)).ToArray();
        Assert.Equal("[NEW] SYN_SENT", kinds[0]);
        Assert.Equal("[UPDATE] SYN_RECV", kinds[1]);
        Assert.Equal("[UPDATE] ESTABLISHED", kinds[2]);
        Assert.Contains("[ASSURED]", lines[2]);
        Assert.Equal("[UPDATE] FIN_WAIT", kinds[3]);
        Assert.Equal("[DESTROY] TIME_WAIT", kinds[^1]);
        Assert.Equal("[UPDATE] TIME_WAIT", kinds[^2]);
        Assert.All(kinds[1..^1], k => Assert.StartsWith("[UPDATE]", k));
        Match counters = DestroyCounters().Match(lines[^1]);
        Assert.True(counters.Success, lines[^1]);
        Assert.True(int.Parse(counters.Groups["po"].Value, System.Globalization.CultureInfo.InvariantCulture) >= 4, lines[^1]);
        Assert.True(int.Parse(counters.Groups["pr"].Value, System.Globalization.CultureInfo.InvariantCulture) >= 3, lines[^1]);

        // A subscriber that never reads: its backlog fills, events are lost and counted, packets flow.
        using var stalled = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveBufferSize = 4096 };
        stalled.Connect(new UnixDomainSocketEndPoint(control));
        stalled.Send("events\n"u8);
        WaitForStat(control, "events.subscribers", v => v == 2);
        var clock = Stopwatch.StartNew();
        int datagrams = 0;
        while (Stat(control, "events.lost") == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"no event lost after {datagrams} new flows");
            datagrams += SendUdpFlows(lab, 1000);
        }
        Assert.Equal("still", await lab.TryEcho(lab.ServerV4, Port, "still", TimeSpan.FromSeconds(5)));
        Assert.False(ctfw.HasExited);
        ToolResult cpu = CtfwProcess.Run(TimeSpan.FromSeconds(30), "conntrack", "-S", "--control", control);
        Assert.True(cpu.ExitCode == 0, cpu.StdErr);
        Assert.Matches(@"^cpu=0   \tfound=\d+ invalid=\d+ insert=[1-9]\d* insert_failed=0 drop=0 early_drop=0 error=\d+ search_restart=\d+ clash_resolve=\d+ chaintoolong=0 \n$", cpu.StdOut);

        stalled.Dispose();
        WaitForStat(control, "events.subscribers", v => v == 1);
        Assert.True(events.Signal(ChildProcess.SigInt));
        Assert.Equal(0, events.WaitForExit(TimeSpan.FromSeconds(20)));
        Assert.Contains("flow events have been shown.", events.StdErr);
        Assert.True(ctfw.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
    }

    private static string StateOf(string line)
    {
        Match m = StateWord().Match(line);
        return m.Success ? m.Groups["state"].Value : "?";
    }

    /// <summary>New UDP flows from the client to the server's closed port 9 (each a NEW event; the port unreachable answers are RELATED).</summary>
    private static int SendUdpFlows(GatewayLab lab, int count)
    {
        return NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client), () =>
        {
            byte[] payload = new byte[16];
            for (int i = 0; i < count; i++)
            {
                using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                s.SendTo(payload, new IPEndPoint(lab.ServerV4, UdpPort));
            }
            return count;
        });
    }

    private static long Stat(string control, string name)
    {
        ToolResult stats = CtfwProcess.Run(TimeSpan.FromSeconds(30), "stats", "--raw", "--control", control);
        Assert.True(stats.ExitCode == 0, stats.StdErr);
        foreach (string line in stats.StdOut.Split('\n'))
        {
            if (line.StartsWith(name + " ", StringComparison.Ordinal))
                return long.Parse(line[(name.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new Xunit.Sdk.XunitException($"no {name} in {stats.StdOut}");
    }

    private static void WaitForStat(string control, string name, Func<long, bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition(Stat(control, name)))
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{name} never reached the expected value");
            Thread.Sleep(100);
        }
    }

    [GeneratedRegex(@"^    \[NEW\] tcp      6 120 SYN_SENT src=\S+ dst=\S+ sport=(?<sport>\d+) dport=\d+ \[UNREPLIED\] ")]
    private static partial Regex NewLine();

    [GeneratedRegex(@"tcp      6 (\d+ )?(?<state>[A-Z_]+) src=")]
    private static partial Regex StateWord();

    [GeneratedRegex(@"dport=\d+ packets=(?<po>\d+) bytes=\d+ src=.* packets=(?<pr>\d+) bytes=\d+ \[ASSURED\]$")]
    private static partial Regex DestroyCounters();
}
