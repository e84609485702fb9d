using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using Ctfw.Linux;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Expiry and counters of offloaded flows (`ctfw run --offload established`, docs/OFFLOAD.md) with
/// real TCP stacks at both ends of the lab and rules/ecs-gateway.rules in the gateway: a connection
/// whose data the kernel forwards past ctfw is kept alive by that traffic alone and expires once idle
/// (its elements gone, the entry too); the element counters reach `conntrack -L` and `stats`; and the
/// seed's ECS case (an idle connection expires, a late FIN follows) ends as without offload — rescued
/// with --rescue, stuck in FIN_WAIT_1 without. Socket states are read with `ss -tan` in the namespaces.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class OffloadExpiryLiveTests
{
    private const int TestTimeoutMs = 180_000;

    /// <summary>This class's NFQUEUE number (no other class uses it).</summary>
    private const ushort Queue = 58;

    /// <summary>The only port rules/ecs-gateway.rules lets new connections reach.</summary>
    private const int ServicePort = 8088;

    /// <summary>ctfw's nf_conntrack_tcp_timeout_established here (`--set`), and so the tcp sets' element timeout.</summary>
    private const int EstablishedTimeoutSeconds = 3;

    private static readonly TimeSpan s_establishedTimeout = TimeSpan.FromSeconds(EstablishedTimeoutSeconds);

    /// <summary>
    /// How late past its timeout an idle offloaded flow may still be listed: the manager notices at its
    /// first dump after the timeout (once a second), plus the slack of a loaded machine.
    /// </summary>
    private static readonly TimeSpan s_idleNoticed = TimeSpan.FromSeconds(3);

    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan s_cliTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_ioTimeout = TimeSpan.FromSeconds(5);

    private readonly ITestOutputHelper _output;

    public OffloadExpiryLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    /// <summary>rules/ecs-gateway.rules of this checkout (the build output lives elsewhere when CTFW_ARTIFACTS is set).</summary>
    private static string EcsRules { get; } = File.ReadAllText(FindRules("ecs-gateway.rules"));

    // ---- 1. Kept alive by the kernel's traffic, expired once idle ----------------------------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task KeptAlive_OffloadedConversationLongerThanTimeout_ListedThroughoutThenExpiresOnceIdle()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        using LiveDaemon daemon = Start(lab, "keep", "--set", $"nf_conntrack_tcp_timeout_established={EstablishedTimeoutSeconds}");
        (Socket client, Socket peer, int port, _) = await Connect(lab, server);
        using Socket ownClient = client;
        Task echo = Echo(peer, server.Stopping);

        // A message every 0.5 s for 10 s, each echoed; after every echo the listing. Once the flow is
        // offloaded, ctfw sees none of its packets: only the kernel's refreshes keep it alive past 3 s.
        const int Messages = 20;
        TimeSpan interval = TimeSpan.FromMilliseconds(500);
        var clock = Stopwatch.StartNew();
        TimeSpan offloadedAt = TimeSpan.MinValue;
        long queuedAtOffload = 0;
        int offloadedMessages = 0;
        TimeSpan idleFrom = TimeSpan.Zero; // the last echo came; at most its ACK follows
        for (int i = 1; i <= Messages; i++)
        {
            await DelayUntil(clock, interval * (i - 1));
            string message = $"m {i}\n";
            Assert.Equal(message, await SendAndReceive(client, client, message));
            idleFrom = clock.Elapsed;
            string? line = CtfwTcpLine(daemon.ControlPath, port);
            _output.WriteLine($"{clock.Elapsed.TotalSeconds,5:F2} s  echo {i}; ctfw: {line}");
            Assert.True(line is not null, $"message {i} at {clock.Elapsed.TotalSeconds:F2} s: ctfw no longer lists the flow\n{daemon.Process.StdErr}");
            Assert.Equal("ESTABLISHED", TcpState(line));
            bool offloaded = line.Contains(" [OFFLOAD]", StringComparison.Ordinal);
            if (offloadedAt == TimeSpan.MinValue)
            {
                if (offloaded)
                {
                    offloadedAt = clock.Elapsed;
                    queuedAtOffload = Stats(daemon.ControlPath)["packets"];
                }
                else
                {
                    Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"not offloaded {clock.Elapsed.TotalSeconds:F2} s into the conversation: {line}");
                }
                continue;
            }
            offloadedMessages++;
            Assert.True(offloaded, $"message {i}: the flow is no longer offloaded: {line}");
        }
        Dictionary<string, long> during = Stats(daemon.ControlPath);
        WriteStats("after the conversation", during);
        long queuedWhileOffloaded = during["packets"] - queuedAtOffload;
        _output.WriteLine($"offloaded at {offloadedAt.TotalSeconds:F2} s; {offloadedMessages} messages after that, "
            + $"{queuedWhileOffloaded} packets through the queue meanwhile, offload.packets {during["offload.packets"]}");
        Assert.True(offloadedMessages >= Messages - 6, $"offloaded only for the last {offloadedMessages} messages");
        // The conversation lasted more than three timeouts; all of it after the offload bypassed ctfw.
        Assert.True(idleFrom - offloadedAt > 2 * s_establishedTimeout, $"offloaded for only {(idleFrom - offloadedAt).TotalSeconds:F2} s");
        Assert.Equal(0, queuedWhileOffloaded);
        // Each message and its echo (an ACK may ride along or be delayed): ≥ 2 packets each.
        Assert.True(during["offload.packets"] >= 2 * offloadedMessages, $"offload.packets {during["offload.packets"]} for {offloadedMessages} messages");
        Assert.Equal(1, during["offload.flows"]);
        Assert.Equal(1, during["offload.adds"]);
        Assert.Equal(0, during["offload.expired"]);
        Assert.Equal(0, during["offload.removes"]);
        Assert.Equal(0, during["offload.errors"]);
        Assert.Equal(2, SetElements(lab, daemon, "tcp4").Count);
        TimeSpan kernelExpiry = KernelExpiry(lab, daemon, clock);

        // Idle: gone within the timeout plus the dump interval and slack, not before the timeout.
        (TimeSpan lastListed, TimeSpan goneAt) = await WaitUntilUnlisted(daemon.ControlPath, port, clock, idleFrom + s_establishedTimeout + s_idleNoticed);
        _output.WriteLine($"idle from {idleFrom.TotalSeconds:F2} s (the last echo): last listed {(lastListed - idleFrom).TotalSeconds:F2} s later, "
            + $"gone {(goneAt - idleFrom).TotalSeconds:F2} s later (timeout {EstablishedTimeoutSeconds} s)");
        Assert.True(goneAt - idleFrom >= s_establishedTimeout - TimeSpan.FromMilliseconds(250),
            $"expired {(goneAt - idleFrom).TotalSeconds:F2} s after the last packet, before the {EstablishedTimeoutSeconds} s timeout");
        AssertNotBeforeKernel(lastListed, goneAt, kernelExpiry);
        Dictionary<string, long> after = Stats(daemon.ControlPath);
        WriteStats("after the expiry", after);
        Assert.Empty(SetElements(lab, daemon, "tcp4"));
        Assert.Equal(0, after["offload.flows"]);
        Assert.Equal(1, after["offload.removes"]);
        Assert.True(after["offload.expired"] >= 1, $"offload.expired {after["offload.expired"]}: the idle flow's removal was not counted as an expiry");
        Assert.Equal(0, after["offload.errors"]);

        // Both sockets are still open (ecs-gateway.rules: nobody was told).
        Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Client, "client, idle past the expiry"), port, clientSide: true)).State);
        Assert.False(echo.IsCompleted, "the server's echo loop ended");
        StopAndCheckTableGone(lab, daemon);
    }

    // ---- 2. Counters ------------------------------------------------------------------------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Counters_OffloadedBulkTransfer_CountedInConntrackListingAndStats()
    {
        const long Payload = 50L << 20;
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        using LiveDaemon daemon = Start(lab, "acct", "--set", "nf_conntrack_acct=1");
        (Socket client, Socket peer, int port, _) = await Connect(lab, server);
        using Socket ownClient = client;
        var clock = Stopwatch.StartNew();
        (long small, string? line) = await UntilOffloaded(daemon, client, port);
        (long p0, long b0, long p1, long b1) = Counters(line);
        Dictionary<string, long> before = Stats(daemon.ControlPath);
        long offloadBytesBefore = before["offload.bytes"];

        Task<long> received = Receive(peer, small + Payload);
        await SendBulk(client, Payload);
        using (var io = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            Assert.Equal(small + Payload, await received.WaitAsync(io.Token));
        _output.WriteLine($"{Payload} bytes sent and received in {clock.Elapsed.TotalSeconds:F2} s (the flow still open)");

        // A listing reads the element counters first unless they were read in the last 200 ms (and
        // the manager reads them once a second anyway): listed again until they cover the payload.
        var settle = Stopwatch.StartNew();
        long q0, c0, q1, c1;
        while (true)
        {
            line = CtfwTcpLine(daemon.ControlPath, port);
            Assert.NotNull(line);
            Assert.Contains(" [OFFLOAD]", line, StringComparison.Ordinal);
            (q0, c0, q1, c1) = Counters(line);
            if (c0 - b0 >= Payload || settle.Elapsed > TimeSpan.FromSeconds(3))
                break;
            await Task.Delay(250);
        }
        _output.WriteLine($"ctfw ({settle.Elapsed.TotalSeconds:F2} s after the transfer): {line}");
        Dictionary<string, long> stats = Stats(daemon.ControlPath);
        WriteStats("after the transfer", stats);
        long original = c0 - b0, reply = c1 - b1, offloaded = stats["offload.bytes"] - offloadBytesBefore;
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"during the transfer: original {q0 - p0} packets {original} bytes ({(double)original / Payload:F4} × the payload), "
            + $"reply {q1 - p1} packets {reply} bytes; offload.bytes +{offloaded} ({(double)offloaded / Payload:F4} × the payload), "
            + $"offload.packets {stats["offload.packets"]}"));
        // IP total lengths: the payload plus every segment's headers, not double-counted.
        Assert.InRange(original, Payload, Payload * 6 / 5);
        Assert.InRange(reply, 1, Payload / 10); // ACKs only
        Assert.InRange(offloaded, Payload * 9 / 10, Payload * 6 / 5 + reply);
        Assert.Equal(0, stats["offload.errors"]);
        StopAndCheckTableGone(lab, daemon);
    }

    /// <summary>
    /// The counters of a flow that closes between two of the manager's once-a-second reads: its
    /// elements go on the FIN, and what the kernel forwarded since the last read is read by key just
    /// before (without that read, up to 24 % of a bulk transfer went uncounted).
    /// </summary>
    [Fact(Timeout = TestTimeoutMs)]
    public async Task Counters_FlowClosedRightAfterABulkTransfer_LastPacketsCountedAtRemoval()
    {
        const long Payload = 50L << 20;
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        using LiveDaemon daemon = Start(lab, "acct-close", "--set", "nf_conntrack_acct=1");
        (Socket client, Socket peer, int port, _) = await Connect(lab, server);
        using Socket ownClient = client;
        (long small, string? line) = await UntilOffloaded(daemon, client, port);
        (_, long b0, _, _) = Counters(line);
        long offloadBytesBefore = Stats(daemon.ControlPath)["offload.bytes"];

        Task<long> received = Receive(peer, small + Payload);
        await SendBulk(client, Payload);
        client.Shutdown(SocketShutdown.Send); // FIN at once: the elements go before the next once-a-second read
        using (var io = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            Assert.Equal(small + Payload, await received.WaitAsync(io.Token));

        var settle = Stopwatch.StartNew();
        while (true)
        {
            line = CtfwTcpLine(daemon.ControlPath, port);
            Assert.NotNull(line);
            if (!line.Contains(" [OFFLOAD]", StringComparison.Ordinal))
                break;
            Assert.True(settle.Elapsed < TimeSpan.FromSeconds(3), $"still offloaded 3 s after the FIN: {line}");
            await Task.Delay(50);
        }
        long original = Counters(line).Bytes0 - b0;
        long offloaded = Stats(daemon.ControlPath)["offload.bytes"] - offloadBytesBefore;
        _output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"after the FIN: {line}; original +{original} bytes ({(double)original / Payload:F4} × the payload), offload.bytes +{offloaded}"));
        Assert.InRange(original, Payload, Payload * 6 / 5);
        Assert.InRange(offloaded, Payload * 9 / 10, Payload * 6 / 5);
        StopAndCheckTableGone(lab, daemon);
    }

    /// <summary>A byte every 200 ms until the flow is listed [OFFLOAD] (ESTABLISHED for --offload-delay first); the bytes sent and that listing line.</summary>
    private async Task<(long Sent, string? Line)> UntilOffloaded(LiveDaemon daemon, Socket client, int port)
    {
        long small = 0;
        var clock = Stopwatch.StartNew();
        string? line;
        while (true)
        {
            await client.SendAsync("x"u8.ToArray().AsMemory(), SocketFlags.None);
            small++;
            line = CtfwTcpLine(daemon.ControlPath, port);
            if (line?.Contains(" [OFFLOAD]", StringComparison.Ordinal) == true)
                break;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"not offloaded within 5 s: {line}");
            await Task.Delay(200);
        }
        _output.WriteLine($"offloaded after {small} one-byte sends: {line}");
        return (small, line);
    }

    // ---- 3. The seed's ECS case with offload -------------------------------------------------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EcsCase_OffloadWithRescue_LateFinRescued_BothSocketsCloseNormally()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        using LiveDaemon daemon = Start(lab, "ecs-rescue", "--rescue", "--set", $"nf_conntrack_tcp_timeout_established={EstablishedTimeoutSeconds}");
        EcsRun run = await RunEcsCase(lab, server, daemon);

        Assert.True(run.ServerEnd.IsCompleted, "the server never saw the client's FIN");
        ReadEnd end = await run.ServerEnd;
        Assert.Equal(ReadEnd.Eof, end.Outcome);
        Assert.Equal(EcsData.Length, end.Bytes);
        _output.WriteLine($"server read EOF {(end.At - run.KilledAt).TotalMilliseconds:F0} ms after the kill");
        Assert.All(run.ClientSide, r => Assert.Equal("TIME-WAIT", r.State));
        Assert.Empty(run.ServerSide);

        Dictionary<string, long> stats = await SettledStats(daemon.ControlPath);
        WriteStats("after the teardown", stats);
        Assert.True(stats["rescue.fin"] >= 1, "rescue.fin is 0");
        Assert.Equal(0, stats.GetValueOrDefault("invalid.tcp-invalid-new"));
        Assert.Equal(0, stats.GetValueOrDefault("state.INVALID"));
        Assert.Equal(0, stats["offload.flows"]);

        string? entry = CtfwTcpLine(daemon.ControlPath, run.ClientPort);
        _output.WriteLine("ctfw entry after the teardown: " + entry);
        Assert.NotNull(entry);
        Assert.Contains("[RESCUED]", entry, StringComparison.Ordinal);
        Assert.DoesNotContain("[OFFLOAD]", entry, StringComparison.Ordinal);
        Assert.Equal("TIME_WAIT", TcpState(entry));

        string stderr = StopAndCheckTableGone(lab, daemon);
        Assert.Contains("ctfw: rescued FIN: ESTABLISHED ORIGINAL, tcp ", stderr, StringComparison.Ordinal);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EcsCase_OffloadWithoutRescue_LateFinIsInvalidNew_ClientStuckInFinWait1ServerEstablished()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        using LiveDaemon daemon = Start(lab, "ecs-plain", "--set", $"nf_conntrack_tcp_timeout_established={EstablishedTimeoutSeconds}");
        EcsRun run = await RunEcsCase(lab, server, daemon);

        Dictionary<string, long> stats = await SettledStats(daemon.ControlPath);
        WriteStats("after the kill", stats);
        Assert.True(stats.GetValueOrDefault("invalid.tcp-invalid-new") >= 1, "no tcp-invalid-new: the client's FIN was not classified INVALID");
        Assert.True(stats.GetValueOrDefault("verdict.drop") >= 1, "the INVALID FIN was not dropped");
        Assert.Equal(0, stats.GetValueOrDefault("rescue.fin"));
        string? logged = daemon.Process.StdErr.Split('\n').FirstOrDefault(l =>
            l.Contains("[ecs] FORWARD INVALID: ", StringComparison.Ordinal) && l.Contains($"SPT={run.ClientPort} DPT={ServicePort} ", StringComparison.Ordinal));
        Assert.True(logged is not null, $"no INVALID log line for the client's FIN\n{daemon.Process.StdErr}");
        Assert.Contains(" FIN ", logged, StringComparison.Ordinal);
        _output.WriteLine("ctfw LOG: " + logged);

        // The seed's trap, offload or not: the client retransmits its FIN, the server never hears it.
        Assert.Equal("FIN-WAIT-1", Assert.Single(run.ClientSide).State);
        Assert.Equal("ESTAB", Assert.Single(run.ServerSide).State);
        Assert.False(run.ServerEnd.IsCompleted, "the server's read ended");
        Assert.Null(CtfwTcpLine(daemon.ControlPath, run.ClientPort));
        StopAndCheckTableGone(lab, daemon);
    }

    /// <summary>What the client process writes before it idles (three writes, 0.4 s apart: the later ones offloaded).</summary>
    private const string EcsData = "one\ntwo\nthree\n";

    /// <summary>What the ECS case left ~5 s after the kill.</summary>
    private sealed record EcsRun(int ClientPort, TimeSpan KilledAt, List<SocketRow> ClientSide, List<SocketRow> ServerSide, Task<ReadEnd> ServerEnd);

    /// <summary>
    /// The seed's ECS case with offload: a client process connects and writes a little (so that the
    /// flow is offloaded: a packet ESTABLISHED for --offload-delay), then idles; once ctfw's entry has
    /// expired (the manager's first dump past the timeout) the process is SIGKILLed and its kernel
    /// sends the FIN; 5 s later both namespaces' sockets are read.
    /// </summary>
    private async Task<EcsRun> RunEcsCase(GatewayLab lab, SeedServer server, LiveDaemon daemon)
    {
        var clock = Stopwatch.StartNew();
        Task<Socket> accept = server.AcceptAsync(TimeSpan.FromSeconds(10));
        // The connected fd 3 belongs to the one process the test kills (the sleeps before the last
        // exec are children that end on their own).
        using ChildProcess client = CtfwProcess.StartCommand("nsenter", $"--net={NetworkNamespace.PathOf(lab.Client)}", "--", "bash", "-c",
            $"exec 3<>/dev/tcp/{lab.ServerV4}/{ServicePort} && sleep 0.4 && printf 'one\\n' >&3 && sleep 0.4 && printf 'two\\n' >&3 "
            + "&& sleep 0.4 && printf 'three\\n' >&3 && exec sleep 1000");
        Socket peer;
        try
        {
            peer = await accept;
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"the client process never connected\n{client.StdErr}");
            throw;
        }
        int port = ((IPEndPoint)peer.RemoteEndPoint!).Port;
        Task<ReadEnd> serverEnd = SeedServer.Drain(peer, clock, closeOnEof: true, server.Stopping);
        _output.WriteLine($"connected: client port {port}, at {clock.Elapsed.TotalSeconds:F2} s");

        // Offloaded while it talks (listed [OFFLOAD]; the listing reads the sets first).
        string? line = null;
        await Eventually(() => (line = CtfwTcpLine(daemon.ControlPath, port)) is string l && l.Contains(" [OFFLOAD]", StringComparison.Ordinal),
            TimeSpan.FromSeconds(5), () => $"the flow was never offloaded: {line}");
        _output.WriteLine($"offloaded at {clock.Elapsed.TotalSeconds:F2} s: {line}");
        Assert.Equal("ESTABLISHED", TcpState(line!));
        Assert.True(Stats(daemon.ControlPath)["offload.adds"] >= 1, "offload.adds is 0");

        // The last write done (the process is `sleep` now) and acknowledged; then only the gateway's
        // clock moves. The entry goes at the manager's first dump after the timeout.
        await Eventually(() => Comm(client.Pid) == "sleep" && Flow(Sockets(lab.Client, null), port, clientSide: true) is [{ SendQ: 0 }],
            TimeSpan.FromSeconds(5), () => $"the client process never wrote all its data ({Comm(client.Pid)})");
        TimeSpan idleFrom = clock.Elapsed;
        TimeSpan kernelExpiry = KernelExpiry(lab, daemon, clock);
        (TimeSpan lastListed, TimeSpan goneAt) = await WaitUntilUnlisted(daemon.ControlPath, port, clock, idleFrom + s_establishedTimeout + s_idleNoticed);
        _output.WriteLine($"all data across at {idleFrom.TotalSeconds:F2} s; last listed {lastListed.TotalSeconds:F2} s, gone at {goneAt.TotalSeconds:F2} s");
        AssertNotBeforeKernel(lastListed, goneAt, kernelExpiry);
        Dictionary<string, long> expired = Stats(daemon.ControlPath);
        WriteStats("after the expiry", expired);
        Assert.True(expired["offload.adds"] >= 1, "offload.adds is 0");
        Assert.Equal(0, expired["offload.flows"]);
        Assert.Equal(1, expired["offload.expired"]); // idle, not ended by a packet
        Assert.Empty(SetElements(lab, daemon, "tcp4"));
        Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Client, "client, idle past the expiry"), port, clientSide: true)).State);
        Assert.Equal(0, expired.GetValueOrDefault("state.INVALID"));

        TimeSpan killedAt = clock.Elapsed;
        client.Signal(ChildProcess.SigKill);
        Assert.NotNull(client.WaitForExit(s_ioTimeout));
        _output.WriteLine($"client killed at {killedAt.TotalSeconds:F2} s");

        await Task.Delay(TimeSpan.FromSeconds(5));
        List<SocketRow> clientRows = Flow(Sockets(lab.Client, "client, 5 s after the kill"), port, clientSide: true);
        List<SocketRow> serverRows = Flow(Sockets(lab.Server, "server, 5 s after the kill"), port, clientSide: false);
        return new EcsRun(port, killedAt, clientRows, serverRows, serverEnd);
    }

    /// <summary>The command name of process <paramref name="pid"/> (`bash`, then `sleep` once it exec'd), "" once gone.</summary>
    private static string Comm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    // ---- Sockets --------------------------------------------------------------------------------

    /// <summary>An IPv4 connection from the client namespace to the service port, and the server's end of it.</summary>
    private static async Task<(Socket Client, Socket Peer, int Port, Stopwatch Clock)> Connect(GatewayLab lab, SeedServer server)
    {
        Task<Socket> accept = server.AcceptAsync(TimeSpan.FromSeconds(10));
        Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        try
        {
            using var cts = new CancellationTokenSource(s_ioTimeout);
            await client.ConnectAsync(new IPEndPoint(lab.ServerV4, ServicePort), cts.Token);
            var clock = Stopwatch.StartNew();
            Socket peer = await accept;
            return (client, peer, ((IPEndPoint)client.LocalEndPoint!).Port, clock);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>Echoes everything <paramref name="peer"/> receives until EOF, an error or <paramref name="token"/>.</summary>
    private static Task Echo(Socket peer, CancellationToken token) => Task.Run(async () =>
    {
        byte[] buffer = new byte[4096];
        try
        {
            while (true)
            {
                int n = await peer.ReceiveAsync(buffer, SocketFlags.None, token);
                if (n == 0)
                    return;
                await peer.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, token);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Closed.
        }
    }, CancellationToken.None);

    private static async Task<string> SendAndReceive(Socket from, Socket to, string message)
    {
        using var cts = new CancellationTokenSource(s_ioTimeout);
        CancellationToken token = cts.Token;
        byte[] data = Encoding.ASCII.GetBytes(message);
        await from.SendAsync(data, SocketFlags.None, token);
        byte[] buffer = new byte[data.Length];
        int got = 0;
        try
        {
            while (got < buffer.Length)
            {
                int n = await to.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, token);
                if (n == 0)
                    break;
                got += n;
            }
        }
        catch (OperationCanceledException)
        {
            return $"(timeout after {got} bytes)";
        }
        return Encoding.ASCII.GetString(buffer, 0, got);
    }

    private static async Task SendBulk(Socket socket, long bytes)
    {
        byte[] chunk = new byte[1 << 16];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        for (long left = bytes; left > 0;)
        {
            int n = await socket.SendAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left)), SocketFlags.None, cts.Token);
            left -= n;
        }
    }

    /// <summary>Reads until <paramref name="bytes"/> have come (or EOF, an error): how many came.</summary>
    private static Task<long> Receive(Socket socket, long bytes) => Task.Run(async () =>
    {
        byte[] buffer = new byte[1 << 16];
        long total = 0;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (total < bytes)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                    break;
                total += n;
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            // Reported by the count.
        }
        return total;
    });

    /// <summary>One row of `ss -tanH`.</summary>
    private sealed record SocketRow(string State, int RecvQ, int SendQ, string Local, string Peer)
    {
        public int LocalPort => Port(Local);

        public int PeerPort => Port(Peer);

        private static int Port(string endpoint) =>
            int.TryParse(endpoint.AsSpan(endpoint.LastIndexOf(':') + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int p) ? p : 0;
    }

    /// <summary>`ss -tan` in a namespace, written to the test output when <paramref name="label"/> is given.</summary>
    private List<SocketRow> Sockets(string ns, string? label)
    {
        string text = Tool.RunIn(ns, "ss", "-tanH");
        if (label is not null)
            _output.WriteLine($"[{label}] ss -tan:\n{text.TrimEnd()}");
        var rows = new List<SocketRow>();
        foreach (string line in Lines(text))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(f.Length >= 5, $"not an ss row: '{line}'");
            rows.Add(new SocketRow(f[0], int.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture), f[3], f[4]));
        }
        return rows;
    }

    /// <summary>The rows of the connection from client port <paramref name="port"/> to the service, on the client's or the server's side.</summary>
    private static List<SocketRow> Flow(List<SocketRow> rows, int port, bool clientSide) =>
        clientSide
            ? [.. rows.Where(r => r.LocalPort == port && r.PeerPort == ServicePort)]
            : [.. rows.Where(r => r.LocalPort == ServicePort && r.PeerPort == port)];

    // ---- ctfw -------------------------------------------------------------------------------------

    private static LiveDaemon Start(GatewayLab lab, string name, params string[] extra) =>
        new(lab, "offload-" + name, EcsRules, Queue, ["--offload", "established", .. extra]);

    /// <summary>SIGTERM, exit 0, and the offload table gone from the gateway; the exit report (stderr), written to the test output.</summary>
    private string StopAndCheckTableGone(GatewayLab lab, LiveDaemon daemon)
    {
        ChildProcess ctfw = daemon.Process;
        ctfw.Signal(ChildProcess.SigTerm);
        int? exit = ctfw.WaitForExit(s_stopTimeout);
        string stderr = ctfw.StdErr;
        _output.WriteLine("ctfw stderr:\n" + stderr);
        Assert.True(exit == 0, $"ctfw exit {exit?.ToString(CultureInfo.InvariantCulture) ?? "none"}\n{stderr}");
        Assert.DoesNotContain($"ctfw-{ctfw.Pid}", Tool.RunIn(lab.Gateway, "nft", "list", "tables"), StringComparison.Ordinal);
        return stderr;
    }

    private static ToolResult Ctfw(params string[] args)
    {
        ToolResult r = CtfwProcess.Run(s_cliTimeout, args);
        Assert.True(r.ExitCode == 0, $"ctfw {string.Join(' ', args)}: {r}");
        return r;
    }

    /// <summary>ctfw's entry for the TCP flow from client port <paramref name="port"/> to the service, or null.</summary>
    private static string? CtfwTcpLine(string control, int port) =>
        Lines(Ctfw("conntrack", "-L", "--control", control, "-p", "tcp").StdOut)
            .SingleOrDefault(l => l.Contains($"sport={port} dport={ServicePort} ", StringComparison.Ordinal));

    /// <summary>
    /// Lists the flow until it is gone; fails if a listing that began at <paramref name="latest"/> on
    /// <paramref name="clock"/> or later still shows it. Returns when the last listing that showed it
    /// began and when the first that did not ended (the listing itself runs in between).
    /// </summary>
    private async Task<(TimeSpan LastListed, TimeSpan GoneAt)> WaitUntilUnlisted(string control, int port, Stopwatch clock, TimeSpan latest)
    {
        TimeSpan lastListed = TimeSpan.Zero;
        var polls = new StringBuilder();
        while (true)
        {
            TimeSpan at = clock.Elapsed;
            string? line = CtfwTcpLine(control, port);
            TimeSpan answered = clock.Elapsed; // the listing ran in between (most of the time is the CLI's start)
            polls.Append(CultureInfo.InvariantCulture, $" {at.TotalSeconds:F2}-{answered.TotalSeconds:F2}:{(line is null ? "gone" : TimeoutColumn().Match(line).Groups["left"].Value + "s")}");
            if (line is null)
            {
                _output.WriteLine("listings (test clock s, from-to: seconds left):" + polls);
                return (lastListed, answered);
            }
            Assert.True(at < latest, $"still listed at {at.TotalSeconds:F2} s (limit {latest.TotalSeconds:F2} s): {line}");
            Assert.Equal("ESTABLISHED", TcpState(line));
            lastListed = at;
            await Task.Delay(100);
        }
    }

    /// <summary>The elements of one of the daemon's offload sets (`nft list set` in the gateway), one string each.</summary>
    private List<string> SetElements(GatewayLab lab, LiveDaemon daemon, string set)
    {
        string text = Tool.RunIn(lab.Gateway, "nft", "list", "set", "inet", $"ctfw-{daemon.Process.Pid}", set);
        _output.WriteLine($"nft list set {set}:\n{text.TrimEnd()}");
        Match m = SetElementsBlock().Match(text);
        if (!m.Success)
            return [];
        return [.. m.Groups["elements"].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
    }

    /// <summary>
    /// When (on <paramref name="clock"/>) the later of the flow's two tcp4 elements times out in the
    /// kernel unless refreshed: `nft list set`'s "expires" plus the time before the listing (a lower bound).
    /// </summary>
    private TimeSpan KernelExpiry(GatewayLab lab, LiveDaemon daemon, Stopwatch clock)
    {
        TimeSpan before = clock.Elapsed;
        string text = Tool.RunIn(lab.Gateway, "nft", "list", "set", "inet", $"ctfw-{daemon.Process.Pid}", "tcp4");
        TimeSpan left = TimeSpan.Zero;
        foreach (Match m in ElementExpires().Matches(text))
        {
            TimeSpan e = TimeSpan.FromSeconds(m.Groups["s"].Success ? int.Parse(m.Groups["s"].Value, CultureInfo.InvariantCulture) : 0)
                + TimeSpan.FromMilliseconds(m.Groups["ms"].Success ? int.Parse(m.Groups["ms"].Value, CultureInfo.InvariantCulture) : 0);
            left = e > left ? e : left;
        }
        Assert.True(left > TimeSpan.Zero, $"no element with a time left in the tcp4 set:\n{text}");
        _output.WriteLine($"tcp4 elements at {before.TotalSeconds:F2} s expire in {left.TotalSeconds:F3} s: at {(before + left).TotalSeconds:F2} s");
        return before + left;
    }

    /// <summary>ctfw must not forget an offloaded flow while the kernel still forwards it: listed until its elements' time is up.</summary>
    private static void AssertNotBeforeKernel(TimeSpan lastListed, TimeSpan goneAt, TimeSpan kernelExpiry) =>
        Assert.True(goneAt >= kernelExpiry - TimeSpan.FromMilliseconds(100),
            $"the flow left ctfw's listing at {goneAt.TotalSeconds:F2} s (last listed {lastListed.TotalSeconds:F2} s), before its elements' time was up at {kernelExpiry.TotalSeconds:F2} s");

    /// <summary>A listing line's packets= bytes= of the original and the reply direction (nf_conntrack_acct=1).</summary>
    private static (long Packets0, long Bytes0, long Packets1, long Bytes1) Counters(string? line)
    {
        Match m = AccountingColumns().Match(line ?? "");
        Assert.True(m.Success, $"no packets= bytes= in both directions: '{line}'");
        return (long.Parse(m.Groups["p0"].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups["b0"].Value, CultureInfo.InvariantCulture),
            long.Parse(m.Groups["p1"].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups["b1"].Value, CultureInfo.InvariantCulture));
    }

    /// <summary>`ctfw stats --raw` once the packet counter has stopped moving.</summary>
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
        var stats = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in Lines(Ctfw("stats", "--raw", "--control", control).StdOut))
        {
            string[] parts = line.Split(' ');
            Assert.True(parts.Length == 2, $"not a `name value` line: '{line}'");
            stats[parts[0]] = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        return stats;
    }

    private void WriteStats(string label, Dictionary<string, long> stats) =>
        _output.WriteLine($"ctfw stats --raw ({label}, selected):\n" + string.Join('\n', stats
            .Where(kv => kv.Key == "packets" || kv.Key.Split('.')[0] is "state" or "verdict" or "invalid" or "rescue" or "offload")
            .Select(kv => $"  {kv.Key} {kv.Value}")));

    private static string TcpState(string conntrackLine)
    {
        Match m = TcpStateColumn().Match(conntrackLine);
        Assert.True(m.Success, $"not a TCP conntrack line: '{conntrackLine}'");
        return m.Groups["state"].Value;
    }

    /// <summary>Waits until <paramref name="clock"/> reads <paramref name="at"/> (at once if it already does).</summary>
    private static Task DelayUntil(Stopwatch clock, TimeSpan at)
    {
        TimeSpan left = at - clock.Elapsed;
        return left > TimeSpan.Zero ? Task.Delay(left) : Task.CompletedTask;
    }

    private static async Task Eventually(Func<bool> condition, TimeSpan timeout, Func<string> failure)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, failure());
            await Task.Delay(100);
        }
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string FindRules(string name, [CallerFilePath] string sourceFile = "")
    {
        for (DirectoryInfo? dir = new FileInfo(sourceFile).Directory; dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "rules", name);
            if (File.Exists(candidate))
                return candidate;
        }
        throw new InvalidOperationException($"no rules/{name} above {sourceFile}");
    }

    [GeneratedRegex(@"^tcp\s+6\s+\d+\s+(?<state>[A-Z_0-9]+)\s+src=")]
    private static partial Regex TcpStateColumn();

    [GeneratedRegex(@"^tcp\s+6\s+(?<left>\d+)\s")]
    private static partial Regex TimeoutColumn();

    [GeneratedRegex(@" dport=\d+ packets=(?<p0>\d+) bytes=(?<b0>\d+) .* dport=\d+ packets=(?<p1>\d+) bytes=(?<b1>\d+) ")]
    private static partial Regex AccountingColumns();

    [GeneratedRegex(@" expires (?:(?<s>\d+)s)?(?:(?<ms>\d+)ms)?")]
    private static partial Regex ElementExpires();

    [GeneratedRegex(@"elements = \{(?<elements>[^}]*)\}")]
    private static partial Regex SetElementsBlock();
}
