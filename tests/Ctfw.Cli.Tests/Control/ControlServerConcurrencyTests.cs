using System.Net.Sockets;
using System.Text;
using Ctfw.Cli.Control;
using Ctfw.Linux;

namespace Ctfw.Cli.Tests.Control;

/// <summary>A connection per thread: stalled clients cost nobody else, the cap answers busy, Dispose cuts everyone off.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ControlServerConcurrencyTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeControlTarget _target = new();
    private readonly List<Socket> _clients = [];

    public void Dispose()
    {
        foreach (Socket client in _clients)
            client.Dispose();
        _dir.Dispose();
    }

    private string SocketPath => _dir.File("ctfw-1.sock");

    private Socket Silent(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000 };
        socket.Connect(new UnixDomainSocketEndPoint(path));
        _clients.Add(socket);
        return socket;
    }

    private static void WaitFor(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.ElapsedMilliseconds < 10_000, "condition not reached within 10 s");
            Thread.Sleep(5);
        }
    }

    [Fact]
    public void SilentClient_DoesNotDelayStatsOfAnother()
    {
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(SocketPath, _target);
        Socket silent = Silent(SocketPath);
        WaitFor(() => server.Active == 1);

        Assert.True(ControlClient.TryRequest(SocketPath, "stats", out string body, out string? error), error);
        Assert.Equal("packets 7\n", body);
        // The silent client has not been answered yet (its "no request line" comes after
        // RequestTimeoutMs): the stats answer did not wait for it, as it did with one thread.
        Assert.False(silent.Poll(0, SelectMode.SelectRead));
        // The stats connection's thread may still be between its answer and giving its slot back;
        // the silent one keeps its slot until its own timeout.
        WaitFor(() => server.Active == 1);
        Assert.False(silent.Poll(0, SelectMode.SelectRead));

        // Its own timeout still applies.
        byte[] buffer = new byte[256];
        int n = silent.Receive(buffer);
        Assert.StartsWith("error: no request line within", Encoding.UTF8.GetString(buffer, 0, n));
    }

    [Fact]
    public void FullHouse_OneMoreAnsweredBusy_ThenServedAgain()
    {
        _target.Counters.Add(new("packets", 1));
        using var server = ControlServer.Start(SocketPath, _target);
        var stalled = new List<Socket>();
        for (int i = 0; i < ControlProtocol.MaxConnections; i++)
            stalled.Add(Silent(SocketPath));
        WaitFor(() => server.Active == ControlProtocol.MaxConnections);

        Assert.False(ControlClient.TryRequest(SocketPath, "stats", out _, out string? error));
        Assert.Equal($"busy: {ControlProtocol.MaxConnections} control connections in progress; try again", error);
        Assert.Equal(1, server.Busy);

        foreach (Socket socket in stalled)
            socket.Shutdown(SocketShutdown.Send); // end of stream without a byte: a probe, closed unanswered
        WaitFor(() => server.Active == 0);
        Assert.True(ControlClient.TryRequest(SocketPath, "stats", out string body, out error), error);
        Assert.Equal("packets 1\n", body);
    }

    [Fact]
    public async Task Dispose_WithStalledClients_ClosesThemAndReturns()
    {
        var server = ControlServer.Start(SocketPath, _target);
        Socket[] stalled = [Silent(SocketPath), Silent(SocketPath), Silent(SocketPath)];
        WaitFor(() => server.Active == 3);
        await Task.Run(server.Dispose).WaitAsync(TimeSpan.FromSeconds(5));
        foreach (Socket socket in stalled)
        {
            // Closed by the server without an answer: end of stream (or a reset), not a timeout.
            int n;
            try
            {
                n = socket.Receive(new byte[64]);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                n = 0;
            }
            Assert.Equal(0, n);
        }
        Assert.Equal(0, server.Active);
        Assert.False(File.Exists(SocketPath));
    }

    [Fact]
    public void HandOverInProgress_ReadsServed_ChangesRefusedUntilItEnds()
    {
        _target.Counters.Add(new("packets", 5));
        _target.Add(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2));
        using var release = new ManualResetEventSlim();
        _target.ReleaseHandOver = release;
        using var server = ControlServer.Start(SocketPath, _target);
        Socket takeover = Silent(SocketPath);
        takeover.Send("takeover\t4242\n"u8);
        Assert.True(_target.InHandOver.Wait(TimeSpan.FromSeconds(10)));

        Assert.True(ControlClient.TryRequest(SocketPath, "stats", out string body, out string? error), error);
        Assert.Equal("packets 5\n", body);
        Assert.False(ControlClient.TryRequest(SocketPath, "flush", out _, out error));
        Assert.Equal("flush refused: a hand-over to another ctfw is in progress; try again on the new one", error);
        Assert.False(ControlClient.TryRequest(SocketPath, "takeover\t4243", out _, out error));
        Assert.Equal("takeover refused: a hand-over to another ctfw is in progress; try again on the new one", error);
        Assert.Equal(1, _target.FlowCount);

        release.Set();
        Assert.Equal("error: no takeover in the fake\n", ReadToEnd(takeover));
        WaitFor(() => server.Active == 0);
        Assert.True(ControlClient.TryRequest(SocketPath, "flush", out body, out error), error);
        Assert.Equal("1\n", body);
        Assert.Equal([["4242"]], _target.Takeovers);
    }

    private static string ReadToEnd(Socket socket)
    {
        var answer = new StringBuilder();
        byte[] buffer = new byte[256];
        int n;
        while ((n = socket.Receive(buffer)) > 0)
            answer.Append(Encoding.UTF8.GetString(buffer, 0, n));
        return answer.ToString();
    }

    [Fact]
    public void Changes_OneLogLineEachNamingWho_ReadsNone()
    {
        var lines = new List<string>();
        _target.Add(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2), Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2));
        using var server = ControlServer.Start(SocketPath, _target, log: line =>
        {
            lock (lines)
                lines.Add(line);
        });
        foreach (string request in (string[])["stats", "list", "rules", "flush", "zero-counters", "reload", "rules\tzero"])
            Assert.True(ControlClient.TryRequest(SocketPath, request, out _, out string? error), error);
        _target.ReloadError = "no sysctls here";
        Assert.False(ControlClient.TryRequest(SocketPath, "reload-sysctls", out _, out _));

        string who = $"uid {UnixIdentity.EffectiveUserId}{(UnixIdentity.LocalUserName(UnixIdentity.EffectiveUserId) is { } name ? $" ({name})" : "")} pid {Environment.ProcessId}";
        lock (lines)
        {
            Assert.Equal(
            [
                $"ctfw: control: flush by {who}: 2 entries removed",
                $"ctfw: control: zero-counters by {who}: rule and policy counters zeroed",
                $"ctfw: control: reload by {who}: 3 rules from test.rules in force from the next batch",
                $"ctfw: control: rules zero by {who}: listed, then rule and policy counters zeroed",
                $"ctfw: control: reload-sysctls by {who}: failed: no sysctls here",
            ], lines);
        }
    }

    [Fact]
    public void Start_RegularFileAtPath_RefusedAndKept()
    {
        File.WriteAllText(SocketPath, "mine");
        IOException e = Assert.Throws<IOException>(() => ControlServer.Start(SocketPath, _target));
        Assert.Equal($"{SocketPath} exists and is not a socket (a regular file); remove it or choose another --control path", e.Message);
        Assert.Equal("mine", File.ReadAllText(SocketPath));
    }

    [Fact]
    public void Start_SymlinkAtPath_RefusedAndTargetKept()
    {
        string target = _dir.File("elsewhere.sock");
        DeadSocket(target);
        File.CreateSymbolicLink(SocketPath, target);
        IOException e = Assert.Throws<IOException>(() => ControlServer.Start(SocketPath, _target));
        Assert.Equal($"{SocketPath} exists and is not a socket (a symbolic link); remove it or choose another --control path", e.Message);
        Assert.True(File.Exists(target));
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(SocketPath, out UnixFileStatus link));
        Assert.Equal(UnixFileKind.SymbolicLink, link.Kind);
    }

    [Fact]
    public void Start_OwnStaleSocket_Replaced()
    {
        DeadSocket(SocketPath);
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(SocketPath, out UnixFileStatus dead));
        Assert.Equal(UnixFileKind.Socket, dead.Kind);
        _target.Counters.Add(new("packets", 3));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.True(ControlClient.TryRequest(SocketPath, "stats", out string body, out string? error), error);
        Assert.Equal("packets 3\n", body);
    }

    [RootFact]
    public void Start_StaleSocketOfAnotherUid_RefusedAndKept()
    {
        DeadSocket(SocketPath);
        File.SetUnixFileMode(SocketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal(0, Chown(SocketPath, 65534));
        IOException e = Assert.Throws<IOException>(() => ControlServer.Start(SocketPath, _target));
        Assert.Equal($"{SocketPath} is a socket nobody answers on but it belongs to uid 65534, not 0 (this ctfw); not removing it: remove it yourself or choose another --control path", e.Message);
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(SocketPath, out UnixFileStatus kept));
        Assert.Equal((UnixFileKind.Socket, 65534u), (kept.Kind, kept.OwnerId));
    }

    /// <summary>
    /// A socket file nobody listens on, as a crashed daemon leaves it: bound under another name and
    /// renamed, since the runtime unlinks the path it bound when the socket is closed.
    /// </summary>
    private void DeadSocket(string path)
    {
        string bound = _dir.File("bound-" + Guid.NewGuid().ToString("N")[..8] + ".sock");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(bound));
        File.Move(bound, path);
    }

    private static int Chown(string path, uint uid)
    {
        using var chown = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("chown", [uid.ToString(System.Globalization.CultureInfo.InvariantCulture), path]))!;
        chown.WaitForExit();
        return chown.ExitCode;
    }
}
