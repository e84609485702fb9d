using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ctfw.Linux;
using Xunit.Abstractions;
using static Ctfw.Daemon.Tests.OffloadProbe;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw run --install FORWARD --offload established` in a gateway lab (issue 15, docs/OFFLOAD.md):
/// what goes into the kernel's sets and when it comes out, checked from both sides — `nft` in the
/// gateway for the kernel, `ctfw stats` and `ctfw conntrack -L` for the daemon — and what traffic
/// does meanwhile: a TCP bulk transfer, a two-way UDP exchange, a SIGKILL (the owned table goes
/// with the process), `conntrack -D` / `-F`, and a reload. Every wait polls with a bound.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class OffloadLiveTests
{
    private const int TestTimeoutMs = 180_000;
    private const ushort Queue = 50;
    private const int BulkPort = 5001;
    private const int EchoPort = 8090;
    private const int UdpPort = 5353;
    private const int ConversationTcpPort = 7301;
    private const int ConversationUdpPort = 7302;

    // NEW in both directions for the conversation's ports: after a restart without state the new run
    // picks the flows up mid-stream (nf_conntrack_tcp_loose=1), whichever side speaks first.
    private static readonly string s_rules = RulesWith("");

    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan s_offloadTimeout = TimeSpan.FromSeconds(10);

    private readonly ITestOutputHelper _output;

    public OffloadLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    private static string RulesWith(string extra) => $"""
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport {BulkPort} -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport {EchoPort} -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p tcp -m tcp --dport {ConversationTcpPort} -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p tcp -m tcp --sport {ConversationTcpPort} -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport {UdpPort} -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --dport {ConversationUdpPort} -m conntrack --ctstate NEW -j ACCEPT
        -A FORWARD -p udp -m udp --sport {ConversationUdpPort} -m conntrack --ctstate NEW -j ACCEPT
        {extra}-A FORWARD -j DROP
        COMMIT

        """;

    private static LiveDaemon StartDaemon(GatewayLab lab, string name, params string[] extra) =>
        new(lab, name, s_rules, Queue, ["--offload", "established", .. extra]);

    [Fact(Timeout = TestTimeoutMs)]
    public async Task TcpBulk_OffloadedDuringTransfer_KernelForwardsMostPackets_SetsEmptyAfterClose_TableAndChainGoneAfterStop()
    {
        using var lab = new GatewayLab();
        using var daemon = StartDaemon(lab, "offload-bulk", "--set", "nf_conntrack_acct=1");
        string control = daemon.ControlPath;
        int pid = daemon.Process.Pid;
        string table = ListTable(lab, pid);
        _output.WriteLine($"nft list table inet {Table(pid)} after the start:\n{table}");
        foreach (string set in (string[])["tcp4", "tcp6", "udp4", "udp6"])
            Assert.Contains($"set {set} ", table, StringComparison.Ordinal);
        Assert.Contains("chain forward", table, StringComparison.Ordinal);
        string saved = Tool.RunIn(lab.Gateway, "iptables-save");
        Assert.Single(saved.Split('\n'), l => l.StartsWith("-A CTFW ", StringComparison.Ordinal)
            && l.Contains("-m mark --mark 0x40000000/0x40000000 ", StringComparison.Ordinal) && l.EndsWith("-j ACCEPT", StringComparison.Ordinal));

        using Socket listener = EchoFlow.Listen(lab, BulkPort);
        Task<long> sink = Task.Factory.StartNew(() => Sink(listener), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        using Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        using (var connect = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            await client.ConnectAsync(new IPEndPoint(lab.ServerV4, BulkPort), connect.Token);
        int clientPort = ((IPEndPoint)client.LocalEndPoint!).Port;
        var clock = Stopwatch.StartNew();
        using var stopSending = new CancellationTokenSource();
        Task<long> sending = Task.Factory.StartNew(() => Stream(client, stopSending.Token), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        // During the transfer: in the daemon's counters, in the kernel's set, in the listing.
        Dictionary<string, long> offloaded = await Until(() => Stats(control), s => s["offload.flows"] >= 1, s_offloadTimeout,
            "offload.flows during the transfer", Describe);
        double offloadedAtMs = clock.Elapsed.TotalMilliseconds;
        List<OffloadElement> elements = await Until(() => Elements(lab, pid, "tcp4"), e => e.Count == 2, TimeSpan.FromSeconds(2),
            "two elements in tcp4", Describe);
        _output.WriteLine($"tcp4 during the transfer: {Describe(elements)}");
        AssertBothDirections(elements, lab, clientPort, BulkPort);
        string line = await Until(() => Entry(control, "tcp", clientPort, BulkPort) ?? "", l => l.Contains("[OFFLOAD]", StringComparison.Ordinal),
            TimeSpan.FromSeconds(2), "[OFFLOAD] in ctfw conntrack -L");
        _output.WriteLine($"ctfw conntrack -L during the transfer: {line}");
        // With accounting on, the listing counts what the kernel forwarded: soon more than ctfw's queue ever saw.
        (string counted, long queued) = await Until(() =>
        {
            long q = Stats(control)["packets"];
            return (Entry(control, "tcp", clientPort, BulkPort) ?? "", q);
        }, t => t.Item1.Length > 0 && ListedPackets(t.Item1) > t.Item2, TimeSpan.FromSeconds(5), "listed packets= above the queue's packets");
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"listed packets {ListedPackets(counted)} > queued {queued}: {counted}"));

        TimeSpan left = TimeSpan.FromSeconds(3) - clock.Elapsed;
        if (left > TimeSpan.Zero)
            await Task.Delay(left); // the transfer lasts 3 s (a duration of the workload, not a wait for a result)
        // Still sending: the listing reads the kernel's counters, so the stats count everything until now.
        Assert.NotNull(Entry(control, "tcp", clientPort, BulkPort));
        Dictionary<string, long> during = Stats(control);
        stopSending.Cancel();
        long sent = await sending.WaitAsync(TimeSpan.FromSeconds(30));
        double seconds = clock.Elapsed.TotalSeconds;
        long acknowledged = ReadCount(client);
        Assert.Equal(sent, await sink.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(sent, acknowledged);

        // The close reached ctfw (FIN): out of the sets within a few ms; the counter follows.
        Dictionary<string, long> after = await Until(() => Stats(control), s => s["offload.flows"] == 0, TimeSpan.FromSeconds(3),
            "offload.flows back to 0 after the close", Describe);
        Assert.Empty(Elements(lab, pid, "tcp4"));
        _output.WriteLine("after the close: " + Describe(after));
        // Informational: what the kernel forwarded after the last dump before the FIN is not counted (docs/OFFLOAD.md).
        _output.WriteLine($"ctfw conntrack -L after the close ({sent} bytes sent): {Entry(control, "tcp", clientPort, BulkPort)}");
        Assert.True(after["offload.adds"] >= 1 && after["offload.removes"] >= 1, Describe(after));
        Assert.Equal(0, after["offload.errors"]);
        long offloadPackets = during["offload.packets"], queuePackets = during["packets"];
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bulk: {sent / 1e6:F0} MB in {seconds:F2} s ({sent * 8 / seconds / 1e9:F2} Gbit/s), offloaded after {offloadedAtMs:F0} ms; "
            + $"at 3 s: packets offloaded {offloadPackets} ({during["offload.bytes"] / 1e6:F0} MB), through ctfw's queue {queuePackets}; "
            + $"after the close: offloaded {after["offload.packets"]} ({after["offload.bytes"] / 1e6:F0} MB), queue {after["packets"]}, relearned {after["offload.relearned"]}"));
        Assert.True(offloadPackets > 10 * queuePackets,
            $"the kernel forwarded {offloadPackets} packets of the flow, ctfw's queue saw {queuePackets}: not 10 times fewer");
        Assert.True(after["offload.packets"] >= offloadPackets);
        Assert.True(offloaded["offload.adds"] >= 1);

        Assert.True(daemon.Process.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.Process.WaitForExit(s_stopTimeout));
        _output.WriteLine(daemon.Process.StdErr);
        Assert.False(TableExists(lab, pid), Tool.RunIn(lab.Gateway, "nft", "list", "tables"));
        AssertNoCtfwRules(lab);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Udp_TwoWayExchangeOver3Seconds_OffloadedBothDirections_KernelCountsGrow_ExchangeUnbroken()
    {
        using var lab = new GatewayLab();
        using var stop = new CancellationTokenSource();
        using Socket server = RunUdpLiveTests.UdpEcho(lab, UdpPort, v6: false, stop.Token);
        try
        {
            using var daemon = StartDaemon(lab, "offload-udp");
            string control = daemon.ControlPath;
            int pid = daemon.Process.Pid;
            using var exchange = new UdpPingPong(lab, UdpPort, TimeSpan.FromMilliseconds(50));
            var clock = Stopwatch.StartNew();

            // UDP is offloaded once ASSURED: replied and still talking 2 s later.
            await Until(() => Stats(control), s => s["offload.flows"] >= 1, s_offloadTimeout, "offload.flows for the UDP exchange", Describe);
            double offloadedAtMs = clock.Elapsed.TotalMilliseconds;
            List<OffloadElement> elements = await Until(() => Elements(lab, pid, "udp4"), e => e.Count == 2, TimeSpan.FromSeconds(2),
                "two elements in udp4", Describe);
            _output.WriteLine($"udp4: {Describe(elements)}");
            AssertBothDirections(elements, lab, exchange.ClientPort, UdpPort);
            string? line = Entry(control, "udp", exchange.ClientPort, UdpPort);
            Assert.True(line is not null && line.Contains("[OFFLOAD]", StringComparison.Ordinal), $"ctfw conntrack -L: '{line}'");

            int echoedAtOffload = exchange.Received;
            long before = Stats(control)["offload.packets"];
            Dictionary<string, long> grown = await Until(() => Stats(control), s => s["offload.packets"] >= before + 20, TimeSpan.FromSeconds(5),
                "offload.packets growing by 20", Describe);
            TimeSpan left = TimeSpan.FromSeconds(3.5) - clock.Elapsed;
            if (left > TimeSpan.Zero)
                await Task.Delay(left); // the exchange lasts over 3 s (the workload's length)
            (int sent, int received, int duplicates) = await exchange.StopAsync(TimeSpan.FromSeconds(2));
            // The only forwarded traffic: every datagram either way went through the queue or past it,
            // counted once — as soon as the kernel's counters were read after the last one (a listing
            // reads them unless they were read in the last 200 ms; the manager reads them every second).
            Dictionary<string, long> final = await Until(() =>
            {
                Assert.NotNull(Entry(control, "udp", exchange.ClientPort, UdpPort));
                return Stats(control);
            }, f => f["packets"] + f["offload.packets"] >= 2L * sent, TimeSpan.FromSeconds(3), "every datagram counted", Describe);
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"udp: sent {sent}, echoed {received} ({received - echoedAtOffload} after the offload at {offloadedAtMs:F0} ms), duplicates {duplicates}; "
                + $"offload.packets {before} → {grown["offload.packets"]} → {final["offload.packets"]}, queue packets {final["packets"]}"));
            Assert.Equal(sent, received);
            Assert.Equal(0, duplicates);
            Assert.Equal(2L * sent, final["packets"] + final["offload.packets"]); // and none twice
            Assert.True(received - echoedAtOffload >= 20, $"only {received - echoedAtOffload} echoes after the offload");
            Assert.Equal(0, final["offload.errors"]);
            Assert.Equal(1, final["offload.flows"]); // an idle UDP flow stays until its timeout

            Assert.True(daemon.Process.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, daemon.Process.WaitForExit(s_stopTimeout));
            Assert.False(TableExists(lab, pid));
            AssertNoCtfwRules(lab);
        }
        finally
        {
            stop.Cancel();
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Sigkill_OwnedTableGoesWithProcess_ConversationContinuesThroughBypass_NextRunStartsAndStopsCleanly()
    {
        using var lab = new GatewayLab();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        var first = StartDaemon(lab, "offload-crash");
        int firstPid = first.Process.Pid;
        LiveDaemon? second = null;
        Conversation? conversation = null;
        try
        {
            conversation = await Conversation.StartAsync(lab, ConversationTcpPort, ConversationUdpPort, cts.Token);
            await WaitForOffloadedTcp(lab, firstPid, first.ControlPath, ConversationTcpPort);
            string? line = Lines(RunCtfw("conntrack", "-L", "--control", first.ControlPath, "-p", "tcp").StdOut)
                .SingleOrDefault(l => l.Contains($"dport={ConversationTcpPort} ", StringComparison.Ordinal));
            Assert.True(line is not null && line.Contains("[OFFLOAD]", StringComparison.Ordinal), $"ctfw conntrack -L: '{line}'");

            await Until(() => Elements(lab, firstPid, "udp4"), e => e.Count == 2, s_offloadTimeout, "the conversation's UDP flow in udp4", Describe);

            // A packet in the queue when its reader dies is dropped by the kernel: the pushes that went
            // out while the process died may be lost (as without offload: StateFileLiveTests).
            int dyingFrom = conversation.Report().UdpPushed;
            conversation.MarkEvent();
            first.Process.KillTree();
            var clock = Stopwatch.StartNew();
            Assert.NotNull(first.Process.WaitForExit(s_stopTimeout));
            int dyingTo = conversation.Report().UdpPushed;
            await Until(() => TableExists(lab, firstPid), exists => !exists, TimeSpan.FromSeconds(2),
                $"table inet {Table(firstPid)} gone after SIGKILL");
            _output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"table gone {clock.ElapsedMilliseconds} ms after SIGKILL"));
            Assert.Contains($"ctfw:{firstPid}:", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal); // no cleanup ran

            // Nobody reads the queue: --queue-bypass lets the conversation through.
            Assert.True(await conversation.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(10)),
                "no progress after SIGKILL: " + conversation.Report().Describe());

            second = StartDaemon(lab, "offload-crash2");
            int secondPid = second.Process.Pid;
            Assert.Contains("iptables rules left by a run that is gone", second.Process.StdErr, StringComparison.Ordinal);
            string saved = Tool.RunIn(lab.Gateway, "iptables-save");
            _output.WriteLine("iptables-save under the second run:\n" + saved);
            string[] tagged = [.. saved.Split('\n').Where(l => l.Contains("ctfw:", StringComparison.Ordinal))];
            Assert.NotEmpty(tagged);
            Assert.All(tagged, l => Assert.Contains($"ctfw:{secondPid}:", l, StringComparison.Ordinal));
            Assert.Single(saved.Split('\n'), l => l.StartsWith(":CTFW ", StringComparison.Ordinal));
            Assert.True(TableExists(lab, secondPid));
            Assert.True(await conversation.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(15)),
                "no progress under the second run: " + conversation.Report().Describe());

            Assert.True(second.Process.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, second.Process.WaitForExit(s_stopTimeout));
            _output.WriteLine("second run:\n" + second.Process.StdErr);
            Assert.False(TableExists(lab, secondPid));
            AssertNoCtfwRules(lab);

            ConversationReport report = await conversation.StopAsync();
            Conversation.RecordGap(_output, "offload-sigkill", report);
            Assert.True(report.IntactExceptUdp(dyingFrom, dyingTo), report.Describe() + $" (pushes {dyingFrom}..{dyingTo} went out while the killed ctfw died)");
        }
        finally
        {
            if (conversation is not null)
                await conversation.DisposeAsync();
            second?.Dispose();
            first.Dispose();
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task ConntrackDeleteAndFlush_OffloadedFlow_ElementsOutBeforeEntryDies_ConnectionPickedUpAfter()
    {
        using var lab = new GatewayLab();
        using var daemon = StartDaemon(lab, "offload-delete");
        string control = daemon.ControlPath;
        int pid = daemon.Process.Pid;
        using Socket listener = EchoFlow.Listen(lab, EchoPort);

        foreach (bool flush in (bool[])[false, true])
        {
            using EchoFlow flow = await EchoFlow.OpenAsync(lab, listener);
            await PingUntilOffloaded(lab, pid, control, flow);
            string? line = Entry(control, "tcp", flow.ClientPort, EchoPort);
            Assert.True(line is not null && line.Contains("[OFFLOAD]", StringComparison.Ordinal), $"ctfw conntrack -L: '{line}'");
            Dictionary<string, long> before = Stats(control);

            // The flow is idle now: nothing can put it back before the checks below.
            ToolResult r = flush
                ? RunCtfw("conntrack", "-F", "--control", control)
                : RunCtfw("conntrack", "-D", "--control", control, "-p", "tcp", "--dport", EchoPort.ToString(CultureInfo.InvariantCulture));
            _output.WriteLine($"{(flush ? "-F" : "-D")}: {r.StdOut.Trim()} / {r.StdErr.Trim()}");
            if (!flush)
                Assert.Contains($"sport={flow.ClientPort} dport={EchoPort} ", r.StdOut, StringComparison.Ordinal);

            // The control request returned after the elements went: no polling.
            List<OffloadElement> elements = Elements(lab, pid, "tcp4");
            Assert.True(elements.Count == 0, $"tcp4 after {(flush ? "-F" : "-D")}: {Describe(elements)}");
            Dictionary<string, long> after = Stats(control);
            _output.WriteLine($"before: {Describe(before)}\nafter: {Describe(after)}");
            Assert.True(after["offload.removes"] > before["offload.removes"], $"offload.removes did not grow: {Describe(after)}");
            Assert.Equal(0, after["offload.flows"]);
            Assert.Equal(0, after["offload.errors"]);
            Assert.Null(Entry(control, "tcp", flow.ClientPort, EchoPort));

            // The connection itself lives on: its next packet is picked up as a new entry (tcp_loose).
            Assert.Equal("after", await flow.PingAsync("after"));
            Assert.NotNull(Entry(control, "tcp", flow.ClientPort, EchoPort));
        }

        Assert.True(daemon.Process.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.Process.WaitForExit(s_stopTimeout));
        Assert.False(TableExists(lab, pid));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Reload_RulesStillAccept_ElementsRemovedThenFlowOffloadedAgainByNextPackets_ConversationUnbroken()
    {
        using var lab = new GatewayLab();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        using var daemon = StartDaemon(lab, "offload-reload");
        string control = daemon.ControlPath;
        int pid = daemon.Process.Pid;
        await using Conversation conversation = await Conversation.StartAsync(lab, ConversationTcpPort, ConversationUdpPort, cts.Token);

        // Both flows in: TCP after its delay, UDP once ASSURED (2 s).
        await WaitForOffloadedTcp(lab, pid, control, ConversationTcpPort);
        await Until(() => Elements(lab, pid, "udp4"), e => e.Count == 2, s_offloadTimeout, "the conversation's UDP flow in udp4", Describe);
        Dictionary<string, long> before = Stats(control);
        Assert.Equal(2, before["offload.flows"]);

        File.WriteAllText(daemon.RulesPath, RulesWith("-A FORWARD -p icmp -j ACCEPT\n"));
        conversation.MarkEvent();
        ToolResult reload = RunCtfw("reload", "--control", control);
        _output.WriteLine("reload: " + reload.StdOut.Trim() + reload.StdErr.Trim());
        // The reload returns after every element went out.
        Dictionary<string, long> reloaded = Stats(control);
        _output.WriteLine($"before: {Describe(before)}\nafter the reload: {Describe(reloaded)}");
        Assert.True(reloaded["offload.removes"] >= before["offload.removes"] + 2, $"offload.removes did not grow by 2: {Describe(reloaded)}");
        Assert.Equal(1, reloaded["rules.reloads"]);

        // Offloaded again by their next packets (a message every 200 ms each way).
        Dictionary<string, long> again = await Until(() => Stats(control),
            s => s["offload.adds"] >= before["offload.adds"] + 2 && s["offload.flows"] == 2, s_offloadTimeout,
            "both flows offloaded again after the reload", Describe);
        List<OffloadElement> tcp = Elements(lab, pid, "tcp4"), udp = Elements(lab, pid, "udp4");
        _output.WriteLine($"after re-offload: {Describe(again)}\ntcp4: {Describe(tcp)}\nudp4: {Describe(udp)}");
        Assert.Equal(2, tcp.Count);
        Assert.Equal(2, udp.Count);
        Assert.Equal(0, again["offload.errors"]);

        Assert.True(await conversation.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(10)),
            "no progress after the reload: " + conversation.Report().Describe());
        ConversationReport report = await conversation.StopAsync();
        Conversation.RecordGap(_output, "offload-reload", report);
        Assert.True(report.Intact, report.Describe());

        Assert.True(daemon.Process.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.Process.WaitForExit(s_stopTimeout));
        Assert.False(TableExists(lab, pid));
    }

    /// <summary>Waits until the TCP flow to <paramref name="port"/> has both its elements in tcp4.</summary>
    private async Task WaitForOffloadedTcp(GatewayLab lab, int pid, string control, int port)
    {
        List<OffloadElement> elements = await Until(() => Elements(lab, pid, "tcp4"),
            e => e.Count(x => x.DestinationPort == port || x.SourcePort == port) == 2, s_offloadTimeout,
            $"the TCP flow to port {port} in tcp4", Describe);
        _output.WriteLine($"tcp4: {Describe(elements)}; stats: {Describe(Stats(control))}");
    }

    /// <summary>Pings on <paramref name="flow"/> until both its elements are in tcp4 (each echo must come back).</summary>
    private async Task PingUntilOffloaded(GatewayLab lab, int pid, string control, EchoFlow flow)
    {
        long deadline = Environment.TickCount64 + (long)s_offloadTimeout.TotalMilliseconds;
        for (int i = 0; ; i++)
        {
            string message = string.Create(CultureInfo.InvariantCulture, $"ping {i}\n");
            Assert.Equal(message, await flow.PingAsync(message));
            List<OffloadElement> elements = Elements(lab, pid, "tcp4");
            if (elements.Count(e => e.SourcePort == flow.ClientPort || e.DestinationPort == flow.ClientPort) == 2)
            {
                _output.WriteLine($"offloaded after {i + 1} pings: {Describe(elements)}; {Describe(Stats(control))}");
                return;
            }
            Assert.True(Environment.TickCount64 < deadline, $"not offloaded after {i + 1} pings: {Describe(elements)}; {Describe(Stats(control))}");
            await Task.Delay(50);
        }
    }

    private static void AssertBothDirections(List<OffloadElement> elements, GatewayLab lab, int clientPort, int serverPort)
    {
        string client = lab.ClientV4.ToString(), server = lab.ServerV4.ToString();
        Assert.Contains(elements, e => e.Source == client && e.Destination == server && e.SourcePort == clientPort && e.DestinationPort == serverPort);
        Assert.Contains(elements, e => e.Source == server && e.Destination == client && e.SourcePort == serverPort && e.DestinationPort == clientPort);
    }

    private static void AssertNoCtfwRules(GatewayLab lab)
    {
        foreach (string tool in (string[])["iptables-save", "ip6tables-save"])
        {
            string saved = Tool.RunIn(lab.Gateway, tool);
            Assert.DoesNotContain("ctfw:", saved, StringComparison.Ordinal);
            Assert.DoesNotContain(":CTFW", saved, StringComparison.Ordinal);
        }
    }

    /// <summary>Sends 1 MiB chunks until <paramref name="stop"/>, then half-closes; returns the bytes sent.</summary>
    private static long Stream(Socket client, CancellationToken stop)
    {
        byte[] chunk = new byte[1 << 20];
        Random.Shared.NextBytes(chunk);
        long sent = 0;
        while (!stop.IsCancellationRequested)
            sent += client.Send(chunk);
        client.Shutdown(SocketShutdown.Send);
        return sent;
    }

    /// <summary>Accepts one connection, counts its bytes to EOF and answers the count (8 bytes, big endian).</summary>
    private static long Sink(Socket listener)
    {
        using Socket peer = listener.Accept();
        byte[] buffer = new byte[1 << 18];
        long total = 0;
        int n;
        while ((n = peer.Receive(buffer)) > 0)
            total += n;
        byte[] answer = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(answer, total);
        peer.Send(answer);
        peer.Shutdown(SocketShutdown.Send);
        return total;
    }

    private static long ReadCount(Socket client)
    {
        client.ReceiveTimeout = 30_000;
        byte[] answer = new byte[8];
        int got = 0;
        while (got < answer.Length)
        {
            int n = client.Receive(answer.AsSpan(got));
            Assert.True(n > 0, $"the server closed after {got} bytes of its answer");
            got += n;
        }
        return BinaryPrimitives.ReadInt64BigEndian(answer);
    }

    /// <summary>
    /// The client sends "u N" to the server's UDP echo every <c>interval</c> (its own thread) and
    /// counts the echoes (another thread).
    /// </summary>
    private sealed class UdpPingPong : IDisposable
    {
        private readonly Socket _socket;
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _sender;
        private readonly Thread _receiver;
        private readonly HashSet<int> _echoed = [];
        private readonly TimeSpan _interval;
        private int _sent;
        private int _duplicates;

        public UdpPingPong(GatewayLab lab, int port, TimeSpan interval)
        {
            _interval = interval;
            _socket = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
                () => new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp));
            _socket.Connect(new IPEndPoint(lab.ServerV4, port));
            ClientPort = ((IPEndPoint)_socket.LocalEndPoint!).Port;
            _sender = new Thread(Send) { Name = "offload-udp-send", IsBackground = true };
            _receiver = new Thread(Receive) { Name = "offload-udp-receive", IsBackground = true };
            _receiver.Start();
            _sender.Start();
        }

        public int ClientPort { get; }

        public int Received
        {
            get
            {
                lock (_echoed)
                    return _echoed.Count;
            }
        }

        /// <summary>Stops sending, gives the last echoes <paramref name="drain"/> to come back, and returns the counts.</summary>
        public async Task<(int Sent, int Received, int Duplicates)> StopAsync(TimeSpan drain)
        {
            _stop.Cancel();
            _sender.Join();
            int sent = Volatile.Read(ref _sent);
            long deadline = Environment.TickCount64 + (long)drain.TotalMilliseconds;
            while (Received < sent && Environment.TickCount64 < deadline)
                await Task.Delay(20);
            lock (_echoed)
                return (sent, _echoed.Count, _duplicates);
        }

        private void Send()
        {
            try
            {
                do
                {
                    int n = Volatile.Read(ref _sent) + 1;
                    _socket.Send(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"u {n}")));
                    Volatile.Write(ref _sent, n); // counted once it left: StopAsync waits for exactly these
                }
                while (!_stop.Token.WaitHandle.WaitOne(_interval));
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Closed; a missing echo shows in the counts.
            }
        }

        private void Receive()
        {
            byte[] buffer = new byte[1500];
            while (true)
            {
                int got;
                try
                {
                    got = _socket.Receive(buffer);
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException)
                {
                    return;
                }
                string text = Encoding.ASCII.GetString(buffer, 0, got);
                if (!text.StartsWith("u ", StringComparison.Ordinal) || !int.TryParse(text.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int n))
                    continue;
                lock (_echoed)
                {
                    if (!_echoed.Add(n))
                        _duplicates++;
                }
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _socket.Dispose();
            _sender.Join(TimeSpan.FromSeconds(5));
            _receiver.Join(TimeSpan.FromSeconds(5));
            _stop.Dispose();
        }
    }
}
