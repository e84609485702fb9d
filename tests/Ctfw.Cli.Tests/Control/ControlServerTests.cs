using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.Versioning;
using System.Text;
using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests.Control;

/// <summary>Server and client over a real socket in a temporary directory, with an in-memory daemon.</summary>
public sealed class ControlServerTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeControlTarget _target = new();

    public void Dispose() => _dir.Dispose();

    private string SocketPath => _dir.File("ctfw-1.sock");

    private static string Request(string path, string request)
    {
        Assert.True(ControlClient.TryRequest(path, request, out string body, out string? error), error);
        return body;
    }

    /// <summary>Sends raw bytes and returns everything the server answers.</summary>
    private static string RawExchange(string path, byte[] request)
    {
        using var socket = Connect(path);
        socket.Send(request);
        socket.Shutdown(SocketShutdown.Send);
        return ReadAll(socket);
    }

    private static Socket Connect(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000 };
        socket.Connect(new UnixDomainSocketEndPoint(path));
        return socket;
    }

    /// <summary>Reads to end of stream; a reset after the answer (an oversized request left unread) ends it too.</summary>
    private static string ReadAll(Socket socket)
    {
        var answer = new StringBuilder();
        byte[] buffer = new byte[4096];
        while (true)
        {
            int n;
            try
            {
                n = socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset && answer.Length > 0)
            {
                break;
            }
            if (n == 0)
                return answer.ToString();
            answer.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return answer.ToString();
    }

    [Fact]
    public void Stats_NameValueLines_InTargetOrder()
    {
        _target.Counters.AddRange([new("uptime_ms", 5000), new("packets", 42), new("state.NEW", 2), new("ab.NEW.INVALID", -1)]);
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal("uptime_ms 5000\npackets 42\nstate.NEW 2\nab.NEW.INVALID -1\n", Request(SocketPath, "stats"));
        Assert.True(ControlClient.TryGetStats(SocketPath, out List<KeyValuePair<string, long>> stats, out _));
        Assert.Equal(_target.Counters, stats);
    }

    [Fact]
    public void List_AllFlows_InConntrackFormat()
    {
        FlowInfo tcp = Flows.Tcp("10.0.0.1", 40000, "10.0.0.2", 80), udp = Flows.Udp("2001:db8::1", 5353, "2001:db8::2", 53);
        _target.Add(tcp, udp);
        using var server = ControlServer.Start(SocketPath, _target);
        string body = Request(SocketPath, "list");
        Assert.Equal(ConntrackListing.Format(tcp) + "\n" + ConntrackListing.Format(udp) + "\n", body);
        Assert.StartsWith("tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED]", body);
    }

    internal static ExpectationInfo FtpExpectation(long timeoutMs = 299_500)
    {
        Assert.True(IpAddress.TryParse("10.0.0.1", out IpAddress client, out _));
        Assert.True(IpAddress.TryParse("10.0.0.2", out IpAddress server, out _));
        var expected = new ConnTuple { Src = client, Dst = server, SrcId = 0, DstId = 50000, Protocol = IpProto.Tcp, IpVersion = 4 };
        var master = new ConnTuple { Src = client, Dst = server, SrcId = 40000, DstId = 21, Protocol = IpProto.Tcp, IpVersion = 4 };
        return new ExpectationInfo(expected, master, CtHelper.Ftp, timeoutMs);
    }

    [Fact]
    public void ListExpect_ConntrackToolsLines_JsonAndFlush()
    {
        _target.ExpectationList.Add(FtpExpectation());
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal("299 proto=6 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=50000 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 "
            + "master-src=10.0.0.1 master-dst=10.0.0.2 sport=40000 dport=21 class=0 helper=ftp\n", Request(SocketPath, ControlProtocol.ListExpect));
        Assert.StartsWith("{\"family\":\"ipv4\",\"protocol\":\"tcp\"", Request(SocketPath, "list-expect\t--output\tjson"), StringComparison.Ordinal);
        Assert.Equal("error: list-expect takes no filters ('-p')\n", RawExchange(SocketPath, "list-expect\t-p\ttcp\n"u8.ToArray()));
        Assert.Equal("error: expectations have no extended format (-o json only)\n", RawExchange(SocketPath, "list-expect\t--output\textended\n"u8.ToArray()));
        Assert.Equal("1\n", Request(SocketPath, ControlProtocol.FlushExpect));
        Assert.Equal("", Request(SocketPath, ControlProtocol.ListExpect));
        Assert.True(ControlProtocol.IsReadOnly(ControlProtocol.ListExpect, []));
        Assert.False(ControlProtocol.IsReadOnly(ControlProtocol.FlushExpect, []));
    }

    [Fact]
    public void List_WithFilters_FilteredServerSide()
    {
        FlowInfo web = Flows.Tcp("10.0.0.1", 40000, "10.0.0.2", 80), ssh = Flows.Tcp("10.0.0.1", 40001, "10.0.0.3", 22);
        FlowInfo dns = Flows.Udp("10.0.0.1", 5353, "10.0.0.2", 53), dns6 = Flows.Udp("2001:db8::1", 5353, "2001:db8::2", 53);
        _target.Add(web, ssh, dns, dns6);
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal(ConntrackListing.Format(ssh) + "\n", Request(SocketPath, ControlProtocol.ListRequest(["--proto", "tcp", "--orig-port-dst", "22"])));
        Assert.Equal(ConntrackListing.Format(dns) + "\n" + ConntrackListing.Format(dns6) + "\n", Request(SocketPath, "list\t-p\tudp"));
        Assert.Equal(ConntrackListing.Format(web) + "\n" + ConntrackListing.Format(dns) + "\n", Request(SocketPath, "list\t--orig-dst\t10.0.0.2"));
        // Typed by hand (socat): words separated by spaces.
        Assert.Equal(ConntrackListing.Format(dns6) + "\n", Request(SocketPath, "list -f ipv6"));
        Assert.Equal("", Request(SocketPath, "list\t-s\t192.0.2.1"));
    }

    [Fact]
    public void List_BadFilter_ErrorLine()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.False(ControlClient.TryRequest(SocketPath, "list\t-p\tbogus", out _, out string? error));
        Assert.StartsWith("-p bogus: expected", error);
        Assert.Equal("error: unknown filter option '-L'\n", RawExchange(SocketPath, "list\t-L\n"u8.ToArray()));
    }

    [Fact]
    public void Delete_WithFilters_KillsOnlyMatchingEntriesAndListsThem()
    {
        FlowInfo web = Flows.Tcp("10.0.0.1", 40000, "10.0.0.2", 80), ssh = Flows.Tcp("10.0.0.1", 40001, "10.0.0.3", 22);
        FlowInfo dns = Flows.Udp("10.0.0.1", 5353, "10.0.0.2", 53);
        _target.Add(web, ssh, dns);
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal(ConntrackListing.Format(ssh) + "\n", Request(SocketPath, ControlProtocol.DeleteRequest(["-p", "tcp", "--dport", "22"])));
        Assert.Equal(2, _target.FlowCount);
        Assert.Equal("", Request(SocketPath, ControlProtocol.DeleteRequest(["-p", "tcp", "--dport", "22"])));
        Assert.False(ControlClient.TryRequest(SocketPath, "delete\t-p\tbogus", out _, out string? error));
        Assert.StartsWith("-p bogus: expected", error);
        Assert.Equal(2, _target.FlowCount);
    }

    [Fact]
    public void Flush_RemovesEverything_ReturnsCount()
    {
        _target.Add(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2), Flows.Udp("10.0.0.1", 1, "10.0.0.2", 2), Flows.Ping("10.0.0.1", "10.0.0.2", 9));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal("3\n", Request(SocketPath, "flush"));
        Assert.Equal(0, _target.FlowCount);
        Assert.Equal("0\n", Request(SocketPath, "flush"));
    }

    [Fact]
    public void ReloadSysctls_OkOrTheTargetsError()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal("", Request(SocketPath, "reload-sysctls"));
        _target.ReloadError = "cannot read /proc/sys/net/netfilter/nf_conntrack_max: Permission denied";
        Assert.False(ControlClient.TryRequest(SocketPath, "reload-sysctls", out string body, out string? error));
        Assert.Equal("cannot read /proc/sys/net/netfilter/nf_conntrack_max: Permission denied", error);
        Assert.Equal("", body);
        Assert.Equal(2, _target.Reloads);
    }

    [Fact]
    public void Start_DefaultNamedSocket_RemovesSocketsOfDeadDaemonsInItsDirectory_KeepsTheRest()
    {
        string dead = _dir.File("ctfw-999999999.sock");      // no such pid: a killed daemon's
        string alive = _dir.File("ctfw-2.sock");             // a live pid (kthreadd here): left alone
        string notSocket = _dir.File("ctfw-999999998.sock"); // not a socket: not ours to judge
        MakeStaleSocket(dead);
        MakeStaleSocket(alive);
        File.WriteAllText(notSocket, "x");
        Assert.True(File.Exists(dead));

        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal(1, server.SweptStale);
        Assert.False(File.Exists(dead));
        Assert.True(File.Exists(alive));
        Assert.True(File.Exists(notSocket));
    }

    /// <summary>A socket file nobody listens on, as a killed daemon leaves it (.NET unlinks a socket it bound when closed, so mknod).</summary>
    private static void MakeStaleSocket(string path) => Assert.Equal(0, Mknod(path, 0xC000 | 0x180, 0)); // S_IFSOCK | 0600

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mknod", SetLastError = true)]
    private static extern int Mknod([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, uint mode, ulong dev);

    [Fact]
    public void Start_SocketWithAnotherName_SweepsNothing()
    {
        string dead = _dir.File("ctfw-999999999.sock");
        MakeStaleSocket(dead);
        using var server = ControlServer.Start(_dir.File("gateway.sock"), _target);
        Assert.Equal(0, server.SweptStale);
        Assert.True(File.Exists(dead));
    }

    [Theory]
    [InlineData("frobnicate\n", "error: unknown request 'frobnicate' (expected stats, list, flush, delete, events, cpu-stats, list-expect, flush-expect, reload, reload-sysctls, rules, sync or zero-counters)\n")]
    [InlineData("\n", "error: empty request\n")]
    [InlineData("stats\textra\n", "error: stats takes no arguments\n")]
    [InlineData("flush now\n", "error: flush takes no arguments\n")]
    [InlineData("zero-counters all\n", "error: zero-counters takes no arguments\n")]
    [InlineData("rules\tverbose\tfast\n", "error: unknown rules argument 'fast' (expected verbose, exact or zero)\n")]
    [InlineData("sync\n", "error: sync takes one of status, external, commit, resync, flush, bulk\n")]
    [InlineData("sync\tstatus\tnow\n", "error: sync takes one of status, external, commit, resync, flush, bulk\n")]
    [InlineData("sync\tcommit\n", "error: state sync is off (start ctfw run with --sync ftfw)\n")]
    [InlineData("STATS\n", "error: unknown request 'STATS' (expected stats, list, flush, delete, events, cpu-stats, list-expect, flush-expect, reload, reload-sysctls, rules, sync or zero-counters)\n")]
    public void BadRequest_ErrorLine_ServerKeepsServing(string request, string answer)
    {
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal(answer, RawExchange(SocketPath, Encoding.UTF8.GetBytes(request)));
        Assert.Equal("packets 7\n", Request(SocketPath, "stats"));
    }

    [Fact]
    public void Rules_VerboseExact_ListsTheTargetsRulesetWithCounters()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        string body = Request(SocketPath, ControlProtocol.RulesRequest(verbose: true, exact: true, zero: false));
        Assert.Equal(Ctfw.Rules.RuleListing.Format(_target.Rules, exact: true, verbose: true), body);
        Assert.Contains("  123456    7890123 ACCEPT     tcp", body);
        Assert.Contains(" 123K 7890K ACCEPT     tcp", Request(SocketPath, "rules verbose"));
        Assert.DoesNotContain("123", Request(SocketPath, "rules"));
        Assert.Equal(0, _target.Zeroings);
    }

    [Fact]
    public void Rules_WithZero_ListsTheCountsThenZeroes()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Contains("  123456    7890123 ACCEPT", Request(SocketPath, ControlProtocol.RulesRequest(verbose: true, exact: true, zero: true)));
        Assert.Equal(1, _target.Zeroings);
        Assert.Contains("       0          0 ACCEPT", Request(SocketPath, "rules verbose exact"));
    }

    [Fact]
    public void ZeroCounters_ZeroesRulesAndPolicies_EmptyBody()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.StartsWith("Chain INPUT (policy DROP 42 packets, 4200 bytes)", Request(SocketPath, "rules verbose"), StringComparison.Ordinal);
        Assert.Equal("", Request(SocketPath, ControlProtocol.ZeroCounters));
        Assert.Equal(1, _target.Zeroings);
        string after = Request(SocketPath, "rules verbose exact");
        Assert.StartsWith("Chain INPUT (policy DROP 0 packets, 0 bytes)", after, StringComparison.Ordinal);
        Assert.Contains("       0          0 ACCEPT", after);
    }

    [Fact]
    public void Request_WithoutNewlineBeforeEof_StillServed()
    {
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal("ok\npackets 7\n", RawExchange(SocketPath, "stats"u8.ToArray()));
        Assert.Equal("ok\npackets 7\n", RawExchange(SocketPath, "stats\r\n"u8.ToArray()));
    }

    [Fact]
    public void OversizedRequest_Refused_ServerKeepsServing()
    {
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(SocketPath, _target);
        byte[] huge = Encoding.ASCII.GetBytes("list\t" + new string('x', 10_000) + "\n");
        Assert.Equal("error: request longer than 4096 bytes\n", RawExchange(SocketPath, huge));
        Assert.False(ControlClient.TryRequest(SocketPath, "list\t" + new string('x', 100_000), out _, out string? error));
        Assert.Equal("request longer than 4096 bytes", error);
        // 4096 bytes with the newline is the most that fits.
        byte[] longest = Encoding.ASCII.GetBytes("list\t" + new string('x', 4096 - 6) + "\n");
        Assert.Equal(4096, longest.Length);
        Assert.StartsWith("error: unknown filter option", RawExchange(SocketPath, longest));
        Assert.Equal("packets 7\n", Request(SocketPath, "stats"));
    }

    [Fact]
    public void SilentClient_TimesOut_NextClientAnswered()
    {
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(SocketPath, _target);
        using Socket silent = Connect(SocketPath);
        var clock = Stopwatch.StartNew();
        // Not queued behind the silent client (ControlServerConcurrencyTests shows it in detail);
        // the silent one is answered once the server gives up on it (2 s).
        Assert.Equal("packets 7\n", Request(SocketPath, "stats"));
        Assert.Equal($"error: no request line within {ControlProtocol.RequestTimeoutMs} ms\n", ReadAll(silent));
        Assert.InRange(clock.ElapsedMilliseconds, 1500, 9000);
    }

    [Fact]
    public void ClosedWithoutAWord_NoAnswer_ServerKeepsServing()
    {
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.True(ControlClient.Answers(SocketPath));
        Assert.Equal("", RawExchange(SocketPath, []));
        Assert.Equal("packets 7\n", Request(SocketPath, "stats"));
    }

    [Fact]
    public void TargetThrows_ErrorLine_ServerKeepsServing()
    {
        var target = new ThrowingTarget();
        using var server = ControlServer.Start(SocketPath, target);
        Assert.False(ControlClient.TryRequest(SocketPath, "list", out _, out string? error));
        Assert.Equal("list failed: table gone", error);
        Assert.False(ControlClient.TryRequest(SocketPath, "stats", out _, out error));
        Assert.Equal("stats failed: table gone", error);
        Assert.False(ControlClient.TryRequest(SocketPath, "rules verbose", out _, out error));
        Assert.Equal("rules failed: rules gone", error);
        Assert.False(ControlClient.TryRequest(SocketPath, "zero-counters", out _, out error));
        Assert.Equal("zero-counters failed: rules gone", error);
    }

    [Fact]
    [SupportedOSPlatform("linux")]
    public void Start_CreatesPrivateDirectoryAndSocket_DisposeRemovesSocket()
    {
        string dir = _dir.File("run/nested");
        string path = Path.Combine(dir, "ctfw-9.sock");
        var server = ControlServer.Start(path, _target);
        Assert.Equal(path, server.Path);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.True(ControlClient.Answers(path));
        server.Dispose();
        Assert.False(File.Exists(path));
        Assert.False(ControlClient.Answers(path));
        server.Dispose();
    }

    [Fact]
    public void Dispose_WhileAClientIsConnected_ReturnsPromptly()
    {
        var server = ControlServer.Start(SocketPath, _target);
        using Socket silent = Connect(SocketPath);
        Thread.Sleep(100);
        var clock = Stopwatch.StartNew();
        server.Dispose();
        Assert.InRange(clock.ElapsedMilliseconds, 0, 1500);
        Assert.False(File.Exists(SocketPath));
    }

    [Fact]
    public void Start_StaleSocketFile_Replaced()
    {
        // A socket file left by a daemon that was killed. .NET unlinks the path a socket was bound
        // to when it closes it, so bind elsewhere and move the file: the close then misses it.
        string bound = _dir.File("bound.sock");
        using (var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            dead.Bind(new UnixDomainSocketEndPoint(bound));
            dead.Listen(1);
            File.Move(bound, SocketPath);
        }
        Assert.True(File.Exists(SocketPath));
        Assert.False(ControlClient.Answers(SocketPath));
        _target.Counters.Add(new("packets", 3));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.Equal("packets 3\n", Request(SocketPath, "stats"));
    }

    [Fact]
    public void Start_LiveSocket_RefusedAndOwnerUntouched()
    {
        _target.Counters.Add(new("packets", 3));
        using var owner = ControlServer.Start(SocketPath, _target);
        IOException e = Assert.Throws<IOException>(() => ControlServer.Start(SocketPath, new FakeControlTarget()));
        Assert.Equal($"control socket {SocketPath} is in use by another running ctfw", e.Message);
        Assert.Equal("packets 3\n", Request(SocketPath, "stats"));
    }

    [Fact]
    public void Client_NoSocket_CannotConnect()
    {
        Assert.False(ControlClient.TryRequest(SocketPath, "stats", out string body, out string? error));
        Assert.Equal("", body);
        Assert.StartsWith($"cannot connect to {SocketPath}: ", error);
    }

    [Fact]
    public void Client_ServerNeverAnswers_TimesOut()
    {
        // A listener that accepts but never answers (a hung daemon).
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        listener.Listen(1);
        Assert.False(ControlClient.TryRequest(SocketPath, "stats", TimeSpan.FromMilliseconds(300), out _, out string? error));
        Assert.Equal($"no answer from {SocketPath} within 0.3 s", error);
    }

    [Theory]
    [InlineData("")]
    [InlineData("stats\nflush")]
    public void Client_MalformedRequest_RefusedLocally(string request)
    {
        Assert.False(ControlClient.TryRequest(SocketPath, request, out _, out string? error));
        Assert.Equal("a request is one non-empty line", error);
    }

    [Fact]
    public void ParseStats_SkipsLinesThatAreNotCounters()
    {
        Assert.Equal([new("a", 1), new("b.c", -2)], ControlClient.ParseStats("a 1\nnonsense\nx y\nb.c -2\n"));
    }

    [Fact]
    public void Reload_Succeeds_OkWithWhatIsInForce()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.True(ControlClient.TryRequest(SocketPath, ControlProtocol.Reload, out string body, out string? error), error);
        Assert.Equal("3 rules from test.rules in force from the next batch\n", body);
        Assert.Equal(1, _target.RuleReloads);
    }

    [Fact]
    public void Reload_BadFile_ErrorNamesTheProblem()
    {
        _target.ReloadAnswer = new(false, "r.rules: 1 error, the old rules stay in force: r.rules:5:12: unknown option");
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.False(ControlClient.TryRequest(SocketPath, ControlProtocol.Reload, out _, out string? error));
        Assert.Equal("r.rules: 1 error, the old rules stay in force: r.rules:5:12: unknown option", error);
    }

    private sealed class ThrowingTarget : IControlTarget
    {
        public IReadOnlyList<KeyValuePair<string, long>> Stats() => throw new InvalidOperationException("table gone");

        public List<FlowInfo> Snapshot(out long nowMs) => throw new InvalidOperationException("table gone");

        public int Flush() => throw new InvalidOperationException("table gone");

        public string? ReloadSysctls() => throw new InvalidOperationException("table gone");

        public ReloadResult Reload() => throw new InvalidOperationException("table gone");

        public List<FlowInfo> Delete(Func<FlowInfo, long, bool> match, out long nowMs) => throw new InvalidOperationException("table gone");

        public void HandOver(System.Net.Sockets.Socket client, IReadOnlyList<string> args) => throw new InvalidOperationException("table gone");

        public string ListRules(bool verbose, bool exact, bool zero) => throw new InvalidOperationException("rules gone");

        public void ZeroCounters() => throw new InvalidOperationException("rules gone");
    }
}
