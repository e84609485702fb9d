using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>What shadow mode and the control socket need from the engine: flush, live settings reload, the state before a packet.</summary>
public class ShadowSupportTests
{
    [Fact]
    public void Flush_KillsEveryEntry_LaterPacketsStartAfresh()
    {
        var h = new Harness();
        for (int i = 0; i < 50; i++)
        {
            h.ClientPort = (ushort)(30_000 + i);
            h.Udp(true).Is(CtState.New, CtDirection.Original);
        }
        Assert.Equal(50, h.Engine.Count);

        int killed = h.Engine.Flush(h.Now);

        Assert.Equal(50, killed);
        Assert.Equal(0, h.Engine.Count);
        Assert.Empty(h.Engine.Snapshot(h.Now));
        h.ClientPort = 30_000;
        h.Udp(false).Is(CtState.New, CtDirection.Original); // the old reply direction is a new flow now
        Assert.Equal(1, h.Engine.Flush(h.Now)); // exactly the one new entry
    }

    [Fact]
    public void CopyRuntimeValuesFrom_ChangesTimeoutsForTheNextPacket_ButNotTheTableSize()
    {
        var live = Harness.With("nf_conntrack_max=1024");
        var h = new Harness(live);
        h.Udp(true);
        var fresh = Harness.With("nf_conntrack_max=99999", "nf_conntrack_udp_timeout=5", "nf_conntrack_tcp_loose=0");

        List<string> changed = live.CopyRuntimeValuesFrom(fresh);

        Assert.Equal(["nf_conntrack_tcp_loose", "nf_conntrack_udp_timeout"], changed.Order(StringComparer.Ordinal));
        Assert.Equal(1024, live.Max);
        Assert.Equal(5, live.UdpTimeout);
        Assert.False(live.TcpLoose);
        h.Udp(true); // refreshed under the new timeout
        FlowInfo flow = Assert.Single(h.Engine.Snapshot(h.Now));
        Assert.InRange(flow.TimeoutMs, 4_000, 5_000);
        Assert.Empty(live.CopyRuntimeValuesFrom(fresh)); // nothing left to change
    }

    [Fact]
    public void PreviousTcpState_IsTheEntryStateBeforeThePacket()
    {
        var h = new Harness();
        Classification syn = h.C(TcpFlags.Syn, 1000, 0);
        Assert.Equal(TcpState.None, syn.PreviousTcpState);
        Assert.Equal(TcpState.SynSent, syn.TcpState);

        Classification synAck = h.S(TcpFlags.Syn | TcpFlags.Ack, 5000, 1001);
        Assert.Equal(TcpState.SynSent, synAck.PreviousTcpState);
        Assert.Equal(TcpState.SynRecv, synAck.TcpState);

        Classification ack = h.C(TcpFlags.Ack, 1001, 5001);
        Assert.Equal(TcpState.SynRecv, ack.PreviousTcpState);
        Assert.Equal(TcpState.Established, ack.TcpState);

        // Rejected before the tracker (bad flags): before and after are the entry's unchanged state.
        Classification bad = h.C(TcpFlags.Syn | TcpFlags.Fin, 1001, 5001);
        Assert.Equal(CtState.Invalid, bad.State);
        Assert.Equal(TcpState.Established, bad.PreviousTcpState);
        Assert.Equal(TcpState.Established, bad.TcpState);
    }
}
