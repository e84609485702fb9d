using System.Runtime.CompilerServices;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>Ages of a flow for half-closed / stalled listings: state since, zero window since per side, FIN seen per side.</summary>
public class FlowAgeTests
{
    private const uint Cisn = 1000, Sisn = 5000;

    private static Harness Handshake()
    {
        var h = new Harness();
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, CtDirection.Original, TcpState.Established);
        return h;
    }

    private static FlowInfo F(Harness h) => h.Flow()!.Value;

    [Fact]
    public void ConnEntry_StillExactly128Bytes() => Assert.Equal(128, Unsafe.SizeOf<ConnEntry>());

    [Fact]
    public void ForEachFlow_VisitsWhatSnapshotLists()
    {
        using Harness h = Handshake();
        h.C(Fin | Ack, Cisn + 1, Sisn + 1); // half-closed
        for (int i = 0; i < 5; i++)
        {
            h.ClientPort = (ushort)(30_000 + i);
            h.Udp(true);
        }
        var visited = new List<FlowInfo>();
        h.Engine.ForEachFlow(h.Now, visited.Add);
        List<FlowInfo> listed = h.Engine.Snapshot(h.Now);
        Assert.Equal(6, listed.Count);
        Assert.Equal(listed.OrderBy(f => f.Original.SrcId), visited.OrderBy(f => f.Original.SrcId));
        Assert.Single(visited, f => f.TcpState == TcpState.FinWait);
    }

    [Fact]
    public void Created_StaysAtTheFirstPacketThroughEveryStateChange()
    {
        using var h = new Harness();
        long t0 = h.Now;
        h.C(Syn, Cisn, 0);
        h.Sleep(1);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        h.Sleep(2);
        h.C(Ack, Cisn + 1, Sisn + 1);
        h.Sleep(3);
        h.C(Fin | Ack, Cisn + 1, Sisn + 1);
        FlowInfo f = F(h);
        Assert.Equal(TcpState.FinWait, f.TcpState);
        Assert.Equal(t0, f.CreatedMs);
        Assert.Equal(t0 + 6000, f.StateSinceMs);

        h.ClientPort = 31_000;
        long tUdp = h.Now;
        h.Udp(true);
        h.Sleep(4);
        h.Udp(false);
        FlowInfo udp = h.Engine.Snapshot(h.Now).Single(x => x.Original.SrcId == 31_000);
        Assert.Equal(tUdp, udp.CreatedMs);
    }

    [Fact]
    public void StateSince_MovesOnEachStateChangeOnly()
    {
        using var h = new Harness();
        long t0 = h.Now;
        h.C(Syn, Cisn, 0);
        Assert.Equal(t0, F(h).StateSinceMs);
        h.Sleep(1);
        h.C(Syn, Cisn, 0); // retransmission: same state
        Assert.Equal(t0, F(h).StateSinceMs);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        Assert.Equal(t0 + 1000, F(h).StateSinceMs);
        h.Sleep(1);
        h.C(Ack, Cisn + 1, Sisn + 1);
        long established = h.Now;
        Assert.Equal(established, F(h).StateSinceMs);
        h.Sleep(5);
        h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        h.S(Ack, Sisn + 1, Cisn + 101);
        Assert.Equal(established, F(h).StateSinceMs);
        h.Sleep(3);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).Is(CtState.Established, CtDirection.Original, TcpState.FinWait);
        Assert.Equal(h.Now, F(h).StateSinceMs);
    }

    [Fact]
    public void StateSince_InvalidPacketDoesNotMoveIt()
    {
        using var h = Handshake();
        long since = F(h).StateSinceMs;
        h.Sleep(2);
        h.C(Fin | Ack, Cisn + 50_000_000, Sisn + 1).IsInvalid(InvalidReason.TcpSeqOverUpperBound);
        Assert.Equal(since, F(h).StateSinceMs);
        Assert.Equal(TcpState.Established, F(h).TcpState);
        Assert.False(F(h).FinSeenOriginal);
    }

    [Fact]
    public void ZeroWindow_PerDirection_SinceFirstZeroUntilReopened()
    {
        using var h = Handshake();
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceOriginal);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceReply);

        h.Sleep(1);
        long t1 = h.Now;
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0);
        Assert.Equal(t1, F(h).ZeroWindowSinceReply);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceOriginal);
        h.Sleep(2);
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0); // still zero: the start stays
        Assert.Equal(t1, F(h).ZeroWindowSinceReply);

        long t2 = h.Now;
        h.C(Ack, Cisn + 1, Sisn + 1, win: 0);
        Assert.Equal(t2, F(h).ZeroWindowSinceOriginal);
        Assert.Equal(t1, F(h).ZeroWindowSinceReply);

        h.Sleep(1);
        h.S(Ack, Sisn + 1, Cisn + 1, win: 1000);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceReply);
        Assert.Equal(t2, F(h).ZeroWindowSinceOriginal);
        h.C(Ack, Cisn + 1, Sisn + 1, win: 500);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceOriginal);

        h.Sleep(1);
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0); // again: a new start
        Assert.Equal(h.Now, F(h).ZeroWindowSinceReply);
    }

    [Fact]
    public void ZeroWindow_SynAndRstWindowsIgnored()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0, win: 0);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceOriginal);
        h.S(Syn | Ack, Sisn, Cisn + 1, win: 0);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceReply);
        h.C(Ack, Cisn + 1, Sisn + 1);
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0);
        long since = F(h).ZeroWindowSinceReply;
        Assert.NotEqual(long.MinValue, since);
        h.Sleep(1);
        h.S(Rst | Ack, Sisn + 1, Cisn + 1, win: 500).Is(CtState.Established, CtDirection.Reply, TcpState.Close);
        Assert.Equal(since, F(h).ZeroWindowSinceReply);
    }

    [Fact]
    public void ZeroWindow_FromAnInvalidPacket_NotRecorded()
    {
        using var h = Handshake();
        h.S(Ack, Sisn + 1, Cisn + 50_000_000, win: 0).IsInvalid(InvalidReason.TcpAckOverUpperBound);
        Assert.Equal(long.MinValue, F(h).ZeroWindowSinceReply);
    }

    [Fact]
    public void ZeroWindow_PickedUpFlow_FirstPacketCounts()
    {
        using var h = new Harness();
        h.C(Ack, Cisn, Sisn, win: 0).Is(CtState.New, CtDirection.Original, TcpState.Established);
        Assert.Equal(h.Now, F(h).ZeroWindowSinceOriginal);
    }

    [Fact]
    public void FinSeen_PerDirection()
    {
        using var h = Handshake();
        Assert.False(F(h).FinSeenOriginal);
        Assert.False(F(h).FinSeenReply);
        h.S(Fin | Ack, Sisn + 1, Cisn + 1).Is(CtState.Established, CtDirection.Reply, TcpState.FinWait);
        Assert.False(F(h).FinSeenOriginal);
        Assert.True(F(h).FinSeenReply);
        h.C(Fin | Ack, Cisn + 1, Sisn + 2).Is(CtState.Established, CtDirection.Original, TcpState.LastAck);
        Assert.True(F(h).FinSeenOriginal);
        Assert.True(F(h).FinSeenReply);
    }

    [Fact]
    public void StalledFinWait_ZeroWindowProbesRefreshButAgeKeepsGrowing()
    {
        // seeds/003: the receiver stopped reading; the closing sender only sends zero-window probes.
        using var h = Handshake();
        h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 1000);
        long zeroAt = h.Now;
        h.S(Ack, Sisn + 1, Cisn + 1001, win: 0);
        for (int i = 0; i < 5; i++)
        {
            h.Sleep(10);
            h.C(Ack, Cisn + 1000, Sisn + 1);          // probe (one byte below snd_nxt)
            h.S(Ack, Sisn + 1, Cisn + 1001, win: 0);  // still closed
        }
        FlowInfo f = F(h);
        Assert.Equal(zeroAt, f.ZeroWindowSinceReply);
        Assert.Equal(50_000, h.Now - f.ZeroWindowSinceReply);
        Assert.False(f.FinSeenOriginal);
    }

    [Fact]
    public void Udp_StateSinceIsCreation_NoTcpAges()
    {
        using var h = new Harness();
        long t0 = h.Now;
        h.Udp(true);
        h.Sleep(1);
        h.Udp(false);
        FlowInfo f = h.UdpFlow()!.Value;
        Assert.Equal(t0, f.StateSinceMs);
        Assert.Equal(long.MinValue, f.ZeroWindowSinceOriginal);
        Assert.False(f.FinSeenOriginal);
        Assert.False(f.Rescued);
    }

    [Fact]
    public void Snapshot_CarriesTheAges()
    {
        using var h = Handshake();
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0);
        FlowInfo f = Assert.Single(h.Engine.Snapshot(h.Now));
        Assert.Equal(h.Now, f.ZeroWindowSinceReply);
        Assert.Equal(F(h), f);
    }

    [Fact]
    public void FlowInfo_PositionalConstruction_DefaultsToNoZeroWindow()
    {
        var f = new FlowInfo(default, default, CtStatus.Confirmed, TcpState.Established, 1000);
        Assert.Equal(long.MinValue, f.ZeroWindowSinceOriginal);
        Assert.Equal(long.MinValue, f.ZeroWindowSinceReply);
        Assert.Equal(0, f.StateSinceMs);
        Assert.False(f.Rescued);
        var g = f with { FinSeenReply = true, StateSinceMs = 5 };
        Assert.True(g.FinSeenReply);
        Assert.Equal(TcpState.Established, g.TcpState);
    }

    [Fact]
    public void ReusedSlot_AgesStartAfresh()
    {
        using var h = Handshake();
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0);
        h.S(Fin | Ack, Sisn + 1, Cisn + 1);
        h.C(Rst, Cisn + 1, 0);
        h.Sleep(20);
        h.Engine.Maintain(h.Now);
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.Count);
        for (int i = 0; i < 3; i++)
        {
            h.ClientPort++;
            h.C(Syn, Cisn, 0);
            FlowInfo f = F(h);
            Assert.Equal(h.Now, f.StateSinceMs);
            Assert.Equal(long.MinValue, f.ZeroWindowSinceReply);
            Assert.False(f.FinSeenReply);
        }
    }
}
