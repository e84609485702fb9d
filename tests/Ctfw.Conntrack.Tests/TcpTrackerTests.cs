using Ctfw.Conntrack;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>The TCP test vectors of kernel-conntrack.md §4.14, numbered as there.</summary>
public class TcpTrackerTests
{
    private const uint Cisn = 1000, Sisn = 5000;
    private const CtDirection O = CtDirection.Original, R = CtDirection.Reply;

    private static Harness Handshake(bool v6 = false, ConntrackSettings? s = null)
    {
        var h = new Harness(s, v6);
        h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);
        h.S(Syn | Ack, Sisn, Cisn + 1).Is(CtState.Established, R, TcpState.SynRecv);
        h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.Established);
        return h;
    }

    private static long TimeoutSeconds(Harness h) => h.Flow()!.Value.TimeoutMs / 1000;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Vectors1to11_FullLifecycle_MatchesKernel(bool v6)
    {
        using var h = new Harness(v6: v6);
        h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);                       // 1
        Assert.Equal(120, TimeoutSeconds(h));
        Assert.Equal(CtStatus.Confirmed, h.Flow()!.Value.Status);                         // UNREPLIED
        h.Sleep(30);
        h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);                       // 2: not refreshed
        Assert.Equal(90, TimeoutSeconds(h));
        h.S(Syn | Ack, Sisn, Cisn + 1).Is(CtState.Established, R, TcpState.SynRecv);  // 3
        Assert.Equal(60, TimeoutSeconds(h));
        Assert.True(h.Flow()!.Value.Status.HasFlag(CtStatus.SeenReply));
        h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.Established); // 4
        Assert.Equal(432000, TimeoutSeconds(h));
        Assert.True(h.Flow()!.Value.Status.HasFlag(CtStatus.Assured));
        h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100).Is(CtState.Established, O, TcpState.Established); // 5
        Assert.Equal(300, TimeoutSeconds(h));
        h.S(Ack, Sisn + 1, Cisn + 101).Is(CtState.Established, R, TcpState.Established); // 6
        Assert.Equal(432000, TimeoutSeconds(h));
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).Is(CtState.Established, O, TcpState.FinWait); // 7
        Assert.Equal(120, TimeoutSeconds(h));
        h.S(Ack, Sisn + 1, Cisn + 102).Is(CtState.Established, R, TcpState.CloseWait);  // 8
        Assert.Equal(60, TimeoutSeconds(h));
        h.S(Fin | Ack, Sisn + 1, Cisn + 102).Is(CtState.Established, R, TcpState.LastAck); // 9
        Assert.Equal(30, TimeoutSeconds(h));
        h.C(Ack, Cisn + 102, Sisn + 2).Is(CtState.Established, O, TcpState.TimeWait);   // 10
        Assert.Equal(120, TimeoutSeconds(h));
        h.Sleep(1);
        h.C(Syn, 90000, 0).Is(CtState.New, O, TcpState.SynSent);                        // 11: reopen
        Assert.Equal(1, h.Engine.Count);
    }

    [Theory]
    [InlineData(Fin | Ack)]
    [InlineData(Rst)]
    [InlineData(Rst | Ack)]
    [InlineData(Syn | Ack)]
    public void Vectors12_13_16_NoEntryNonSyn_InvalidNew(TcpFlags flags)
    {
        using var h = new Harness();
        h.C(flags, Cisn, Sisn).IsInvalid(InvalidReason.TcpInvalidNew);
        Assert.Equal(0, h.Engine.Count);
    }

    [Fact]
    public void Vector14_NoEntryAck_PickedUpLiberal()
    {
        using var h = new Harness();
        h.C(Ack, Cisn, Sisn, len: 50).Is(CtState.New, O, TcpState.Established);
        Assert.Equal(300, TimeoutSeconds(h));
        // Picked-up flows are liberal both ways: a wildly out-of-window reply is still accepted.
        h.S(Ack, Sisn + 100_000_000, Cisn + 50).Is(CtState.Established, R, TcpState.Established);
        h.C(Ack, Cisn + 50, Sisn + 100_000_000).Is(CtState.Established, O, TcpState.Established);
        Assert.True(h.Flow()!.Value.Status.HasFlag(CtStatus.Assured));
    }

    [Fact]
    public void Vector15_NoEntryAckLooseOff_Invalid()
    {
        using var h = new Harness(Harness.With("nf_conntrack_tcp_loose=0"));
        h.C(Ack, Cisn, Sisn).IsInvalid(InvalidReason.TcpLooseDisabled);
    }

    [Fact]
    public void Vector17_RstAckToSyn_EstablishedAndDeleted()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        h.S(Rst | Ack, 0, Cisn + 1).Is(CtState.Established, R);
        Assert.Null(h.Flow());
    }

    [Fact]
    public void Vector18_ClientRstBeforeReply_NewAndDeleted()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        h.C(Rst, Cisn + 1, 0).Is(CtState.New, O);
        Assert.Null(h.Flow());
    }

    [Theory]
    [InlineData(Syn | Fin)]
    [InlineData(None)]
    [InlineData(Fin)]
    [InlineData(Syn | Ack | Urg)]
    [InlineData(Fin | Urg | Psh)]
    [InlineData(Syn | Rst)]
    public void Vector19_BadFlagCombination_InvalidAndStateUnchanged(TcpFlags flags)
    {
        using Harness h = Handshake();
        h.C(flags, Cisn + 1, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidFlags);
        Assert.Equal(TcpState.Established, h.Flow()!.Value.TcpState);
    }

    [Fact]
    public void EceCwrPsh_AreIgnoredByFlagCheck()
    {
        using Harness h = Handshake();
        h.C(Ack | Psh | Ece | Cwr, Cisn + 1, Sisn + 1, len: 10).Is(CtState.Established, O, TcpState.Established);
    }

    [Fact]
    public void Vector20_OriginalAckInSynSent_Invalid()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        Classification r = h.C(Ack, Cisn + 1, Sisn + 1);
        r.IsInvalid(InvalidReason.TcpInvalidTransition);
        Assert.Equal(TcpState.SynSent, r.TcpState);
    }

    [Fact]
    public void Vector21_ReplyAckInSynSent_IgnoredButSeenReply()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        long before = h.Flow()!.Value.TimeoutMs;
        h.Sleep(5);
        Classification r = h.S(Ack, Sisn, 12345);
        r.Is(CtState.Established, R, TcpState.SynSent);
        Assert.True(r.Ignored);
        FlowInfo f = h.Flow()!.Value;
        Assert.True(f.Status.HasFlag(CtStatus.SeenReply));
        Assert.Equal(before - 5000, f.TimeoutMs);
    }

    [Fact]
    public void Vector22_RstExactMaxAck_Close10s()
    {
        using Harness h = Handshake();
        // The client acked Sisn+1, so the server's RST with seq Sisn+1 is exact.
        h.S(Rst, Sisn + 1, 0).Is(CtState.Established, R, TcpState.Close);
        Assert.Equal(10, TimeoutSeconds(h));
    }

    [Fact]
    public void Vector23_RstBelowMaxAck_InvalidRst()
    {
        using Harness h = Handshake();
        h.S(Rst, Sisn, 0).IsInvalid(InvalidReason.TcpInvalidRst);
        Assert.Equal(TcpState.Established, h.Flow()!.Value.TcpState);
    }

    [Fact]
    public void Vector23_IgnoreInvalidRstSysctl_AcceptsIt()
    {
        // Not INVALID any more, but below max-ack is not exact either: ESTABLISHED stays (for a challenge ACK).
        using Harness h = Handshake(s: Harness.With("nf_conntrack_tcp_ignore_invalid_rst=1"));
        h.S(Rst, Sisn, 0).Is(CtState.Established, R, TcpState.Established);
        Assert.Equal(10, TimeoutSeconds(h));
    }

    [Fact]
    public void Vector24_RstFarOutOfWindow_SeqOverUpperBound()
    {
        using Harness h = Handshake();
        h.S(Rst, Sisn + 10_000_000, 0).IsInvalid(InvalidReason.TcpSeqOverUpperBound);
    }

    [Fact]
    public void Vector25_InexactRstInWindow_StaysEstablishedWithCloseTimeout()
    {
        using Harness h = Handshake();
        h.S(Rst, Sisn + 100, 0).Is(CtState.Established, R, TcpState.Established);
        Assert.Equal(10, TimeoutSeconds(h));
    }

    [Fact]
    public void Vector26_CloseWaitRsts_NoInvalid()
    {
        using Harness h = Handshake();
        h.C(Fin | Ack, Cisn + 1, Sisn + 1);
        h.S(Ack, Sisn + 1, Cisn + 2).Is(CtState.Established, R, TcpState.CloseWait);
        h.S(Rst | Ack, Sisn + 1, Cisn + 2).Is(CtState.Established, R, TcpState.Close);
        h.C(Rst, Cisn + 7777, 0).Is(CtState.Established, O, TcpState.Close);
    }

    [Fact]
    public void Vector27_RetransmitBelowWindow_IgnoredNotRefreshed()
    {
        using Harness h = Handshake();
        uint seq = Cisn + 1;
        for (int i = 0; i < 100; i++)
        {
            h.C(Ack, seq, Sisn + 1, len: 1400);
            seq += 1400;
            h.S(Ack, Sisn + 1, seq);
        }
        long before = h.Flow()!.Value.TimeoutMs;
        h.Sleep(2);
        Classification r = h.C(Ack, Cisn + 1, Sisn + 1, len: 1400);
        r.Is(CtState.Established, O, TcpState.Established);
        Assert.True(r.Ignored);
        Assert.Equal(before - 2000, h.Flow()!.Value.TimeoutMs);
    }

    [Fact]
    public void Vector28_29_StaleSynAckThenRetryHandshake()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn - 3000, Cisn + 500).IsInvalid(InvalidReason.TcpAckOverUpperBound);
        Assert.Equal(TcpState.SynSent, h.Flow()!.Value.TcpState);
        h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);
        h.S(Syn | Ack, Sisn, Cisn + 1).Is(CtState.Established, R, TcpState.SynRecv);
        h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.Established);
        Assert.True(h.Flow()!.Value.Status.HasFlag(CtStatus.Assured));
    }

    [Fact]
    public void Vector30_ChallengeAckInSynSentThenRst_ReopensWithoutInvalid()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        Classification ch = h.S(Ack, 88888, 4242);
        Assert.True(ch.Ignored);
        // The ignored reply set SEEN_REPLY, so the RST (at the challenge ACK's ack: window check
        // skipped) is ESTABLISHED and closes; the next SYN reopens because our side sent the RST.
        h.C(Rst, 4242, 0).Is(CtState.Established, O, TcpState.Close);
        h.C(Syn, Cisn + 100000, 0).Is(CtState.New, O, TcpState.SynSent);
    }

    [Fact]
    public void Vector32_SynInEstablishedThenSynAck_Resyncs()
    {
        using Harness h = Handshake();
        Classification syn = h.C(Syn, 900000, 0);
        syn.Is(CtState.Established, O, TcpState.Established);
        Assert.True(syn.Ignored);
        h.S(Syn | Ack, 700000, 900001).Is(CtState.Established, R, TcpState.SynRecv);
        h.C(Ack, 900001, 700001).Is(CtState.Established, O, TcpState.Established);
    }

    [Fact]
    public void Vector33_ChallengeAckInLastAck_DoesNotCloseToTimeWait()
    {
        using Harness h = Handshake();
        h.S(Fin | Ack, Sisn + 1, Cisn + 1);
        h.C(Fin | Ack, Cisn + 1, Sisn + 2).Is(CtState.Established, O, TcpState.LastAck);
        h.C(Syn, 123456, 0).Is(CtState.Established, O, TcpState.LastAck);
        Classification ack = h.S(Ack, Sisn + 2, Cisn + 2);
        ack.Is(CtState.Established, R, TcpState.LastAck);
        Assert.True(ack.Ignored);
    }

    [Fact]
    public void Vector34_SimultaneousOpen_SynSent2ThenEstablished()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0);
        h.S(Syn, Sisn, 0).Is(CtState.Established, R, TcpState.SynSent2);
        Assert.Equal(120, TimeoutSeconds(h));
        h.C(Syn | Ack, Cisn, Sisn + 1).Is(CtState.Established, O, TcpState.SynRecv);
        h.S(Ack, Sisn + 1, Cisn + 1).Is(CtState.Established, R, TcpState.Established);
    }

    [Fact]
    public void SimultaneousClose_EndsInTimeWait()
    {
        using Harness h = Handshake();
        h.C(Fin | Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.FinWait);
        h.S(Fin | Ack, Sisn + 1, Cisn + 1).Is(CtState.Established, R, TcpState.LastAck);
        h.C(Ack, Cisn + 2, Sisn + 2).Is(CtState.Established, O, TcpState.TimeWait);
        h.S(Ack, Sisn + 2, Cisn + 2).Is(CtState.Established, R, TcpState.TimeWait);
    }

    [Fact]
    public void HalfClose_ServerKeepsSending_CloseWaitThenLastAck()
    {
        using Harness h = Handshake();
        h.C(Fin | Ack, Cisn + 1, Sisn + 1);
        h.S(Ack, Sisn + 1, Cisn + 2).Is(CtState.Established, R, TcpState.CloseWait);
        for (uint i = 0; i < 5; i++)
        {
            h.S(Ack | Psh, Sisn + 1 + (i * 500), Cisn + 2, len: 500).Is(CtState.Established, R, TcpState.CloseWait);
            h.C(Ack, Cisn + 2, Sisn + 1 + ((i + 1) * 500)).Is(CtState.Established, O, TcpState.CloseWait);
        }
        h.S(Fin | Ack, Sisn + 2501, Cisn + 2).Is(CtState.Established, R, TcpState.LastAck);
        h.C(Ack, Cisn + 2, Sisn + 2502).Is(CtState.Established, O, TcpState.TimeWait);
    }

    [Fact]
    public void Expiry_FinAfterEstablishedTimeout_IsInvalidNew()
    {
        using Harness h = Handshake(s: Harness.With("nf_conntrack_tcp_timeout_established=2"));
        h.Sleep(3);
        Assert.Null(h.Flow());
        h.C(Fin | Ack, Cisn + 1, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
        h.S(Rst, Sisn + 1, 0).IsInvalid(InvalidReason.TcpInvalidNew);
        // A plain ACK picks the connection up again, with the server as ORIGINAL if it speaks first.
        h.S(Ack, Sisn + 1, Cisn + 1).Is(CtState.New, O, TcpState.Established);
        Assert.Equal(TcpState.Established, h.Flow()!.Value.TcpState);
        // Both entries (the expired one and the 2 s pickup) are reaped within the wheel's horizon.
        h.Sleep(10);
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.Count);
    }

    [Fact]
    public void AckOverUpperBound_InvalidButLiberalSysctlAccepts()
    {
        using Harness h = Handshake();
        h.C(Ack, Cisn + 1, Sisn + 50_000).IsInvalid(InvalidReason.TcpAckOverUpperBound);
        using Harness liberal = Handshake(s: Harness.With("nf_conntrack_tcp_be_liberal=1"));
        liberal.C(Ack, Cisn + 1, Sisn + 50_000).Is(CtState.Established, O, TcpState.Established);
    }

    [Fact]
    public void WindowScaling_BothSides_AllowsDataBeyondRawWindow()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0, win: 64240, wscale: 7);
        h.S(Syn | Ack, Sisn, Cisn + 1, win: 65160, wscale: 7);
        h.C(Ack, Cisn + 1, Sisn + 1, win: 502);
        // Server advertised 502 << 7 = 64256 bytes at most; 60000 bytes ahead is inside.
        h.S(Ack, Sisn + 1, Cisn + 1, win: 502);
        h.C(Ack, Cisn + 1 + 60000, Sisn + 1, len: 100).Is(CtState.Established, O, TcpState.Established);
    }

    [Fact]
    public void WindowScaling_OnlyOneSide_ScaleIgnored()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0, win: 64240, wscale: 7);
        h.S(Syn | Ack, Sisn, Cisn + 1, win: 1000);   // no wscale from the server
        h.C(Ack, Cisn + 1, Sisn + 1, win: 502);
        // Without scaling the client's window is 502 bytes: data 200000 bytes ahead is beyond.
        h.S(Ack, Sisn + 1 + 200_000, Cisn + 1, len: 10).IsInvalid(InvalidReason.TcpSeqOverUpperBound);
    }

    [Fact]
    public void SackBlocks_RaiseAckForReceiverWithSackPerm()
    {
        using var h = new Harness();
        h.C(Syn, Cisn, 0, sackPerm: true);
        h.S(Syn | Ack, Sisn, Cisn + 1, sackPerm: true);
        h.C(Ack, Cisn + 1, Sisn + 1);
        h.S(Ack, Sisn + 1, Cisn + 1, len: 1000);
        h.S(Ack, Sisn + 2001, Cisn + 1, len: 1000); // hole at 1001..2000
        Classification r = h.C(Ack, Cisn + 1, Sisn + 1001, sack: [Sisn + 2001, Sisn + 3001]);
        r.Is(CtState.Established, O, TcpState.Established);
        // A SACK edge beyond what the server sent is over the upper bound.
        h.C(Ack, Cisn + 1, Sisn + 1001, sack: [Sisn + 2001, Sisn + 9001]).IsInvalid(InvalidReason.TcpAckOverUpperBound);
    }

    [Fact]
    public void MaxRetrans_RepeatedAckCapsTimeout()
    {
        using Harness h = Handshake();
        h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 10);
        for (int i = 0; i < 4; i++)
            h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 10);
        Assert.Equal(300, TimeoutSeconds(h));
    }

    [Fact]
    public void ZeroWindow_CapsTimeoutToRetrans()
    {
        using Harness h = Handshake();
        h.S(Ack, Sisn + 1, Cisn + 1, win: 0).Is(CtState.Established, R, TcpState.Established);
        Assert.Equal(300, TimeoutSeconds(h));
    }

    [Fact]
    public void TimeWait_SynWithoutCloseInitOrRst_IsIgnored()
    {
        // Reach CLOSE through an RST from the server; a server-side SYN (reply dir) in CLOSE is sIV,
        // a client SYN in CLOSE reopens only when the last packet from that side was an RST.
        using Harness h = Handshake();
        h.S(Rst, Sisn + 1, 0).Is(CtState.Established, R, TcpState.Close);
        h.S(Syn, 123, 0).IsInvalid(InvalidReason.TcpInvalidTransition);
        Classification syn = h.C(Syn, 555, 0);
        syn.Is(CtState.Established, O, TcpState.Close);
        Assert.True(syn.Ignored);
    }
}
