using System.Net;
using System.Net.Sockets;
using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Cli.Tests;

/// <summary>
/// Two <see cref="SyncService"/>s over loopback UDP, each with its own engine (ctfw ↔ ctfw without
/// namespaces): what the active one's table does reaches the other's external cache in conntrackd's
/// FTFW protocol, and a commit makes it live so mid-stream packets are ESTABLISHED under tcp_loose=0.
/// </summary>
public sealed class SyncServiceTests : IDisposable
{
    private static readonly IpAddress Client = IpAddress.FromV4(0x0A630102); // 10.99.1.2
    private static readonly IpAddress Server = IpAddress.FromV4(0x0A630202); // 10.99.2.2
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);

    private readonly byte[] _buf = new byte[2048];
    private readonly Side _a;
    private readonly Side _b;

    public SyncServiceTests()
    {
        (int portA, int portB) = (FreePort(), FreePort());
        _a = new Side(portA, portB);
        _b = new Side(portB, portA);
    }

    public void Dispose()
    {
        _a.Dispose();
        _b.Dispose();
    }

    private static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    private static ConntrackSettings StrictSettings()
    {
        var s = new ConntrackSettings();
        Assert.Null(s.SetAssignment("nf_conntrack_tcp_loose=0"));
        return s;
    }

    private sealed class Side : IDisposable
    {
        public readonly ConntrackEngine Engine;
        public readonly ConntrackWorker Worker;
        public readonly SyncService Sync;
        private readonly StringWriter _log = new();
        private readonly TextWriter _logWriter;
        public long Offset;

        public Side(int localPort, int peerPort, bool commitOnStart = false)
        {
            Engine = new ConntrackEngine(StrictSettings(), DaemonClock.NowMs());
            Worker = Engine.CreateWorker();
            var options = new SyncOptions(new IPEndPoint(IPAddress.Loopback, localPort), new IPEndPoint(IPAddress.Loopback, peerPort))
            {
                CommitOnStart = commitOnStart,
            };
            _logWriter = TextWriter.Synchronized(_log);
            Sync = SyncService.Open(Engine, options, _logWriter);
            Sync.Clock = () => DaemonClock.NowMs() + Offset;
        }

        /// <summary>What the sync thread logged so far (read under the synchronized writer's lock).</summary>
        public string Log
        {
            get
            {
                lock (_logWriter)
                    return _log.ToString();
            }
        }

        public void Dispose() => Sync.Dispose();
    }

    private Classification Tcp(Side side, bool fromClient, TcpFlags flags, uint seq, uint ack, int len = 0)
    {
        var spec = new TcpSpec
        {
            Src = fromClient ? Client : Server,
            Dst = fromClient ? Server : Client,
            SrcPort = fromClient ? (ushort)40000 : (ushort)80,
            DstPort = fromClient ? (ushort)80 : (ushort)40000,
            Seq = seq,
            Ack = ack,
            Flags = flags,
            Window = 64240,
            PayloadLength = len,
        };
        int n = PacketBuilder.Tcp(_buf, spec);
        long now = DaemonClock.NowMs();
        side.Worker.Enter();
        side.Worker.Process(_buf.AsSpan(0, n), now, new PacketContext { VerifyChecksums = true }, out Classification r);
        side.Worker.Exit();
        side.Engine.Maintain(now);
        return r;
    }

    /// <summary>A's events this far, handed to A's sync as the daemon's event stream does.</summary>
    private static void Pump(Side side)
    {
        var batch = new List<ConntrackEvent>();
        side.Engine.Events.TakeAll(batch);
        side.Sync.Deliver(batch, 0);
    }

    private void Handshake(Side side)
    {
        Assert.Equal(CtState.New, Tcp(side, true, Syn, 1000, 0).State);
        Assert.Equal(CtState.Established, Tcp(side, false, Syn | Ack, 5000, 1001).State);
        Assert.Equal(CtState.Established, Tcp(side, true, Ack, 1001, 5001).State);
        Assert.Equal(CtState.Established, Tcp(side, true, Ack | Psh, 1001, 5001, len: 100).State);
    }

    private void WaitFor(Func<bool> done, string what)
    {
        DateTime until = DateTime.UtcNow + s_wait;
        while (!done())
        {
            if (DateTime.UtcNow > until)
            {
                Assert.Fail($"not within {s_wait.TotalSeconds} s: {what}\nA: {string.Join(", ", _a.Sync.Status())}\nB: {string.Join(", ", _b.Sync.Status())}\n"
                    + $"B external: {string.Join("; ", _b.Sync.ListExternal())}");
            }
            Thread.Sleep(20);
        }
    }

    private static long Stat(Side side, string name) => Stat(side.Sync, name);

    private static long Stat(SyncService sync, string name) => sync.Stats().Single(kv => kv.Key == name).Value;

    [Fact]
    public void FlowOnA_ReachesBsExternalCache_AndCommitMakesItLive_MidStreamEstablishedUnderStrictLoose()
    {
        _a.Engine.Events.Subscribe();
        _a.Sync.Start();
        _b.Sync.Start();
        Handshake(_a);
        Pump(_a);
        WaitFor(() => _b.Sync.ExternalCount == 1, "B's external cache holds A's connection");
        string line = Assert.Single(_b.Sync.ListExternal());
        Assert.Contains("ESTABLISHED", line, StringComparison.Ordinal);
        Assert.Contains("src=10.99.1.2 dst=10.99.2.2 sport=40000 dport=80", line, StringComparison.Ordinal);
        Assert.Contains("[ASSURED]", line, StringComparison.Ordinal);

        // Before the commit B has no entry: with tcp_loose=0 a mid-stream segment is INVALID there
        // (the fail-over without sync). Not sent through the worker, so B's table stays empty.
        Assert.Equal(0, _b.Engine.Count);
        Assert.Equal("committed 1 of 1", _b.Sync.Commit());
        Assert.Equal(1, _b.Engine.Count);
        Assert.Equal(CtState.Established, Tcp(_b, false, Ack | Psh, 5001, 1101, len: 200).State);
        Assert.Equal(CtState.Established, Tcp(_b, true, Ack, 1101, 5201).State);
        Assert.Contains("role: active (committed)", _b.Sync.Status());
        Assert.True(Stat(_a, "sync.peer_up") == 1 || Stat(_b, "sync.received.messages") > 0);
    }

    /// <summary>One SCTP packet between 10.99.1.2:40000 and 10.99.2.2:3868 through <paramref name="side"/>'s worker.</summary>
    private Classification Sctp(Side side, bool fromClient, uint vtag, byte type, uint initTag = 0)
    {
        Span<byte> value = stackalloc byte[16];
        value.Clear();
        int n = 0;
        if (type is 1 or 2) // INIT, INIT ACK: initiate tag, a_rwnd, streams, TSN
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(value, initTag);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(value[4..], 65536);
            n = 16;
        }
        else if (type == 10) // COOKIE ECHO
        {
            n = 8;
        }
        else if (type == 0) // DATA: TSN, stream, sequence, PPID (B and E flags: one whole message)
        {
            n = 16;
        }
        Span<byte> chunk = stackalloc byte[32];
        int c = PacketBuilder.SctpChunk(chunk, type, type == 0 ? (byte)3 : (byte)0, value[..n]);
        int len = fromClient
            ? PacketBuilder.Sctp(_buf, false, Client, Server, 40000, 3868, vtag, chunk[..c])
            : PacketBuilder.Sctp(_buf, false, Server, Client, 3868, 40000, vtag, chunk[..c]);
        long now = DaemonClock.NowMs();
        side.Worker.Enter();
        side.Worker.Process(_buf.AsSpan(0, len), now, new PacketContext { VerifyChecksums = true }, out Classification r);
        side.Worker.Exit();
        side.Engine.Maintain(now);
        return r;
    }

    [Fact]
    public void SctpAssociationOnA_CommittedOnB_StateAndVtagsKept_BsNextPacketsMatchTheTags()
    {
        const uint ClientTag = 0x0C11E47A, ServerTag = 0x5E7BE7A6;
        _a.Engine.Events.Subscribe();
        _a.Sync.Start();
        _b.Sync.Start();
        Assert.Equal(CtState.New, Sctp(_a, true, 0, 1, ClientTag).State);             // INIT
        Assert.Equal(CtState.Established, Sctp(_a, false, ClientTag, 2, ServerTag).State); // INIT ACK
        Sctp(_a, true, ServerTag, 10);                                                  // COOKIE ECHO
        Assert.Equal(SctpState.Established, Sctp(_a, false, ClientTag, 11).SctpState);  // COOKIE ACK
        Pump(_a);
        WaitFor(() => _b.Sync.ListExternal() is [var l] && l.Contains(" ESTABLISHED ", StringComparison.Ordinal), "B's external cache holds the association ESTABLISHED");
        Assert.Equal("committed 1 of 1", _b.Sync.Commit());
        FlowInfo f = Assert.Single(_b.Engine.Snapshot(DaemonClock.NowMs()));
        Assert.Equal((SctpState.Established, ServerTag, ClientTag), (f.SctpState, f.SctpVtagOriginal, f.SctpVtagReply));
        // DATA with the tag A saw passes on B; with another tag it is INVALID there, as it would be on A.
        Assert.Equal(CtState.Established, Sctp(_b, true, ServerTag, 0).State);
        Assert.Equal(CtState.Invalid, Sctp(_b, true, ServerTag ^ 1, 0).State);
        Assert.Equal(CtState.Invalid, Sctp(_a, true, ServerTag ^ 1, 0).State);
    }

    [Fact]
    public void WithoutCommit_MidStreamSegmentOnB_IsInvalid()
    {
        // The control case of the test above: the same segment on B with nothing committed.
        Classification r = Tcp(_b, false, Ack | Psh, 5001, 1101, len: 200);
        Assert.Equal(CtState.Invalid, r.State);
    }

    [Fact]
    public void DestroyOnA_RemovesTheEntryFromBsExternalCache()
    {
        _a.Engine.Events.Subscribe();
        _a.Sync.Start();
        _b.Sync.Start();
        Handshake(_a);
        Pump(_a);
        WaitFor(() => _b.Sync.ExternalCount == 1, "B's external cache holds A's connection");
        // An RST moves the entry to CLOSE (it lives its 10 s): an update.
        Assert.Equal(CtState.Established, Tcp(_a, true, Rst | Ack, 1101, 5001).State);
        Pump(_a);
        WaitFor(() => _b.Sync.ListExternal() is [var l] && l.Contains(" CLOSE ", StringComparison.Ordinal), "B's copy in CLOSE");
        // Its death (here `conntrack -D`) is a DESTROY: B forgets it.
        Assert.Single(_a.Engine.Kill(DaemonClock.NowMs(), _ => true));
        Pump(_a);
        WaitFor(() => _b.Sync.ExternalCount == 0, "A's DESTROY removes it from B's external cache");
        Assert.True(Stat(_b, "sync.received_connections") >= 2);
    }

    [Fact]
    public void Commit_EntryWhoseTimeRanOut_IsLeftOut()
    {
        _a.Engine.Events.Subscribe();
        _a.Sync.Start();
        _b.Sync.Start();
        Assert.Equal(CtState.New, Tcp(_a, true, Syn, 1000, 0).State); // SYN_SENT: 120 s
        Pump(_a);
        WaitFor(() => _b.Sync.ExternalCount == 1, "B's external cache holds the SYN_SENT entry");
        _b.Offset = 121_000;
        Assert.Equal("committed 0 of 1; 1 had no time left", _b.Sync.Commit());
        Assert.Equal(0, _b.Engine.Count);
    }

    [Fact]
    public void DatagramFromAnotherAddress_IsDroppedAndCounted()
    {
        _b.Sync.Start();
        using var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        stranger.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
        stranger.SendTo(new byte[] { 0x10, 0x00, 0x00, 0x08, 0, 0, 0, 1 }, _b.Sync.LocalEndPoint);
        WaitFor(() => Stat(_b, "sync.from_strangers") == 1, "the stranger's datagram counted");
        Assert.Equal(0, Stat(_b, "sync.received.datagrams"));
    }

    [Fact]
    public void MalformedDatagramFromThePeer_IsCountedNeverThrown()
    {
        _b.Sync.Start();
        using var peer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        peer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        // Version 1, CT_NEW, length 40 claimed in a 10-byte datagram; then a wrong version; then a
        // CT_NEW whose only attribute says 200 bytes.
        peer.SendTo(new byte[] { 0x10, 0x20, 0x00, 0x28, 0, 0, 0, 1, 0, 0 }, _b.Sync.LocalEndPoint);
        peer.SendTo(new byte[] { 0x20, 0x20, 0x00, 0x08, 0, 0, 0, 2 }, _b.Sync.LocalEndPoint);
        peer.SendTo(new byte[] { 0x10, 0x20, 0x00, 0x10, 0, 0, 0, 3, 0x00, 0xC8, 0x00, 0x00, 1, 2, 3, 4 }, _b.Sync.LocalEndPoint);
        WaitFor(() => Stat(_b, "sync.received.malformed") >= 3, "three malformed datagrams counted");
        Assert.Equal(0, _b.Sync.ExternalCount);
        Assert.True(_b.Sync.Stats().Any(), "the service still answers");
    }

    [Fact]
    public void IntakeOverflow_IsCounted_AndRepairedByABulkSendOfTheWholeTable()
    {
        _a.Engine.Events.Subscribe();
        Handshake(_a);
        // Events that never fit: more than the intake holds, none of them sent yet (the thread is not running).
        var flood = new List<ConntrackEvent>(SyncService.QueueLimit + 10);
        _a.Engine.Events.TakeAll(flood);
        // Each about another connection (changes of one connection in one batch would travel as one).
        ConntrackEvent one = flood[0];
        for (int i = 0; flood.Count < SyncService.QueueLimit + 10; i++)
        {
            ConnTuple t = one.Flow.Original;
            t.SrcId = (ushort)(1 + (i % 60000));
            t.DstId = (ushort)(1000 + (i / 60000));
            flood.Add(one with { Flow = one.Flow with { Original = t } });
        }
        _a.Sync.Deliver(flood, 0);
        Assert.True(Stat(_a, "sync.queue.overflows") >= 1);
        _a.Sync.Start();
        _b.Sync.Start();
        WaitFor(() => Stat(_a, "sync.bulk_sends") >= 1 && Stat(_a, "sync.bulk_entries") >= 1, "a bulk send of A's table");
        WaitFor(() => _b.Sync.ListExternal().Any(l => l.Contains("ESTABLISHED src=10.99.1.2 dst=10.99.2.2 sport=40000 dport=80 ", StringComparison.Ordinal)),
            "B holds A's connection as it is now");
    }

    [Fact]
    public void ResyncFromB_MakesASendItsWholeTable()
    {
        Handshake(_a); // no subscriber: no events, the entry reaches B only through bulk sends
        _a.Sync.Start();
        _b.Sync.Start();
        WaitFor(() => _b.Sync.ExternalCount == 1, "A's table reaches B after B's HELLO");
        Assert.StartsWith("1 external entries flushed", _b.Sync.Flush(), StringComparison.Ordinal);
        Assert.Equal(0, _b.Sync.ExternalCount);
        Assert.StartsWith("resync requested", _b.Sync.RequestResync(), StringComparison.Ordinal);
        WaitFor(() => _b.Sync.ExternalCount == 1, "A's table reaches B again after B's RESYNC");
        Assert.Equal(1, Stat(_a, "sync.received.resyncs"));
        Assert.Contains("role: backup (resync asked)", _b.Sync.Status());
    }

    [Fact]
    public void CommitOnStart_AsksThePeerForItsTable_AndMakesItLive()
    {
        Handshake(_a); // A's table, no events: only a resync can bring it over
        _a.Sync.Start();
        int portB = _b.Sync.LocalEndPoint.Port;
        _b.Dispose();
        using var restarted = new Side(portB, _a.Sync.LocalEndPoint.Port, commitOnStart: true);
        restarted.Sync.Start();
        WaitFor(() => restarted.Log.Contains("committed 1 of 1", StringComparison.Ordinal), "the restarted side commits A's table once A has gone quiet");
        Assert.Equal(1, restarted.Engine.Count);
        Assert.Equal(CtState.Established, Tcp(restarted, false, Ack | Psh, 5001, 1101, len: 200).State);
    }

    [Fact]
    public void SecondSocketOnTheSameAddress_Binds_ForAnUpgradeThatOverlapsTheOldProcess()
    {
        var options = new SyncOptions(_a.Sync.LocalEndPoint, new IPEndPoint(IPAddress.Loopback, 9));
        using SyncService second = SyncService.Open(_a.Engine, options, TextWriter.Null);
        Assert.Equal(_a.Sync.LocalEndPoint, second.LocalEndPoint);
    }

    [Fact]
    public void PeerThatStartsLater_GetsTheWholeTableWithoutAsking()
    {
        Handshake(_a); // no events: only a bulk brings it over
        _a.Sync.Start();
        Thread.Sleep(200);
        Assert.Equal(0, _b.Sync.ExternalCount);
        _b.Sync.Start(); // its HELLO makes A send its table
        WaitFor(() => _b.Sync.ExternalCount == 1, "A's table reaches B once B says HELLO");
        Assert.Equal(1, Stat(_a, "sync.peer_starts"));
    }

    [Fact]
    public void ConnectionDestroyedWhileABulkIsUnderWay_IsNotBroughtBackByTheBulksCopy()
    {
        // A's sync is driven round by round: the bulk spans several rounds, and the connection the
        // bulk would send last dies after the first. The peer must end without it.
        _b.Sync.Start();
        WaitFor(() => { _a.Sync.Round(1000); return Stat(_a, "sync.peer_up") == 1 && Stat(_b, "sync.peer_up") == 1; }, "the HELLO exchange");
        for (int i = 0; i < 20; i++)
            _a.Sync.Round(1000); // the bulk B's HELLO asked for (of an empty table) is done
        const int flows = 3000;
        for (int i = 0; i < flows; i++)
            Udp(_a, (ushort)(20000 + i));
        _a.Engine.Events.Subscribe(); // from now on: only the DESTROY below is an event
        ConnTuple last = _a.Engine.ExportConnections(DaemonClock.NowMs())[^1].Original;
        _a.Sync.RequestBulk();
        _a.Sync.Round(0);
        Assert.True(Stat(_a, "sync.bulk_entries") is > 0 and < flows, "the bulk is under way");
        Assert.Single(_a.Engine.Kill(DaemonClock.NowMs(), f => f.Original.Equals(last)));
        Pump(_a);
        WaitFor(() => { _a.Sync.Round(1000); return Stat(_a, "sync.queue") == 0 && Stat(_a, "sync.pending") == 0 && _b.Sync.ExternalCount >= flows - 1; },
            "the bulk and the DESTROY sent");
        for (int i = 0; i < 50; i++)
            _a.Sync.Round(1000);
        Assert.Equal(flows - 1, _b.Sync.ExternalCount);
        Assert.DoesNotContain(_b.Sync.ListExternal(), l => l.Contains($"sport={last.SrcId} ", StringComparison.Ordinal));
    }

    [Fact]
    public void PeerSendingMoreThanTheTableHolds_RestCountedNotKept()
    {
        var settings = new ConntrackSettings();
        Assert.Null(settings.SetAssignment("nf_conntrack_max=5"));
        var engine = new ConntrackEngine(settings, DaemonClock.NowMs());
        using SyncService sync = SyncService.Open(engine, new SyncOptions(new IPEndPoint(IPAddress.Loopback, 0), new IPEndPoint(IPAddress.Loopback, 9)), TextWriter.Null);
        for (int i = 0; i < 8; i++)
        {
            var o = new ConnTuple { Src = Client, Dst = Server, SrcId = (ushort)(30000 + i), DstId = 53, Protocol = IpProto.Udp, IpVersion = 4 };
            o.TryInvert(out ConnTuple r);
            sync.OnConnection(Ctfw.Linux.Sync.SyncMessageType.New, new KernelConnection { Original = o, Reply = r, TimeoutSeconds = 30 });
        }
        Assert.Equal(5, sync.ExternalCount);
        Assert.Equal(3, Stat(sync, "sync.external_full"));
        Assert.Equal("committed 5 of 5", sync.Commit());
    }

    [Fact]
    public void ChangesOfOneConnectionInOneDrain_TravelAsOneMessage_BornAndDeadNotAtAll()
    {
        _a.Engine.Events.Subscribe();
        _a.Sync.Start();
        _b.Sync.Start();
        WaitFor(() => Stat(_a, "sync.peer_up") == 1, "the HELLO exchange");
        Handshake(_a);                                   // NEW and two UPDATEs in one drain
        Udp(_a, 33333);
        Assert.Single(_a.Engine.Kill(DaemonClock.NowMs(), f => f.Original.SrcId == 33333)); // NEW and DESTROY
        Pump(_a);
        WaitFor(() => _b.Sync.ExternalCount == 1, "the TCP connection reaches B");
        Thread.Sleep(200);
        Assert.Equal(1, Stat(_b, "sync.received_connections"));
        Assert.Equal(1, _b.Sync.ExternalCount);
        Assert.Contains("ESTABLISHED", Assert.Single(_b.Sync.ListExternal()), StringComparison.Ordinal);
        Assert.True(Stat(_a, "sync.coalesced") >= 3, $"coalesced {Stat(_a, "sync.coalesced")}");
    }

    private void Udp(Side side, ushort sport)
    {
        int n = PacketBuilder.Udp(_buf, false, Client, Server, sport, 53, 10);
        long now = DaemonClock.NowMs();
        side.Worker.Enter();
        side.Worker.Process(_buf.AsSpan(0, n), now, new PacketContext { VerifyChecksums = true }, out Classification r);
        side.Worker.Exit();
        side.Engine.Maintain(now);
        Assert.Equal(CtState.New, r.State);
    }
}
