using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>The expiry feed (<see cref="ConntrackEngine.CollectExpired"/>) that `--reset-on-expiry` reads.</summary>
public class ExpiryFeedTests
{
    private const uint Cisn = 1000, Sisn = 5000;

    private static Harness Flow(Harness? existing = null)
    {
        Harness h = existing ?? new Harness(Harness.With("nf_conntrack_tcp_timeout_established=60"));
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        h.C(Ack, Cisn + 1, Sisn + 1);
        h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        h.S(Ack | Psh, Sisn + 1, Cisn + 101, len: 40);
        h.C(Ack, Cisn + 101, Sisn + 41).Is(CtState.Established, CtDirection.Original, TcpState.Established);
        return h;
    }

    private static List<ExpiredTcpFlow> Drain(ConntrackEngine e)
    {
        var list = new List<ExpiredTcpFlow>();
        while (e.TryTakeExpired(out ExpiredTcpFlow f))
            list.Add(f);
        return list;
    }

    [Fact]
    public void Default_Off_NothingQueued()
    {
        using var h = Flow();
        Assert.False(h.Engine.CollectExpired);
        h.Sleep(61);
        Assert.Equal(1, h.Engine.Maintain(h.Now));
        Assert.False(h.Engine.TryTakeExpired(out _));
        Assert.Equal(0, h.Engine.ExpiredDropped);
    }

    [Fact]
    public void EstablishedExpiry_QueuedWithSequenceState()
    {
        using var h = Flow();
        h.Engine.CollectExpired = true;
        long last = h.Now;
        h.Sleep(61);
        h.Engine.Maintain(h.Now);
        ExpiredTcpFlow f = Assert.Single(Drain(h.Engine));
        Assert.Equal(h.Tuple(IpProto.Tcp, h.ClientPort, h.ServerPort), f.Original);
        Assert.Equal(TcpState.Established, f.State);
        Assert.Equal(Cisn + 101, f.OriginalEnd);   // what the server expects next from the client
        Assert.Equal(Sisn + 41, f.ReplyEnd);       // what the client expects next from the server
        Assert.Equal(Sisn + 41, f.OriginalMaxAck);
        Assert.Equal(Cisn + 101, f.ReplyMaxAck);
        Assert.Equal(last + 60_000, f.ExpiredAtMs);
        Assert.False(h.Engine.TryTakeExpired(out _));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HalfClosedExpiry_Queued(bool serverCloses)
    {
        using var h = Flow();
        h.Engine.CollectExpired = true;
        if (serverCloses)
            h.S(Fin | Ack, Sisn + 41, Cisn + 101).Is(CtState.Established, CtDirection.Reply, TcpState.FinWait);
        else
            h.C(Fin | Ack, Cisn + 101, Sisn + 41).Is(CtState.Established, CtDirection.Original, TcpState.FinWait);
        h.Sleep(121);
        h.Engine.Maintain(h.Now);
        ExpiredTcpFlow f = Assert.Single(Drain(h.Engine));
        Assert.Equal(TcpState.FinWait, f.State);
        Assert.Equal(serverCloses ? Sisn + 42 : Sisn + 41, f.ReplyEnd);
        Assert.Equal(serverCloses ? Cisn + 101 : Cisn + 102, f.OriginalEnd);
    }

    [Fact]
    public void NotQueued_TimeWaitSynSentRstKillFlushAndUdp()
    {
        using var h = Flow();
        h.Engine.CollectExpired = true;
        h.C(Fin | Ack, Cisn + 101, Sisn + 41);
        h.S(Fin | Ack, Sisn + 41, Cisn + 102);
        h.C(Ack, Cisn + 102, Sisn + 42).Is(CtState.Established, CtDirection.Original, TcpState.TimeWait);
        h.ClientPort++;
        h.C(Syn, Cisn, 0); // SYN_SENT, never answered
        h.ClientPort++;
        Flow(h);
        h.C(Rst, Cisn + 101, 0).Is(CtState.Established, CtDirection.Original, TcpState.Close);
        h.ClientPort++;
        Flow(h);
        h.Engine.Flush(h.Now);
        h.Udp(true);
        h.Udp(false);
        h.Sleep(700);
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.Count);
        Assert.Empty(Drain(h.Engine));
    }

    [Fact]
    public void Full_DropsAndCounts_ThenAcceptsAgainOnceDrained()
    {
        using var h = new Harness(Harness.With("nf_conntrack_tcp_timeout_established=60"));
        h.Engine.CollectExpired = true;
        const int Flows = ExpiryFeed.Capacity + 10;
        for (int i = 0; i < Flows; i++)
        {
            h.ClientPort = (ushort)(10000 + i);
            h.C(Syn, Cisn, 0);
            h.S(Syn | Ack, Sisn, Cisn + 1);
            h.C(Ack, Cisn + 1, Sisn + 1);
        }
        h.Sleep(61);
        Assert.Equal(Flows, h.Engine.Maintain(h.Now));
        Assert.Equal(10, h.Engine.ExpiredDropped);
        List<ExpiredTcpFlow> got = Drain(h.Engine);
        Assert.Equal(ExpiryFeed.Capacity, got.Count);
        Assert.Equal(ExpiryFeed.Capacity, got.Select(f => f.Original.SrcId).Distinct().Count());

        h.ClientPort = 9999;
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        h.C(Ack, Cisn + 1, Sisn + 1);
        h.Sleep(61);
        h.Engine.Maintain(h.Now);
        Assert.Equal(9999, Assert.Single(Drain(h.Engine)).Original.SrcId);
        Assert.Equal(10, h.Engine.ExpiredDropped);
    }

    [Fact]
    public void SwitchedOff_StopsQueueing()
    {
        using var h = Flow();
        h.Engine.CollectExpired = true;
        h.Engine.CollectExpired = false;
        Assert.False(h.Engine.CollectExpired);
        h.Sleep(61);
        h.Engine.Maintain(h.Now);
        Assert.False(h.Engine.TryTakeExpired(out _));
    }

    [Fact]
    public void WithRescue_BothTombstoneAndFeed()
    {
        using var h = new Harness(Harness.With("nf_conntrack_tcp_timeout_established=60"), rescue: new RescueOptions { Mode = RescueMode.Tombstone });
        Flow(h);
        h.Engine.CollectExpired = true;
        h.Sleep(61);
        h.Engine.Maintain(h.Now);
        Assert.Single(Drain(h.Engine));
        Assert.Equal(1, h.Engine.RescueStats.TombstonesLive);
    }

    [Fact]
    public void ConsumerOnAnotherThread_ReceivesEveryFlowOnce()
    {
        var feed = new ExpiryFeed();
        const int N = 200_000;
        long sum = 0, count = 0, dropped;
        var consumer = new Thread(() =>
        {
            while (Volatile.Read(ref count) < N)
            {
                if (feed.TryTake(out ExpiredTcpFlow f))
                {
                    sum += f.ExpiredAtMs;
                    Volatile.Write(ref count, count + 1);
                }
                else if (Volatile.Read(ref count) + feed.Dropped >= N)
                {
                    break;
                }
            }
        });
        consumer.Start();
        long expected = 0;
        for (int i = 1; i <= N; i++)
        {
            long before = feed.Dropped;
            feed.Add(new ExpiredTcpFlow(default, TcpState.Established, 0, 0, 0, 0, i));
            if (feed.Dropped == before)
                expected += i;
        }
        consumer.Join();
        dropped = feed.Dropped;
        Assert.Equal(N, count + dropped);
        Assert.Equal(expected, sum);
    }
}
