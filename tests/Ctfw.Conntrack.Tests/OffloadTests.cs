using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// The engine's side of offload (issue 15, docs/OFFLOAD.md): which packets nominate their flow, the
/// requests the workers queue, window re-learning after bypassed data, and how the manager's
/// observations keep an offloaded entry alive, count what the kernel forwarded and expire it.
/// </summary>
public class OffloadTests
{
    private const uint Cisn = 1000, Sisn = 5000;
    private const CtDirection O = CtDirection.Original, R = CtDirection.Reply;

    private static Harness Established(long delayMs = 100, params string[] settings)
    {
        var h = new Harness(Harness.With(["nf_conntrack_tcp_timeout_established=60", "nf_conntrack_acct=1", .. settings]), offload: new OffloadPolicy { DelayMs = delayMs });
        h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);
        h.S(Syn | Ack, Sisn, Cisn + 1).Is(CtState.Established, R, TcpState.SynRecv);
        h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.Established);
        return h;
    }

    private static List<OffloadRequest> Drain(Harness h)
    {
        var list = new List<OffloadRequest>();
        h.Engine.Offload!.Drain(list);
        return list;
    }

    private static ConnTuple Orig(Harness h) => h.Tuple(IpProto.Tcp, h.ClientPort, h.ServerPort);

    [Fact]
    public void DataPacket_AfterTheDelay_IsACandidate_AndNominatesOnce()
    {
        using Harness h = Established();
        Classification early = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        Assert.False(early.OffloadCandidate); // ESTABLISHED for 0 ms, the delay is 100 ms

        h.SleepMs(150);
        Classification r = h.S(Ack, Sisn + 1, Cisn + 101);
        Assert.True(r.OffloadCandidate);
        h.Worker.Nominate(ref r, generation: 3);
        Assert.False(r.OffloadCandidate);
        Assert.Equal(CtStatus.Offload, h.Flow()!.Value.Status & CtStatus.Offload);

        OffloadRequest q = Assert.Single(Drain(h));
        Assert.Equal(OffloadRequestKind.Add, q.Kind);
        Assert.Equal(Orig(h), q.Orig);
        Assert.Equal(3, q.Generation);

        // Offloaded: later packets are no candidates and queue nothing.
        Classification again = h.C(Ack | Psh, Cisn + 101, Sisn + 1, len: 100);
        Assert.False(again.OffloadCandidate);
        h.Worker.Nominate(ref again, 3);
        Assert.Empty(Drain(h));
    }

    [Fact]
    public void SynFinRst_AndUnassuredFlows_AreNeverCandidates()
    {
        using Harness h = Established(delayMs: 0);
        // The third ACK made the flow ESTABLISHED and ASSURED; a FIN is no candidate, it goes to ctfw.
        Assert.False(h.C(Fin | Ack, Cisn + 1, Sisn + 1).OffloadCandidate);

        using var u = new Harness(offload: new OffloadPolicy());
        Assert.False(u.Udp(true).OffloadCandidate);     // NEW
        Assert.False(u.Udp(false).OffloadCandidate);    // replied, not ASSURED yet (stream after 2 s)
        u.Sleep(3);
        Assert.True(u.Udp(true).OffloadCandidate);      // ASSURED
    }

    [Fact]
    public void WithoutOffload_NothingIsACandidate()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        h.C(Ack, Cisn + 1, Sisn + 1);
        h.Sleep(1);
        Assert.False(h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 10).OffloadCandidate);
        Assert.Null(h.Engine.Offload);
    }

    [Fact]
    public void OffloadedFlow_LeavingEstablished_QueuesItsRemoval()
    {
        using Harness h = Established(delayMs: 0);
        Classification r = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        h.Worker.Nominate(ref r, 0);
        Drain(h);
        h.S(Ack, Sisn + 1, Cisn + 101); // still ESTABLISHED: nothing
        Assert.Empty(Drain(h));
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).Is(CtState.Established, O, TcpState.FinWait);
        OffloadRequest q = Assert.Single(Drain(h));
        Assert.Equal(OffloadRequestKind.Remove, q.Kind);
        Assert.Equal(Orig(h), q.Orig);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SegmentAheadOfTheWindow_ReLearnsOnlyOnceOffloaded(bool offloaded)
    {
        using Harness h = Established(delayMs: 0);
        Classification r = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        if (offloaded)
            h.Worker.Nominate(ref r, 0);
        // The kernel forwarded 50 MB in each direction that ctfw never saw; then a FIN comes to ctfw.
        const uint Unseen = 50_000_000;
        Classification fin = h.C(Fin | Ack, Cisn + 101 + Unseen, Sisn + 1 + Unseen);
        if (offloaded)
        {
            fin.Is(CtState.Established, O, TcpState.FinWait);
            Assert.Equal(1, h.Engine.Offload!.Relearned);
            // ... and the teardown after it is tracked from the re-learned windows.
            h.S(Fin | Ack, Sisn + 1 + Unseen, Cisn + 102 + Unseen).Is(CtState.Established, R, TcpState.LastAck);
            h.C(Ack, Cisn + 102 + Unseen, Sisn + 2 + Unseen).Is(CtState.Established, O, TcpState.TimeWait);
        }
        else
        {
            Assert.Equal(CtState.Invalid, fin.State);
            Assert.True(fin.Reason is InvalidReason.TcpSeqOverUpperBound or InvalidReason.TcpAckOverUpperBound, fin.Reason.Name());
            Assert.Equal(0, h.Engine.Offload!.Relearned);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FinAfterMoreThan2GiBUnseen_WrapsBehindTheWindow_ReLearnsOnlyOnceOffloaded(bool offloaded)
    {
        using Harness h = Established(delayMs: 0);
        Classification r = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        if (offloaded)
            h.Worker.Nominate(ref r, 0);
        h.S(Ack, Sisn + 1, Cisn + 101);
        // 3 GB forwarded by the kernel: the sequence number wrapped and looks 1.3 GB *behind* ctfw's window.
        const uint Unseen = 3_000_000_000;
        Classification fin = h.C(Fin | Ack, unchecked(Cisn + 101 + Unseen), Sisn + 1);
        if (offloaded)
        {
            fin.Is(CtState.Established, O, TcpState.FinWait);
            Assert.Equal(1, h.Engine.Offload!.Relearned);
        }
        else
        {
            // The kernel's answer for an old FIN: ignored, the flow stays ESTABLISHED.
            Assert.True(fin.Ignored);
            Assert.Equal(TcpState.Established, h.Flow()!.Value.TcpState);
        }
    }

    [Fact]
    public void SegmentBehindTheWindow_StaysInvalid_EvenOffloaded()
    {
        using Harness h = Established(delayMs: 0);
        Classification r = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        h.Worker.Nominate(ref r, 0);
        h.S(Ack, Sisn + 1, Cisn + 101);
        // An old segment far below the window: unseen data never explains it, so it is judged as it
        // would be on a flow that was never offloaded.
        Classification old = h.C(Ack, unchecked(Cisn - 2_000_000_000u), Sisn + 1);
        using Harness plain = Established(delayMs: 0);
        plain.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        plain.S(Ack, Sisn + 1, Cisn + 101);
        Classification reference = plain.C(Ack, unchecked(Cisn - 2_000_000_000u), Sisn + 1);
        Assert.Equal(reference.State, old.State);
        Assert.Equal(reference.Reason, old.Reason);
        Assert.Equal(reference.Ignored, old.Ignored);
        Assert.Equal(0, h.Engine.Offload!.Relearned);
    }

    /// <summary>Nominates the flow and runs the manager's BeginOffload on it.</summary>
    private static OffloadedFlow Offloaded(Harness h)
    {
        Classification r = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        h.Worker.Nominate(ref r, 0);
        OffloadRequest q = Assert.Single(Drain(h));
        var flow = new OffloadedFlow(q.Entry, q.Orig, h.Now);
        Assert.True(h.Engine.BeginOffload(flow, h.Now));
        return flow;
    }

    [Fact]
    public void KernelTraffic_KeepsTheEntryAlive_PastItsOwnTimeout_AndIsCounted()
    {
        using Harness h = Established(delayMs: 0);
        OffloadedFlow flow = Offloaded(h);
        FlowInfo before = h.Flow()!.Value;
        for (int i = 1; i <= 10; i++)
        {
            h.Sleep(20); // 200 s in all, against a 60 s timeout; the kernel forwards packets all along
            OffloadObservation o = h.Engine.ObserveOffloaded(flow, packets0: 100 * i, bytes0: 150_000 * i, packets1: 50 * i, bytes1: 2_600 * i,
                lastKernelPacketMs: h.Now - 5, holdUntil: h.Now + 3000, h.Now);
            Assert.Equal(OffloadObservation.Alive, o);
            h.Engine.Maintain(h.Now);
            Assert.NotNull(h.Flow());
        }
        FlowInfo f = h.Flow()!.Value;
        Assert.Equal(before.PacketsOriginal + 1000, f.PacketsOriginal);
        Assert.Equal(before.BytesOriginal + 1_500_000, f.BytesOriginal);
        Assert.Equal(before.PacketsReply + 500, f.PacketsReply);
        Assert.Equal(CtStatus.Offload, f.Status & CtStatus.Offload);
        Assert.InRange(f.TimeoutMs, 59_000, 60_000); // last kernel packet 5 ms ago + 60 s
    }

    [Fact]
    public void IdleOnBothSides_IsIdle_AndExpiresOnceTheElementsAreOut_WithATombstone()
    {
        var h = new Harness(Harness.With("nf_conntrack_tcp_timeout_established=60"), offload: new OffloadPolicy { DelayMs = 0 },
            rescue: new RescueOptions { Mode = RescueMode.Tombstone });
        using (h)
        {
            h.C(Syn, Cisn, 0);
            h.S(Syn | Ack, Sisn, Cisn + 1);
            h.C(Ack, Cisn + 1, Sisn + 1);
            OffloadedFlow flow = Offloaded(h);
            long lastKernel = h.Now + 5000; // the kernel's last packet, 5 s after the offload
            h.Sleep(30);
            Assert.Equal(OffloadObservation.Alive, h.Engine.ObserveOffloaded(flow, 10, 1000, 10, 1000, lastKernel, h.Now + 3000, h.Now));
            h.Sleep(31); // ctfw's own deadline passed; the kernel's last packet + 60 s has not
            Assert.Equal(OffloadObservation.Alive, h.Engine.ObserveOffloaded(flow, 10, 1000, 10, 1000, lastKernel, h.Now + 3000, h.Now));
            Assert.NotNull(h.Flow());
            h.Sleep(5); // 61 s after the last kernel packet: idle on both sides
            Assert.Equal(OffloadObservation.Idle, h.Engine.ObserveOffloaded(flow, 10, 1000, 10, 1000, lastKernel, h.Now + 3000, h.Now));
            Assert.NotNull(h.Flow()); // still held: the elements are not out yet
            h.Engine.EndOffload(flow);
            Assert.Null(h.Flow());
            int expired = h.Engine.Maintain(h.Now + 10_000);
            Assert.True(1 == h.Engine.RescueStats.TombstonesStored, $"expired {expired}, count {h.Engine.Count}, stored {h.Engine.RescueStats.TombstonesStored}, live {h.Engine.RescueStats.TombstonesLive}"); // expired as any entry: rescue finds it
        }
    }

    [Fact]
    public void EndedFlow_WhoseEntryWasRefreshedByCtfw_KeepsCtfwsDeadline()
    {
        using Harness h = Established(delayMs: 0);
        OffloadedFlow flow = Offloaded(h);
        h.Sleep(10);
        Assert.Equal(OffloadObservation.Alive, h.Engine.ObserveOffloaded(flow, 0, 0, 0, 0, long.MinValue, h.Now + 100_000, h.Now));
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).Is(CtState.Established, O, TcpState.FinWait);
        Assert.Equal(OffloadObservation.Ended, h.Engine.ObserveOffloaded(flow, 0, 0, 0, 0, long.MinValue, h.Now + 100_000, h.Now));
        h.Engine.EndOffload(flow);
        FlowInfo f = h.Flow()!.Value;
        Assert.Equal(CtStatus.None, f.Status & CtStatus.Offload);
        Assert.InRange(f.TimeoutMs, 119_000, 120_000); // FIN_WAIT's 120 s from the FIN, not the hold
    }

    [Fact]
    public void BeginOffload_RefusesAReplacedOrDeadEntry_AndClearsTheBit()
    {
        using Harness h = Established(delayMs: 0);
        Classification r = h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100);
        h.Worker.Nominate(ref r, 0);
        OffloadRequest q = Assert.Single(Drain(h));
        ConnTuple other = q.Orig;
        other.SrcId++;
        Assert.False(h.Engine.BeginOffload(new OffloadedFlow(q.Entry, other, h.Now), h.Now));
        Assert.Equal(CtStatus.Offload, h.Flow()!.Value.Status & CtStatus.Offload); // not its flow: untouched

        h.C(Rst, Cisn + 101, 0); // the flow dies
        Assert.False(h.Engine.BeginOffload(new OffloadedFlow(q.Entry, q.Orig, h.Now), h.Now));
    }

    [Fact]
    public void RefusedFlow_IsNoCandidate_UntilReleased()
    {
        using Harness h = Established(delayMs: 0);
        OffloadedFlow flow = Offloaded(h);
        h.Engine.RefuseOffload(flow);
        Assert.Equal(CtStatus.None, h.Flow()!.Value.Status & CtStatus.Offload); // not listed as offloaded
        Assert.False(h.C(Ack | Psh, Cisn + 101, Sisn + 1, len: 10).OffloadCandidate);
        h.Engine.ReleaseRefusedOffload(flow);
        Assert.True(h.C(Ack | Psh, Cisn + 111, Sisn + 1, len: 10).OffloadCandidate);
    }

    [Fact]
    public void StateFile_DropsOffload_KeepsBypassed()
    {
        Assert.Equal(0u, StateFile.KeptStatus & (uint)CtStatus.Offload);
        Assert.Equal(0u, StateFile.KeptStatus & PrivateStatus.OffloadRefused);
        Assert.NotEqual(0u, StateFile.KeptStatus & PrivateStatus.Bypassed);
    }

    [Fact]
    public void Listing_PrintsOffloadLikeConntrack()
    {
        using Harness h = Established(delayMs: 0);
        Offloaded(h);
        string line = ConntrackListing.Format(h.Flow()!.Value, ListingOptions.None);
        Assert.Contains("[ASSURED] [OFFLOAD]", line, StringComparison.Ordinal);
    }
}
