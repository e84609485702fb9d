using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Linux.Tests.Support;
using Ctfw.Packets;
using static Ctfw.Linux.Tests.Support.SyncTestKit;

namespace Ctfw.Linux.Tests;

/// <summary>
/// <see cref="FtfwSession"/> against another session over in-memory links: handshake, ACK window, NACK
/// and resend after a loss, ALIVE timing, RESYNC, batching, queue limits, replay and garbage.
/// </summary>
public sealed class FtfwSessionTests
{
    private sealed class Pair
    {
        public FtfwSession A { get; }
        public FtfwSession B { get; }
        public RecordingSink AtoB { get; } = new();
        public RecordingSink BtoA { get; } = new();
        public RecordingReceiver AReceived { get; } = new();
        public RecordingReceiver BReceived { get; } = new();
        public long Now { get; set; }

        public Pair(FtfwOptions? a = null, FtfwOptions? b = null)
        {
            A = new FtfwSession(a ?? new FtfwOptions { InitialSequence = 1_000 });
            B = new FtfwSession(b ?? new FtfwOptions { InitialSequence = 9_000 });
        }

        /// <summary>Delivers everything in flight both ways until both links are quiet.</summary>
        public void Pump()
        {
            for (int round = 0; round < 100; round++)
            {
                List<byte[]> ab = AtoB.Take(), ba = BtoA.Take();
                if (ab.Count == 0 && ba.Count == 0)
                    return;
                foreach (byte[] d in ab)
                    B.Receive(d, Now, BReceived, BtoA);
                foreach (byte[] d in ba)
                    A.Receive(d, Now, AReceived, AtoB);
            }
            Assert.Fail("links never went quiet");
        }

        public void Tick(long step)
        {
            Now += step;
            A.Tick(Now, AtoB);
            B.Tick(Now, BtoA);
            Pump();
        }
    }

    /// <summary>
    /// Both sides' timers until each has had HELLO_BACK. Until then every message carries HELLO, which the
    /// receiver takes whatever its seq and which empties the receiver's resend queue (as in conntrackd).
    /// </summary>
    private static void Handshake(Pair p)
    {
        p.Tick(0);
        p.Tick(1000);
        p.Tick(1000);
        Assert.True(p.A.Counters.PeerUp && p.B.Counters.PeerUp);
    }

    private static KernelConnection Conn(int i) =>
        Entry(Tuple("10.1.0.1", "10.2.0.1", IpProto.Tcp, (ushort)(1024 + i), 80), CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed, 300, TcpState.Established);

    [Fact]
    public void Handshake_HelloUntilHelloBack_ThenPlainMessages()
    {
        var p = new Pair();
        Assert.True(p.A.Enqueue(SyncMessageType.New, Conn(0)));
        p.A.Flush(0, p.AtoB);
        byte[] first = Assert.Single(p.AtoB.Datagrams);
        Assert.Equal(SyncWire.FlagHello, SyncWire.FlagsOf(first));
        Assert.Equal(1_000u, SyncWire.SeqOf(first));
        p.Pump();
        Assert.False(p.A.Counters.PeerUp);               // B answers on its next message
        p.Tick(1000);
        Assert.True(p.A.Counters.PeerUp);
        Assert.True(p.B.Counters.PeerSeen);
        Assert.Single(p.BReceived.Connections);

        // B said HELLO too (on its timer message): A's next message answers it, and says HELLO no more.
        p.A.Enqueue(SyncMessageType.Update, Conn(0));
        p.A.Flush(p.Now, p.AtoB);
        Assert.Equal(SyncWire.FlagHelloBack, SyncWire.FlagsOf(Assert.Single(p.AtoB.Datagrams)));
        p.Pump();
        p.A.Enqueue(SyncMessageType.Update, Conn(0));
        p.A.Flush(p.Now, p.AtoB);
        Assert.Equal(0, SyncWire.FlagsOf(Assert.Single(p.AtoB.Datagrams)));
        p.Pump();
        Assert.Equal(3, p.BReceived.Connections.Count);
        Assert.Equal((SyncMessageType.Update, Conn(0)), p.BReceived.Connections[2]);
    }

    [Fact]
    public void AckWindow_EveryThreeHundredMessages_FreesTheResendQueue()
    {
        var p = new Pair();
        Handshake(p);
        long acks = p.B.Counters.AcksSent;
        for (int i = 0; i < 700; i++)
            Assert.True(p.A.Enqueue(SyncMessageType.New, Conn(i)));
        p.A.Flush(p.Now, p.AtoB);
        Assert.InRange(p.A.Unacknowledged, 700, 701);    // + A's last ACK of B's timer messages
        p.Pump();
        Assert.Equal(700, p.BReceived.Connections.Count);
        Assert.Equal(2, p.B.Counters.AcksSent - acks);
        Assert.InRange(p.A.Unacknowledged, 100, 101);    // 2 × 300 acknowledged
        p.Tick(1000);                                    // the timer ACKs the rest
        Assert.InRange(p.A.Unacknowledged, 0, 1);        // A's own timer ACK waits for B's next one
        Assert.Equal(Enumerable.Range(0, 700).Select(Conn), p.BReceived.Connections.Select(c => c.Connection));
    }

    [Fact]
    public void Batching_DatagramsUpToMtuMinus28_ManyMessagesEach()
    {
        var p = new Pair(new FtfwOptions { InitialSequence = 1, Mtu = 576 });
        for (int i = 0; i < 100; i++)
            p.A.Enqueue(SyncMessageType.New, Conn(i));
        p.A.Flush(0, p.AtoB);
        Assert.All(p.AtoB.Datagrams, d => Assert.InRange(d.Length, 1, 576 - 28));
        Assert.Equal(100, p.AtoB.Datagrams.Sum(d => Messages(d).Count));
        int perDatagram = Messages(p.AtoB.Datagrams[0]).Count;
        Assert.Equal((576 - 28) / 60, perDatagram);     // IPv4 TCP messages are 60 bytes
        Assert.Equal(p.AtoB.Datagrams.Count, (int)p.A.Counters.DatagramsSent);
    }

    [Fact]
    public void LostDatagram_PeerNacks_ResentWithNewSequence_AllArrive()
    {
        var p = new Pair(new FtfwOptions { InitialSequence = 1, Mtu = 576 });
        Handshake(p);
        p.AtoB.Lose = (i, d) => SyncWire.TypeOf(d) == (byte)SyncMessageType.New && p.A.Counters.Resent == 0 && i % 3 == 0;
        for (int i = 0; i < 50; i++)
            p.A.Enqueue(SyncMessageType.New, Conn(i));
        p.A.Flush(p.Now, p.AtoB);
        int lost = p.AtoB.Lost;
        Assert.True(lost >= 1);
        p.Pump();                                        // the gap is seen at the next datagram
        p.Tick(1000);
        Assert.True(p.B.Counters.NacksSent >= 1);
        Assert.True(p.A.Counters.NacksReceived >= 1);
        Assert.True(p.A.Counters.Resent >= 8);
        Assert.Equal(50, p.BReceived.Connections.Select(c => c.Connection.Original).Distinct().Count());
        Assert.True(p.B.Counters.SequenceLost >= 8);
        Assert.False(p.A.Counters.NeedsBulk);
        p.Tick(1000);
        Assert.InRange(p.A.Unacknowledged, 0, 1);        // at most A's own last ACK
    }

    [Fact]
    public void LostMessage_SupersededByALaterOneAboutTheSameConnection_NotResent_PeerKeepsTheNewerState()
    {
        // SYN_SENT is lost, ESTABLISHED arrives: resending SYN_SENT now would overwrite the newer
        // state at the peer (the stale-resend reorder the loopback sync test found).
        var p = new Pair();
        Handshake(p);
        KernelConnection older = Conn(1) with { TcpState = TcpState.SynSent, Status = CtStatus.Confirmed };
        KernelConnection newer = Conn(1);
        p.AtoB.Lose = (_, d) => SyncWire.TypeOf(d) == (byte)SyncMessageType.New;
        p.A.Enqueue(SyncMessageType.New, older);
        p.A.Flush(p.Now, p.AtoB);
        p.AtoB.Lose = null;
        p.A.Enqueue(SyncMessageType.Update, newer);
        p.A.Flush(p.Now, p.AtoB);
        p.Pump();                                        // B sees the gap and NACKs it
        p.Tick(1000);
        p.Tick(1000);
        Assert.True(p.A.Counters.NacksReceived >= 1);
        Assert.Equal(1, p.A.Counters.Superseded);
        Assert.Equal(0, p.A.Counters.Resent);
        Assert.Equal(newer, Assert.Single(p.BReceived.Connections).Connection);
    }

    [Fact]
    public void LostMessage_AboutAnotherConnection_StillResent()
    {
        var p = new Pair();
        Handshake(p);
        p.AtoB.Lose = (_, d) => SyncWire.TypeOf(d) == (byte)SyncMessageType.New;
        p.A.Enqueue(SyncMessageType.New, Conn(1));
        p.A.Flush(p.Now, p.AtoB);
        p.AtoB.Lose = null;
        p.A.Enqueue(SyncMessageType.Update, Conn(2));
        p.A.Flush(p.Now, p.AtoB);
        p.Pump();
        p.Tick(1000);
        p.Tick(1000);
        Assert.Equal(0, p.A.Counters.Superseded);
        Assert.Equal(1, p.A.Counters.Resent);
        Assert.Equal([Conn(2), Conn(1)], p.BReceived.Connections.Select(c => c.Connection));
    }

    [Fact]
    public void LastDatagramLost_NoticedAtTheNextMessage_TimerAliveCarriesIt()
    {
        var p = new Pair();
        Handshake(p);
        p.AtoB.Lose = (_, d) => SyncWire.TypeOf(d) == (byte)SyncMessageType.New;
        p.A.Enqueue(SyncMessageType.New, Conn(1));
        p.A.Flush(p.Now, p.AtoB);
        p.AtoB.Lose = null;
        Assert.Empty(p.BReceived.Connections);
        p.Tick(1000);                                    // A's ALIVE reveals the gap; B NACKs; A resends
        p.Tick(1000);
        Assert.Equal(Conn(1), Assert.Single(p.BReceived.Connections).Connection);
    }

    [Fact]
    public void Tick_AliveWhenIdle_AckWhenSomethingArrived_NothingBeforeTheInterval()
    {
        var p = new Pair();
        p.A.Tick(0, p.AtoB);
        Assert.Equal(SyncWire.FlagAlive | SyncWire.FlagHello, SyncWire.FlagsOf(Assert.Single(p.AtoB.Datagrams)));
        p.AtoB.Take();
        p.A.Tick(999, p.AtoB);
        Assert.Empty(p.AtoB.Datagrams);
        p.A.Tick(1000, p.AtoB);
        Assert.Equal(8, Assert.Single(p.AtoB.Take()).Length);

        p.B.Enqueue(SyncMessageType.New, Conn(1));
        p.B.Flush(1000, p.BtoA);
        foreach (byte[] d in p.BtoA.Take())
            p.A.Receive(d, 1000, p.AReceived, p.AtoB);
        p.AtoB.Take();                                   // A's HELLO_BACK went out with nothing else
        p.A.Tick(2000, p.AtoB);
        byte[] ack = Assert.Single(p.AtoB.Take());
        Assert.Equal(SyncWire.FlagAck, SyncWire.FlagsOf(ack) & ~SyncWire.DataFlags);
        Assert.Equal(16, ack.Length);
        Assert.Equal(9_000u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ack.AsSpan(8)));
        Assert.Equal(9_000u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ack.AsSpan(12)));
    }

    [Fact]
    public void RequestResync_PeerAskedForBulk()
    {
        var p = new Pair();
        p.A.RequestResync(p.AtoB);
        byte[] resync = Assert.Single(p.AtoB.Datagrams);
        Assert.Equal((16, SyncWire.TypeControl), (resync.Length, SyncWire.TypeOf(resync)));
        Assert.Equal(SyncWire.FlagResync, SyncWire.FlagsOf(resync) & SyncWire.FlagResync);
        p.Pump();
        Assert.Equal(1, p.BReceived.ResyncRequests);
        Assert.Equal(0, p.AReceived.ResyncRequests);
    }

    [Fact]
    public void QueueFull_EnqueueRefused_Counted_NeedsBulk()
    {
        var s = new FtfwSession(new FtfwOptions { InitialSequence = 1, QueueLimit = 64 });
        int accepted = 0;
        for (int i = 0; i < 100; i++)
            accepted += s.Enqueue(SyncMessageType.New, Conn(i)) ? 1 : 0;
        Assert.Equal(64 - 16, accepted);                 // 16 slots stay for ACKs and NACKs
        Assert.Equal(100 - accepted, s.Counters.QueueOverflows);
        Assert.True(s.TakeNeedsBulk());
        Assert.False(s.TakeNeedsBulk());
        var fresh = new FtfwSession(new FtfwOptions { InitialSequence = 1, QueueLimit = 64 });
        Assert.False(fresh.Enqueue(SyncMessageType.New, default));
        Assert.Equal((1L, 0L, 0), (fresh.Counters.Unrepresentable, fresh.Counters.QueueOverflows, fresh.Pending));
    }

    [Fact]
    public void ResendQueueFull_OldestPurged_NackForItAsksForBulk()
    {
        var p = new Pair(new FtfwOptions { InitialSequence = 1, QueueLimit = 64 });
        Handshake(p);
        int lose = p.AtoB.Sent;
        p.AtoB.Lose = (i, _) => i == lose;               // B never sees the first datagram
        for (int i = 0; i < 40; i++)
            Assert.True(p.A.Enqueue(SyncMessageType.New, Conn(i)));
        p.A.Flush(p.Now, p.AtoB);
        for (int i = 40; i < 80; i++)
            Assert.True(p.A.Enqueue(SyncMessageType.New, Conn(i)));   // room made by purging unacknowledged ones
        Assert.True(p.A.Counters.ResendPurged > 0);
        Assert.False(p.A.Counters.NeedsBulk);
        p.A.Flush(p.Now, p.AtoB);
        p.Pump();
        Assert.True(p.A.Counters.NacksReceived >= 1);
        Assert.True(p.A.Counters.NeedsBulk);
    }

    [Fact]
    public void ReplayedDatagram_Dropped_NotDeliveredTwice()
    {
        var p = new Pair();
        Handshake(p);
        p.A.Enqueue(SyncMessageType.New, Conn(1));
        p.A.Enqueue(SyncMessageType.New, Conn(2));
        p.A.Flush(p.Now, p.AtoB);
        byte[] d = Assert.Single(p.AtoB.Datagrams);
        p.B.Receive(d, p.Now, p.BReceived, p.BtoA);
        p.B.Receive(d, p.Now, p.BReceived, p.BtoA);
        Assert.Equal(2, p.BReceived.Connections.Count);
        Assert.Equal(2, p.B.Counters.SequenceDelayed);
    }

    [Fact]
    public void Garbage_CountedByReason_NeverThrows()
    {
        var s = new FtfwSession(new FtfwOptions { InitialSequence = 1 });
        var r = new RecordingReceiver();
        var sink = new RecordingSink();
        s.Receive([], 0, r, sink);
        s.Receive([0x1a, 0, 0, 8], 0, r, sink);                              // shorter than a header
        s.Receive([0x1a, 0x08, 0, 8, 0, 0, 0, 1], 0, r, sink);              // ACK without from/to
        s.Receive([0x1a, 0, 0, 4, 0, 0, 0, 1], 0, r, sink);                 // length below 8
        s.Receive([0x2a, 0x10, 0, 8, 0, 0, 0, 1], 0, r, sink);              // version 2
        s.Receive([0x1a, 0x80, 0, 8, 0, 0, 0, 1], 0, r, sink);              // no known flag
        s.Receive([0x1a, 0x08, 0, 16, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 1], 0, r, sink); // to before from
        Assert.Equal(2, s.Counters.Dropped(SyncError.Truncated));
        Assert.Equal(2, s.Counters.Dropped(SyncError.BadLength));
        Assert.Equal(1, s.Counters.Dropped(SyncError.BadVersion));
        Assert.Equal(1, s.Counters.Dropped(SyncError.BadFlags));
        Assert.Equal(1, s.Counters.Dropped(SyncError.BadAckRange));
        Assert.Equal(7, s.Counters.Malformed);
        Assert.Equal([("truncated", 2L), ("bad-length", 2L), ("bad-version", 1L), ("bad-flags", 1L), ("bad-ack-range", 1L)], s.Counters.DropsByReason());
        Assert.False(s.Counters.PeerSeen);
        Assert.Empty(r.Connections);
    }

    [Fact]
    public void PeerRestart_HelloWithLowerSeq_Accepted_ResendQueueForgotten()
    {
        var p = new Pair();
        Handshake(p);
        long hellos = p.A.Counters.PeerHellos;
        int held = p.A.Unacknowledged;
        p.A.Enqueue(SyncMessageType.New, Conn(1));
        p.A.Flush(p.Now, p.AtoB);
        p.AtoB.Take();                                   // lost: B "restarts" before seeing it
        Assert.Equal(held + 1, p.A.Unacknowledged);
        var restarted = new FtfwSession(new FtfwOptions { InitialSequence = 5 });
        restarted.Enqueue(SyncMessageType.New, Conn(9));
        restarted.Flush(p.Now, p.BtoA);
        foreach (byte[] d in p.BtoA.Take())
            p.A.Receive(d, p.Now, p.AReceived, p.AtoB);
        Assert.Equal(Conn(9), Assert.Single(p.AReceived.Connections).Connection);
        Assert.Equal(0, p.A.Unacknowledged);
        Assert.Equal(hellos + 1, p.A.Counters.PeerHellos);
    }

    [Fact]
    public void SteadyState_SendAndReceive_AllocatesNothing()
    {
        var p = new Pair();
        var sink = new CountingSink();
        KernelConnection c = Conn(1);
        byte[] datagram = new byte[1472];
        int length = 0;
        var capture = new CapturingSink(datagram, l => length = l);
        p.A.Enqueue(SyncMessageType.New, c);
        p.A.Flush(0, capture);
        p.B.Receive(datagram.AsSpan(0, length), 0, p.BReceived, sink);
        var quiet = new NullReceiver();
        void Run(int from, int to)
        {
            for (int i = from; i < to; i++)
            {
                p.A.Enqueue(SyncMessageType.Update, c);
                p.A.Enqueue(SyncMessageType.Update, c);
                p.A.Flush(i * 1000L, capture);
                p.B.Receive(datagram.AsSpan(0, length), i * 1000L, quiet, sink);
                p.A.Tick(i * 1000L, sink);
                p.B.Tick(i * 1000L, sink);
            }
        }
        Run(1, 2000);                                    // warm-up: every path jitted
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(2000, 4000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(7998, quiet.Count);
    }

    private sealed class CountingSink : IDatagramSink
    {
        public int Count;

        public void Send(ReadOnlySpan<byte> datagram) => Count++;
    }

    private sealed class CapturingSink(byte[] buffer, Action<int> length) : IDatagramSink
    {
        public void Send(ReadOnlySpan<byte> datagram)
        {
            datagram.CopyTo(buffer);
            length(datagram.Length);
        }
    }

    private sealed class NullReceiver : ISyncReceiver
    {
        public int Count;

        public void OnConnection(SyncMessageType type, in KernelConnection connection) => Count++;

        public void OnResyncRequest()
        {
        }
    }
}
