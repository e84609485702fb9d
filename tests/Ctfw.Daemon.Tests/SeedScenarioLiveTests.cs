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
/// The seeds' scenarios (shared/seeds: 000/001 the ECS case, 003 zero-window FIN_WAIT1, 004
/// half-closed) with real TCP stacks at both ends of the lab and rules/ecs-gateway.rules in the
/// gateway: the kernel alone reproduces the stuck FIN_WAIT_1, ctfw without --rescue reproduces it
/// too, ctfw with --rescue lets the teardown finish; --reset-on-expiry resets idle sockets the
/// gateway forgot; `ctfw conntrack -L --half-closed` / `--stalled` find seeds 004 and 003. Socket
/// states are read with `ss -tan` inside the namespaces and written to the test output.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class SeedScenarioLiveTests
{
    private const int TestTimeoutMs = 180_000;

    /// <summary>The only port rules/ecs-gateway.rules lets new connections reach.</summary>
    private const int ServicePort = 8088;

    /// <summary>nf_conntrack_tcp_timeout_established in the gateway for the expiry scenarios (the seed's 20 s, shortened).</summary>
    private const int EstablishedTimeoutSeconds = 2;

    /// <summary>`ctfw conntrack --stalled`'s threshold without --stalled-after, which stats' stalled.flows uses too.</summary>
    private const int DefaultStalledAfterSeconds = 10;

    private static readonly TimeSpan s_establishedTimeout = TimeSpan.FromSeconds(EstablishedTimeoutSeconds);
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_stopTimeout = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan s_cliTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_ioTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How late after the deadline the housekeeper may notice an expiry: a deadline shortened by a
    /// packet is found at the latest when the wheel re-arms the entry (its 8.192 s horizon), plus slack.
    /// </summary>
    private static readonly TimeSpan s_expiryNoticed = TimeSpan.FromSeconds(8.2 + 2);

    private readonly ITestOutputHelper _output;

    public SeedScenarioLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    /// <summary>rules/ecs-gateway.rules of this checkout (the build output lives elsewhere when CTFW_ARTIFACTS is set).</summary>
    private static string EcsRules { get; } = FindRules("ecs-gateway.rules");

    // ---- 1. The ECS case: a process killed after its connection's entry expired -----------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EcsCase_KernelConntrackOnly_LateFinIsInvalid_ClientStuckInFinWait1ServerEstablished()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        SetEstablishedTimeout(lab);
        Tool.RunIn(lab.Gateway, "iptables-restore", EcsRules);

        EcsRun run = await RunEcsCase(lab, server, port => KernelTcpLine(lab, port), () => KernelInvalidLogged(lab));

        Assert.Equal(0, run.InvalidBeforeKill);
        long invalid = KernelInvalidLogged(lab);
        _output.WriteLine($"kernel: packets through the INVALID LOG rule after the kill: {invalid}");
        Assert.True(invalid >= 1, "the client's FIN never reached the INVALID LOG rule");
        AssertStuck(run);
        // The dropped FIN created no entry (tcp_new refuses a FIN: INVALID, not NEW).
        Assert.Null(KernelTcpLine(lab, run.ClientPort));
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EcsCase_CtfwWithoutRescue_LateFinIsInvalidNew_ClientStuckInFinWait1ServerEstablished()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        SetEstablishedTimeout(lab);
        string control = ControlPath();
        try
        {
            using ChildProcess ctfw = StartCtfw(lab, 40, control);
            EcsRun run = await RunEcsCase(lab, server, port => CtfwTcpLine(control, port), () => Stats(control).GetValueOrDefault("state.INVALID"));

            Assert.Equal(0, run.InvalidBeforeKill);
            Dictionary<string, long> stats = await SettledStats(control);
            WriteStats(stats);
            Assert.True(stats.GetValueOrDefault("invalid.tcp-invalid-new") >= 1, "no tcp-invalid-new: the client's FIN was not classified INVALID as the kernel does");
            Assert.True(stats.GetValueOrDefault("state.INVALID") >= 1, "state.INVALID is 0");
            Assert.True(stats.GetValueOrDefault("verdict.drop") >= 1, "the INVALID FIN was not dropped");
            Assert.Equal(0, stats.GetValueOrDefault("rescue.fin"));
            AssertProfilingStats(stats);
            // ctfw ran the rules' LOG target on that FIN, as the kernel does.
            string? logged = ctfw.StdErr.Split('\n').FirstOrDefault(l =>
                l.Contains("[ecs] FORWARD INVALID: ", StringComparison.Ordinal) && l.Contains($"SPT={run.ClientPort} DPT={ServicePort} ", StringComparison.Ordinal));
            Assert.True(logged is not null, $"no INVALID log line for the client's FIN\n{ctfw.StdErr}");
            _output.WriteLine("ctfw LOG: " + logged);
            Assert.Contains(" FIN ", logged, StringComparison.Ordinal);
            AssertStuck(run);
            Assert.Null(CtfwTcpLine(control, run.ClientPort));

            StopCtfw(ctfw);
        }
        finally
        {
            File.Delete(control);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EcsCase_CtfwWithRescue_LateFinRescued_BothSocketsCloseNormally()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        SetEstablishedTimeout(lab);
        string control = ControlPath();
        try
        {
            using ChildProcess ctfw = StartCtfw(lab, 41, control, "--rescue");
            EcsRun run = await RunEcsCase(lab, server, port => CtfwTcpLine(control, port), () => Stats(control).GetValueOrDefault("state.INVALID"));

            Assert.Equal(0, run.InvalidBeforeKill);
            // The FIN reached the server (EOF), which closed; its FIN and the client's last ACK passed too.
            Assert.True(run.ServerEnd.IsCompleted, "the server never saw the client's FIN");
            ReadEnd end = await run.ServerEnd;
            Assert.Equal(ReadEnd.Eof, end.Outcome);
            _output.WriteLine($"server read EOF {(end.At - run.KilledAt).TotalMilliseconds:F0} ms after the kill");
            Assert.All(run.ClientSide, r => Assert.Equal("TIME-WAIT", r.State));
            Assert.Empty(run.ServerSide);

            Dictionary<string, long> stats = await SettledStats(control);
            WriteStats(stats);
            Assert.True(stats.GetValueOrDefault("rescue.fin") >= 1, "rescue.fin is 0");
            // The FIN is rescued either from a tombstone or, when it arrives before the housekeeper has
            // removed the expired entry, in place (no tombstone stored): both count as rescue.fin.
            Assert.Equal(0, stats.GetValueOrDefault("invalid.tcp-invalid-new"));
            Assert.Equal(0, stats.GetValueOrDefault("state.INVALID"));

            // The entry came back, marked, and followed the teardown to its end.
            string? entry = CtfwTcpLine(control, run.ClientPort);
            _output.WriteLine("ctfw entry after the teardown: " + entry);
            Assert.NotNull(entry);
            Assert.Contains("[RESCUED]", entry, StringComparison.Ordinal);
            Assert.Equal("TIME_WAIT", TcpState(entry));

            string stderr = StopCtfw(ctfw);
            Assert.Contains("ctfw: rescue (", stderr, StringComparison.Ordinal);
            Assert.Contains("ctfw: rescued FIN: ESTABLISHED ORIGINAL, tcp ", stderr, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(control);
        }
    }

    // ---- 2. Reset on expiry ---------------------------------------------------------------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task ResetOnExpiry_IdleEstablishedFlowExpires_GatewayResetsBothSockets()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        SetEstablishedTimeout(lab);
        string control = ControlPath();
        Socket? client = null;
        try
        {
            using ChildProcess ctfw = StartCtfw(lab, 42, control, "--reset-on-expiry");
            (client, Socket peer, int port, Stopwatch clock) = await ConnectIdle(lab, server);
            Task<ReadEnd> clientEnd = SeedServer.Drain(client, clock, closeOnEof: false, server.Stopping);
            Task<ReadEnd> serverEnd = SeedServer.Drain(peer, clock, closeOnEof: false, server.Stopping);

            // Nobody sends: the entry expires EstablishedTimeout after the handshake's ACK, and the
            // resets must follow once the housekeeper notices (s_expiryNoticed).
            TimeSpan deadline = s_establishedTimeout + s_expiryNoticed;
            await Task.WhenAny(Task.WhenAll(clientEnd, serverEnd), DelayUntil(clock, deadline + TimeSpan.FromMilliseconds(200)));
            List<SocketRow> clientRows = Flow(Sockets(lab.Client, "client, after the expiry"), port, clientSide: true);
            List<SocketRow> serverRows = Flow(Sockets(lab.Server, "server, after the expiry"), port, clientSide: false);
            Assert.True(clientEnd.IsCompleted, $"the client's socket was not reset within {deadline.TotalSeconds} s of the handshake\n{ctfw.StdErr}");
            Assert.True(serverEnd.IsCompleted, $"the server's socket was not reset within {deadline.TotalSeconds} s of the handshake\n{ctfw.StdErr}");
            ReadEnd c = await clientEnd, s = await serverEnd;
            _output.WriteLine($"client read ended {c.Outcome} at {c.At.TotalSeconds:F2} s, server read ended {s.Outcome} at {s.At.TotalSeconds:F2} s after the handshake");
            Assert.Equal(nameof(SocketError.ConnectionReset), c.Outcome);
            Assert.Equal(nameof(SocketError.ConnectionReset), s.Outcome);
            // Not before the entry expired (the wheel may round up, never down).
            TimeSpan earliest = s_establishedTimeout - TimeSpan.FromMilliseconds(100);
            Assert.True(c.At >= earliest && s.At >= earliest, $"reset before the entry could have expired: client {c.At}, server {s.At}");
            Assert.Empty(clientRows);
            Assert.Empty(serverRows);

            Dictionary<string, long> stats = await SettledStats(control);
            WriteStats(stats);
            Assert.True(stats.GetValueOrDefault("reset.flows") >= 1, "reset.flows is 0");
            Assert.True(stats.GetValueOrDefault("reset.sent") >= 2, $"reset.sent {stats.GetValueOrDefault("reset.sent")}: one RST per endpoint expected");
            Assert.Equal(0, stats.GetValueOrDefault("reset.send_errors"));

            string stderr = StopCtfw(ctfw);
            Assert.Contains("ctfw: reset on expiry: ", stderr, StringComparison.Ordinal);
        }
        finally
        {
            client?.Dispose();
            File.Delete(control);
        }
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task ResetOnExpiry_FlagOff_IdleFlowExpiresButBothSocketsStayEstablished()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        SetEstablishedTimeout(lab);
        string control = ControlPath();
        Socket? client = null;
        try
        {
            using ChildProcess ctfw = StartCtfw(lab, 43, control);
            (client, Socket peer, int port, Stopwatch clock) = await ConnectIdle(lab, server);
            Task<ReadEnd> clientEnd = SeedServer.Drain(client, clock, closeOnEof: false, server.Stopping);
            Task<ReadEnd> serverEnd = SeedServer.Drain(peer, clock, closeOnEof: false, server.Stopping);
            Assert.NotNull(CtfwTcpLine(control, port));

            // The same idle time the reset test allows.
            await DelayUntil(clock, s_establishedTimeout + s_expiryNoticed + TimeSpan.FromMilliseconds(200));
            Assert.Null(CtfwTcpLine(control, port)); // the entry did expire
            Assert.False(clientEnd.IsCompleted, $"client read ended: {Ended(clientEnd)}");
            Assert.False(serverEnd.IsCompleted, $"server read ended: {Ended(serverEnd)}");
            Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Client, "client, idle past the expiry"), port, clientSide: true)).State);
            Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Server, "server, idle past the expiry"), port, clientSide: false)).State);

            Dictionary<string, long> stats = await SettledStats(control);
            WriteStats(stats);
            Assert.Equal(0, stats.GetValueOrDefault("reset.flows"));
            Assert.Equal(0, stats.GetValueOrDefault("reset.sent"));
            StopCtfw(ctfw);
        }
        finally
        {
            client?.Dispose();
            File.Delete(control);
        }
    }

    // ---- 3. Half-closed (seed 004) --------------------------------------------------------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task HalfClosed_ClientShutsDownWrite_ListedAsKernelStateWithFinOriginalAndGrowingAge()
    {
        using var lab = new GatewayLab();
        using SeedServer server = SeedServer.Listen(lab, ServicePort);
        // A rule that only counts makes the gateway's kernel conntrack track the same flows: the
        // oracle for the state column.
        Tool.RunIn(lab.Gateway, "iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID");
        string control = ControlPath();
        Socket? halfCloser = null, idle = null;
        try
        {
            using ChildProcess ctfw = StartCtfw(lab, 44, control);
            (halfCloser, Socket halfPeer, int port, Stopwatch clock) = await ConnectIdle(lab, server);
            (idle, _, int idlePort, _) = await ConnectIdle(lab, server);

            halfCloser.Shutdown(SocketShutdown.Send);
            ReadEnd eof;
            using (var io = new CancellationTokenSource(s_ioTimeout))
                eof = await SeedServer.Drain(halfPeer, clock, closeOnEof: false, io.Token);
            Assert.Equal(ReadEnd.Eof, eof.Outcome);
            // The server keeps its half open and still talks; the client still hears it.
            Assert.Equal("half-1", await SendAndReceive(halfPeer, halfCloser, "half-1"));
            Assert.Equal("FIN-WAIT-2", Assert.Single(Flow(Sockets(lab.Client, "client, half-closed"), port, clientSide: true)).State);
            Assert.Equal("CLOSE-WAIT", Assert.Single(Flow(Sockets(lab.Server, "server, half-closed"), port, clientSide: false)).State);
            Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Client, "client, idle connection"), idlePort, clientSide: true)).State);

            (string state, int age, string fin) first = HalfClosedEntry(control, port, idlePort);
            string? kernel = KernelTcpLine(lab, port);
            string? plain = CtfwTcpLine(control, port);
            _output.WriteLine($"kernel: {kernel}\nctfw -L: {plain}");
            Assert.NotNull(kernel);
            Assert.NotNull(plain);
            Assert.Equal("CLOSE_WAIT", TcpState(kernel));
            Assert.Equal(TcpState(kernel), first.state);
            Assert.Equal(TcpState(plain), first.state);
            Assert.Equal("original", first.fin);

            // More data from the server does not make the flow any less half-closed, nor younger.
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            Assert.Equal("half-2", await SendAndReceive(halfPeer, halfCloser, "half-2"));
            (string state, int age, string fin) second = HalfClosedEntry(control, port, idlePort);
            _output.WriteLine($"half-closed age {first.age} s, then {second.age} s ≥ 2.5 s later");
            Assert.True(second.age >= first.age + 2, $"half-closed age went {first.age} → {second.age} over 2.5 s");
            Assert.Equal(TcpState(KernelTcpLine(lab, port)!), second.state);
            Assert.Equal("original", second.fin);

            Dictionary<string, long> stats = await SettledStats(control);
            WriteStats(stats);
            Assert.True(stats.GetValueOrDefault("halfclosed.flows") >= 1, "halfclosed.flows is 0");
            StopCtfw(ctfw);
        }
        finally
        {
            halfCloser?.Dispose();
            idle?.Dispose();
            File.Delete(control);
        }
    }

    // ---- 4. Stalled: zero window then close (seed 003) ------------------------------------------

    [Fact(Timeout = TestTimeoutMs)]
    public async Task Stalled_ReceiverStopsReadingSenderCloses_ListedWithReplyZeroWindowOnlyPastThreshold()
    {
        using var lab = new GatewayLab();
        // The seed's "sysctl -w net.ipv4.tcp_rmem=16 32 32", per socket: a tiny receive buffer
        // that a server which never reads fills at once.
        using SeedServer server = SeedServer.Listen(lab, ServicePort, receiveBuffer: 4096);
        string control = ControlPath();
        Socket? sender = null, idle = null;
        try
        {
            using ChildProcess ctfw = StartCtfw(lab, 45, control);
            (sender, Socket stalledPeer, int port, _) = await ConnectIdle(lab, server);
            (idle, _, int idlePort, _) = await ConnectIdle(lab, server);
            _output.WriteLine($"server SO_RCVBUF {stalledPeer.ReceiveBufferSize}");

            long written = FillUntilBlocked(sender);
            _output.WriteLine($"the client wrote {written} bytes before its send buffer stayed full");
            sender.Dispose(); // close(): FIN_WAIT1 with the data and the FIN still queued
            sender = null;
            var closed = Stopwatch.StartNew();

            List<SocketRow> clientRows = Flow(Sockets(lab.Client, "client, after close"), port, clientSide: true);
            List<SocketRow> serverRows = Flow(Sockets(lab.Server, "server, not reading"), port, clientSide: false);
            SocketRow clientRow = Assert.Single(clientRows);
            SocketRow serverRow = Assert.Single(serverRows);
            Assert.Equal("FIN-WAIT-1", clientRow.State);
            Assert.True(clientRow.SendQ > 0, "the client's send queue is empty");
            Assert.Equal("ESTAB", serverRow.State);
            Assert.True(serverRow.RecvQ > 0, "the server's receive queue is empty");

            // Zero-window probes keep the flow alive; wait until the window has been zero for > 2 s.
            await DelayUntil(closed, TimeSpan.FromSeconds(3));
            ToolResult stalled = Ctfw("conntrack", "-L", "--control", control, "--stalled", "--stalled-after", "2");
            _output.WriteLine("ctfw conntrack -L --stalled --stalled-after 2:\n" + stalled.StdOut);
            string line = Assert.Single(Lines(stalled.StdOut), l => l.Contains($"sport={port} dport={ServicePort} ", StringComparison.Ordinal));
            Assert.DoesNotContain(Lines(stalled.StdOut), l => l.Contains($"sport={idlePort} dport={ServicePort} ", StringComparison.Ordinal));
            Match m = StalledSuffix().Match(line);
            Assert.True(m.Success, $"no ' zero-window=SIDE:Ns fin=WHO' at the end of '{line}'");
            Assert.Equal("reply", m.Groups["side"].Value); // the server is the reply side
            Assert.True(int.Parse(m.Groups["age"].Value, CultureInfo.InvariantCulture) >= 2, line);
            // The FIN is queued behind data the zero window holds back: the gateway has seen none.
            Assert.Equal("none", m.Groups["fin"].Value);
            Assert.Equal("ESTABLISHED", TcpState(line));

            ToolResult patient = Ctfw("conntrack", "-L", "--control", control, "--stalled", "--stalled-after", "60");
            _output.WriteLine("ctfw conntrack -L --stalled --stalled-after 60:\n" + patient.StdOut);
            Assert.DoesNotContain(Lines(patient.StdOut), l => l.Contains($"sport={port} dport={ServicePort} ", StringComparison.Ordinal));

            // stalled.flows counts what `--stalled` lists at its default threshold (10 s): not yet…
            int zeroWindowAge = int.Parse(m.Groups["age"].Value, CultureInfo.InvariantCulture);
            var sinceListing = Stopwatch.StartNew();
            Assert.True(zeroWindowAge < DefaultStalledAfterSeconds - 1, $"zero window already {zeroWindowAge} s old");
            Assert.DoesNotContain(Lines(Ctfw("conntrack", "-L", "--control", control, "--stalled").StdOut),
                l => l.Contains($"sport={port} dport={ServicePort} ", StringComparison.Ordinal));
            Dictionary<string, long> early = Stats(control);
            WriteStats(early);
            Assert.Equal(0, early.GetValueOrDefault("stalled.flows"));

            // …but once the window has been zero for longer than that, both count the flow.
            await DelayUntil(sinceListing, TimeSpan.FromSeconds(DefaultStalledAfterSeconds + 1.5 - zeroWindowAge));
            ToolResult late = Ctfw("conntrack", "-L", "--control", control, "--stalled");
            _output.WriteLine($"ctfw conntrack -L --stalled ({sinceListing.Elapsed.TotalSeconds:F1} s later):\n" + late.StdOut);
            Assert.Contains(Lines(late.StdOut), l => l.Contains($"sport={port} dport={ServicePort} ", StringComparison.Ordinal) && StalledSuffix().Match(l).Groups["side"].Value == "reply");
            Assert.Equal("FIN-WAIT-1", Assert.Single(Flow(Sockets(lab.Client, "client, still probing"), port, clientSide: true)).State);
            Dictionary<string, long> stats = await SettledStats(control);
            WriteStats(stats);
            Assert.True(stats.GetValueOrDefault("stalled.flows") >= 1, "stalled.flows is 0");
            StopCtfw(ctfw);
        }
        finally
        {
            sender?.Dispose();
            idle?.Dispose();
            File.Delete(control);
        }
    }

    // ---- The ECS run shared by the three variants -----------------------------------------------

    /// <summary>What the ECS case left ~5 s after the kill.</summary>
    private sealed record EcsRun(int ClientPort, TimeSpan KilledAt, long InvalidBeforeKill,
        List<SocketRow> ClientSide, List<SocketRow> ServerSide, Task<ReadEnd> ServerEnd);

    /// <summary>
    /// A client process connects to the server (which reads to EOF, then closes), idles past the
    /// entry's timeout, and is SIGKILLed; 5 s later both namespaces' sockets are read.
    /// <paramref name="trackedLine"/> gives the gateway table's entry for a client port (or null);
    /// <paramref name="invalidSoFar"/> how many INVALID packets the gateway has seen.
    /// </summary>
    private async Task<EcsRun> RunEcsCase(GatewayLab lab, SeedServer server, Func<int, string?> trackedLine, Func<long> invalidSoFar)
    {
        var clock = Stopwatch.StartNew();
        Task<Socket> accept = server.AcceptAsync(TimeSpan.FromSeconds(10));
        // exec twice: the connected fd 3 belongs to the one process the test kills (a bash that
        // forked sleep would leave the socket open in the child).
        using ChildProcess client = CtfwProcess.StartCommand("nsenter", $"--net={NetworkNamespace.PathOf(lab.Client)}", "--",
            "bash", "-c", $"exec 3<>/dev/tcp/{lab.ServerV4}/{ServicePort} && exec sleep 1000");
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

        string? tracked = null;
        await Eventually(() => (tracked = trackedLine(port)) is string l && TcpState(l) == "ESTABLISHED", "the gateway never tracked the connection as ESTABLISHED");
        _output.WriteLine($"gateway entry at {clock.Elapsed.TotalSeconds:F2} s: {tracked}");
        Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Client, "client, connected"), port, clientSide: true)).State);
        Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Server, "server, connected"), port, clientSide: false)).State);

        // Idle past the timeout: only the gateway's clock moves.
        await Task.Delay(s_establishedTimeout + TimeSpan.FromSeconds(1));
        Assert.Null(trackedLine(port));
        Assert.Equal("ESTAB", Assert.Single(Flow(Sockets(lab.Client, "client, idle past the expiry"), port, clientSide: true)).State);
        long invalidBefore = invalidSoFar();

        TimeSpan killedAt = clock.Elapsed;
        client.Signal(ChildProcess.SigKill);
        Assert.NotNull(client.WaitForExit(s_ioTimeout));
        _output.WriteLine($"client killed at {killedAt.TotalSeconds:F2} s");

        await Task.Delay(TimeSpan.FromSeconds(5));
        List<SocketRow> clientRows = Flow(Sockets(lab.Client, "client, 5 s after the kill"), port, clientSide: true);
        List<SocketRow> serverRows = Flow(Sockets(lab.Server, "server, 5 s after the kill"), port, clientSide: false);
        return new EcsRun(port, killedAt, invalidBefore, clientRows, serverRows, serverEnd);
    }

    /// <summary>The seed's symptom: the killed client's socket retransmits its FIN in FIN_WAIT_1, the server never hears it.</summary>
    private static void AssertStuck(EcsRun run)
    {
        Assert.Equal("FIN-WAIT-1", Assert.Single(run.ClientSide).State);
        Assert.Equal("ESTAB", Assert.Single(run.ServerSide).State);
        Assert.False(run.ServerEnd.IsCompleted, $"the server's read ended: {Ended(run.ServerEnd)}");
    }

    /// <summary>A finished read's end for a failure message; the task has completed (no blocking).</summary>
    private static string Ended(Task<ReadEnd> read) =>
        read.IsCompletedSuccessfully ? read.GetAwaiter().GetResult().ToString() : read.Status.ToString();

    // ---- Sockets --------------------------------------------------------------------------------

    /// <summary>
    /// An IPv4 connection from the client namespace to the service port, and the server's end of
    /// it; the clock starts when connect() returned (the handshake's last ACK leaves right then).
    /// </summary>
    private static async Task<(Socket Client, Socket Peer, int Port, Stopwatch Clock)> ConnectIdle(GatewayLab lab, SeedServer server)
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

    private static async Task<string> SendAndReceive(Socket from, Socket to, string message)
    {
        using var cts = new CancellationTokenSource(s_ioTimeout);
        CancellationToken token = cts.Token;
        byte[] data = Encoding.ASCII.GetBytes(message);
        await from.SendAsync(data, SocketFlags.None, token);
        byte[] buffer = new byte[data.Length];
        int got = 0;
        while (got < buffer.Length)
        {
            int n = await to.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, token);
            if (n == 0)
                break;
            got += n;
        }
        return Encoding.ASCII.GetString(buffer, 0, got);
    }

    /// <summary>
    /// Non-blocking writes until the send buffer has stayed full for a second (the receiver's
    /// window is closed and the sender's buffer cannot grow); the bytes accepted.
    /// </summary>
    private static long FillUntilBlocked(Socket socket)
    {
        socket.Blocking = false;
        byte[] chunk = new byte[65536];
        long total = 0;
        var clock = Stopwatch.StartNew();
        var blockedSince = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            int n = socket.Send(chunk, 0, chunk.Length, SocketFlags.None, out SocketError error);
            if (error == SocketError.Success && n > 0)
            {
                total += n;
                blockedSince.Restart();
                continue;
            }
            Assert.True(error == SocketError.WouldBlock, $"send failed: {error}");
            if (blockedSince.Elapsed > TimeSpan.FromSeconds(1))
                return total;
            Thread.Sleep(50);
        }
        Assert.Fail($"the send buffer never stayed full ({total} bytes written in 20 s)");
        return total;
    }

    /// <summary>One row of `ss -tanH`.</summary>
    private sealed record SocketRow(string State, int RecvQ, int SendQ, string Local, string Peer)
    {
        public int LocalPort => Port(Local);

        public int PeerPort => Port(Peer);

        private static int Port(string endpoint) =>
            int.TryParse(endpoint.AsSpan(endpoint.LastIndexOf(':') + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int p) ? p : 0;
    }

    /// <summary>`ss -tan` in a namespace, written to the test output.</summary>
    private List<SocketRow> Sockets(string ns, string label)
    {
        string text = Tool.RunIn(ns, "ss", "-tanH");
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

    // ---- The gateway: kernel and ctfw -----------------------------------------------------------

    private static void SetEstablishedTimeout(GatewayLab lab)
    {
        Tool.RunIn(lab.Gateway, "sysctl", "-q", "-w", $"net.netfilter.nf_conntrack_tcp_timeout_established={EstablishedTimeoutSeconds}");
        Assert.Equal(EstablishedTimeoutSeconds.ToString(CultureInfo.InvariantCulture),
            Tool.RunIn(lab.Gateway, "sysctl", "-n", "net.netfilter.nf_conntrack_tcp_timeout_established").Trim());
    }

    /// <summary>The kernel's entry (`conntrack -L` in the gateway) for the TCP flow from client port <paramref name="port"/>, or null.</summary>
    private static string? KernelTcpLine(GatewayLab lab, int port) =>
        Lines(Tool.RunIn(lab.Gateway, "conntrack", "-L", "-f", "ipv4", "-p", "tcp", "--orig-port-src", port.ToString(CultureInfo.InvariantCulture)))
            .SingleOrDefault();

    /// <summary>Packets the ECS rules' INVALID LOG rule matched (`iptables-save -c` in the gateway).</summary>
    private static long KernelInvalidLogged(GatewayLab lab)
    {
        string saved = Tool.RunIn(lab.Gateway, "iptables-save", "-c", "-t", "filter");
        Match m = InvalidLogCounter().Match(saved);
        Assert.True(m.Success, $"no INVALID LOG rule in the gateway:\n{saved}");
        return long.Parse(m.Groups["packets"].Value, CultureInfo.InvariantCulture);
    }

    private static ChildProcess StartCtfw(GatewayLab lab, int queue, string control, params string[] extra)
    {
        ChildProcess ctfw = CtfwProcess.Start(lab.Gateway, ["run", "--rules", EcsRules, "--queue", queue.ToString(CultureInfo.InvariantCulture),
            "--install", "FORWARD", "--control", control, .. extra]);
        if (!ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout))
        {
            string stderr = ctfw.StdErr;
            ctfw.Dispose();
            Assert.Fail($"ctfw run {string.Join(' ', extra)} did not start:\n{stderr}");
        }
        return ctfw;
    }

    /// <summary>SIGTERM, exit 0, and the exit report (stderr), written to the test output.</summary>
    private string StopCtfw(ChildProcess ctfw)
    {
        ctfw.Signal(ChildProcess.SigTerm);
        int? exit = ctfw.WaitForExit(s_stopTimeout);
        string stderr = ctfw.StdErr;
        _output.WriteLine("ctfw stderr:\n" + stderr);
        Assert.True(exit == 0, $"ctfw exit {exit?.ToString(CultureInfo.InvariantCulture) ?? "none"}\n{stderr}");
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

    /// <summary>The `--half-closed` line of the flow from <paramref name="port"/>; the flow from <paramref name="notListed"/> must be absent.</summary>
    private (string State, int Age, string Fin) HalfClosedEntry(string control, int port, int notListed)
    {
        ToolResult r = Ctfw("conntrack", "-L", "--control", control, "--half-closed");
        _output.WriteLine("ctfw conntrack -L --half-closed:\n" + r.StdOut.TrimEnd());
        string[] lines = Lines(r.StdOut);
        Assert.DoesNotContain(lines, l => l.Contains($"sport={notListed} dport={ServicePort} ", StringComparison.Ordinal));
        string line = Assert.Single(lines, l => l.Contains($"sport={port} dport={ServicePort} ", StringComparison.Ordinal));
        Match m = HalfClosedSuffix().Match(line);
        Assert.True(m.Success, $"no ' half-closed=Ns fin=WHO' at the end of '{line}'");
        return (TcpState(line), int.Parse(m.Groups["age"].Value, CultureInfo.InvariantCulture), m.Groups["fin"].Value);
    }

    /// <summary>`ctfw stats --raw` once the packet counter has stopped moving.</summary>
    /// <summary>The counters `ctfw bench` profiles with: syscalls, batches, worker allocations and CPU, GC, process CPU and memory.</summary>
    private static void AssertProfilingStats(Dictionary<string, long> stats)
    {
        string q = stats.Keys.Single(k => k.StartsWith("queue.", StringComparison.Ordinal) && k.EndsWith(".recv_calls", StringComparison.Ordinal))[..^"recv_calls".Length];
        long packets = stats[q + "packets"];
        Assert.True(packets > 0);
        Assert.InRange(stats[q + "recv_batches"], 1, packets);
        Assert.InRange(stats[q + "recv_calls"], stats[q + "recv_batches"], long.MaxValue);
        Assert.InRange(stats[q + "verdict_flushes"], 1, stats[q + "verdicts_sent"]);
        Assert.InRange(stats[q + "verdict_sendmsg"], stats[q + "verdict_flushes"], long.MaxValue);
        Assert.InRange(stats[q + "allocated_bytes"], 0, long.MaxValue);
        Assert.True(stats.ContainsKey(q + "cpu_user_us") && stats.ContainsKey(q + "cpu_sys_us"), "no worker CPU times");
        Assert.InRange(stats["gc.gen0"], stats["gc.gen1"], long.MaxValue);
        Assert.InRange(stats["gc.gen1"], stats["gc.gen2"], long.MaxValue);
        Assert.True(stats["gc.allocated_bytes"] > 0);
        Assert.True(stats["process.cpu_user_us"] + stats["process.cpu_sys_us"] > 0);
        Assert.InRange(stats["process.rss_bytes"], 10L << 20, 4L << 30);
        Assert.InRange(stats["process.rss_anon_bytes"], 1L << 20, stats["process.rss_bytes"]);
    }

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

    private void WriteStats(Dictionary<string, long> stats) =>
        _output.WriteLine("ctfw stats --raw (selected):\n" + string.Join('\n', stats
            .Where(kv => kv.Key.Split('.')[0] is "packets" or "state" or "verdict" or "invalid" or "rescue" or "reset" or "halfclosed" or "stalled")
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

    private static async Task Eventually(Func<bool> condition, string failure)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < s_ioTimeout, failure);
            await Task.Delay(100);
        }
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string ControlPath() =>
        Path.Combine(Path.GetTempPath(), $"ctfw-seed-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.sock");

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

    [GeneratedRegex(@" half-closed=(?<age>\d+)s fin=(?<fin>original|reply|both|none)$")]
    private static partial Regex HalfClosedSuffix();

    [GeneratedRegex(@" zero-window=(?<side>original|reply):(?<age>\d+)s fin=(?<fin>original|reply|both|none)$")]
    private static partial Regex StalledSuffix();

    [GeneratedRegex(@"^\[(?<packets>\d+):\d+\] -A FORWARD -p tcp -m state --state INVALID -j LOG ", RegexOptions.Multiline)]
    private static partial Regex InvalidLogCounter();
}
