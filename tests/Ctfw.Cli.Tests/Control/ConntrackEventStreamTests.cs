using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests.Control;

/// <summary>
/// `events` (conntrack -E), `cpu-stats` (-S) and `--output` over a real control socket, with a real
/// engine producing the events and <see cref="ConntrackEventStream"/> delivering them.
/// </summary>
public sealed class ConntrackEventStreamTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeControlTarget _target = new();
    private readonly ConntrackEngine _engine = new(AcctOn(), 0);
    private readonly ConntrackWorker _worker;
    private readonly ConntrackEventStream _stream;
    private readonly byte[] _buf = new byte[256];

    private static ConntrackSettings AcctOn()
    {
        var s = new ConntrackSettings();
        Assert.Null(s.Set("nf_conntrack_acct", "1")); // the DESTROY lines below carry counters
        return s;
    }

    public ConntrackEventStreamTests()
    {
        _worker = _engine.CreateWorker();
        _stream = new ConntrackEventStream(_engine.Events, () => ListingOptions.Accounting);
        _target.EventStream = _stream;
    }

    public void Dispose()
    {
        _stream.Dispose();
        _worker.Dispose();
        _dir.Dispose();
    }

    private string SocketPath => _dir.File("ctfw-1.sock");

    private void Udp(ushort sport, ushort dport, bool reply = false, int len = 10, long now = 1000)
    {
        IpAddress a = IpAddress.FromV4(0x0A000001), b = IpAddress.FromV4(0x0A000002);
        int n = reply ? PacketBuilder.Udp(_buf, false, b, a, dport, sport, len) : PacketBuilder.Udp(_buf, false, a, b, sport, dport, len);
        _worker.Enter();
        _worker.Process(_buf.AsSpan(0, n), now, PacketContext.Forwarded, out _);
        _worker.Exit();
    }

    private Socket Subscribe(string request)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 10_000 };
        socket.Connect(new UnixDomainSocketEndPoint(SocketPath));
        socket.Send(Encoding.UTF8.GetBytes(request + "\n"));
        return socket;
    }

    private static void WaitFor(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.ElapsedMilliseconds < 10_000, "timed out");
            Thread.Sleep(5);
        }
    }

    [Fact]
    public void Events_FilteredAndMasked_StreamsOnlyMatchingLines()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        using Socket socket = Subscribe("events\t--orig-port-dst\t53\t--event-mask\tNEW,DESTROY");
        using var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false));
        Assert.Equal("ok", reader.ReadLine());
        WaitFor(() => _engine.Events.Subscribers == 1);
        Udp(40000, 80);                 // filtered out by port
        Udp(40001, 53);                 // NEW
        Udp(40001, 53, reply: true);    // UPDATE: masked out
        Assert.Equal(2, _engine.Flush(2000)); // both die; the filter shows one
        Assert.Equal(
            "    [NEW] udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=40001 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40001",
            reader.ReadLine());
        Assert.Equal(
            "[DESTROY] udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=40001 dport=53 packets=1 bytes=38 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40001 packets=1 bytes=38 [USERSPACE]",
            reader.ReadLine());
    }

    [Fact]
    public void Events_ClientCloses_SubscriptionEndsAndProducersStop()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Socket socket = Subscribe("events");
        var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false));
        Assert.Equal("ok", reader.ReadLine());
        WaitFor(() => _engine.Events.Subscribers == 1);
        socket.Dispose();
        WaitFor(() => _engine.Events.Subscribers == 0 && _stream.Subscribers == 0);
        // And the control socket still answers other requests.
        Assert.True(ControlClient.TryRequest(SocketPath, "cpu-stats", out _, out string? error), error);
    }

    [Fact]
    public void Events_BadArguments_AnswerAnErrorLine()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.False(ControlClient.TryRequest(SocketPath, "events\t-e\tCREATE", out _, out string? error));
        Assert.Contains("unknown event 'CREATE'", error);
        Assert.False(ControlClient.TryRequest(SocketPath, "events\t-p\tbogus", out _, out error));
        Assert.NotNull(error);
        Assert.False(ControlClient.TryRequest(SocketPath, "list\t-e\tNEW", out _, out error));
        Assert.Contains("conntrack -E only", error);
        Assert.Equal(0, _engine.Events.Subscribers);
    }

    [Fact]
    public void Events_SubscriberThatNeverReads_LosesEventsCountedAndIsToldWhenItReads()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        using Socket socket = Subscribe("events");
        socket.ReceiveBufferSize = 4096;
        var reader = new StreamReader(new NetworkStream(socket, ownsSocket: false));
        Assert.Equal("ok", reader.ReadLine());
        WaitFor(() => _engine.Events.Subscribers == 1);
        // Far more than the socket buffers and the 256 KiB backlog hold, in bursts the drainer keeps
        // up with (each under a ring's capacity): the losses are the subscriber's own.
        ushort port = 1;
        while (_stream.Lost == 0)
        {
            for (int i = 0; i < 500; i++)
                Udp(port++, 53);
            Thread.Sleep(ConntrackEventStream.DrainIntervalMs * 3);
            Assert.True(port < 60_000, "no loss after 60 000 events");
        }
        Assert.Equal(0, _engine.Events.DroppedTotal);
        // Reading now drains the backlog; every loss is reported (`lost N`, possibly in several
        // lines as room came and went) before the event that follows it: the marker, sent once
        // a loss line showed the backlog has room again.
        long reported = 0;
        int read = 0;
        string? line;
        while ((line = ReadOrExplain()) != null)
        {
            read++;
            if (line.StartsWith("lost ", StringComparison.Ordinal))
            {
                if (reported == 0)
                    Udp(1, 54);
                reported += long.Parse(line[5..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.Contains("sport=1 dport=54 ", StringComparison.Ordinal))
                break;
        }
        Assert.NotNull(line);
        Assert.True(reported > 0);

        string? ReadOrExplain()
        {
            try
            {
                return reader.ReadLine();
            }
            catch (IOException e)
            {
                throw new InvalidOperationException($"after {read} lines, {reported} reported lost, stream lost {_stream.Lost}, subscribers {_stream.Subscribers}, ring drops {_engine.Events.DroppedTotal}", e);
            }
        }
        Assert.Equal(_stream.Lost, reported);
    }

    [Fact]
    public void CpuStats_ListsEachWorkerAsConntrackS()
    {
        _target.Workers.Add(new WorkerCounters(0, 5, 1, 3, 0, 0, 0, 1, 0, 0));
        _target.Workers.Add(new WorkerCounters(1, 0, 0, 0, 0, 0, 0, 0, 0, 0));
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.True(ControlClient.TryRequest(SocketPath, "cpu-stats", out string body, out string? error), error);
        // conntrack v1.4.7 -S on Linux 6.18 (tests/data/conntrack-tools/list.txt): "cpu=%-4u\t", fields, a trailing space.
        Assert.Equal(
            "cpu=0   \tfound=5 invalid=1 insert=3 insert_failed=0 drop=0 early_drop=0 error=1 search_restart=0 clash_resolve=0 chaintoolong=0 \n"
            + "cpu=1   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n",
            body);
    }

    [Fact]
    public void List_OutputExtendedAndJson()
    {
        Udp(40001, 53);
        _target.Add(_engine.Snapshot(1000).ToArray());
        using var server = ControlServer.Start(SocketPath, _target);
        Assert.True(ControlClient.TryRequest(SocketPath, "list\t--output\textended", out string body, out string? error), error);
        Assert.StartsWith("ipv4     2 udp      17 ", body);
        Assert.True(ControlClient.TryRequest(SocketPath, "list\t-o\tjson", out body, out error), error);
        using var doc = System.Text.Json.JsonDocument.Parse(body.TrimEnd('\n'));
        Assert.Equal(53, doc.RootElement.GetProperty("original").GetProperty("dport").GetInt32());
        Assert.Equal(38, doc.RootElement.GetProperty("original").GetProperty("bytes").GetInt64());
        Assert.False(ControlClient.TryRequest(SocketPath, "list\t-o\txml", out _, out error));
        Assert.Contains("unknown output format 'xml'", error);
    }

    [Theory]
    [InlineData("NEW", 1)]
    [InlineData("new,destroy", 1 | 4)]
    [InlineData("ALL", 7)]
    [InlineData("UPDATE,UPDATE", 2)]
    public void ParseMask_Accepts(string text, int expected)
    {
        Assert.Null(OutputOptions.ParseMask(text, out EventMask mask));
        Assert.Equal((EventMask)expected, mask);
    }

    [Theory]
    [InlineData("")]
    [InlineData("NEW,BOGUS")]
    [InlineData("DELETE")]
    public void ParseMask_Refuses(string text) => Assert.NotNull(OutputOptions.ParseMask(text, out _));

    [Fact]
    public void ParseFormat_ExtendedAndJsonDoNotCombine()
    {
        Assert.Null(OutputOptions.ParseFormat("extended", out OutputFormat f));
        Assert.Equal(OutputFormat.Extended, f);
        Assert.NotNull(OutputOptions.ParseFormat("extended,json", out _));
        Assert.NotNull(OutputOptions.ParseFormat("xml", out _));
    }
}
