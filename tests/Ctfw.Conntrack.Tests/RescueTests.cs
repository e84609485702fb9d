using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Rescue of a late FIN/RST after its entry expired (docs/RESCUE.md): tombstones, in-place revival
/// of an expired entry the housekeeper has not reaped yet, loose closing-only entries, and the
/// kernel's behaviour when rescue is off.
/// </summary>
public class RescueTests
{
    private const uint Cisn = 1000, Sisn = 5000;
    private const CtDirection O = CtDirection.Original, R = CtDirection.Reply;

    /// <summary>An ESTABLISHED flow with 100 bytes acknowledged, ESTABLISHED timeout 60 s.</summary>
    private static Harness Idle(RescueMode mode, int window = 120, int maxTombstones = 65536, int looseTimeout = 10)
    {
        var h = new Harness(Harness.With("nf_conntrack_tcp_timeout_established=60"),
            rescue: new RescueOptions { Mode = mode, WindowSeconds = window, MaxTombstones = maxTombstones, LooseTimeoutSeconds = looseTimeout });
        h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);
        h.S(Syn | Ack, Sisn, Cisn + 1).Is(CtState.Established, R, TcpState.SynRecv);
        h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.Established);
        h.C(Ack | Psh, Cisn + 1, Sisn + 1, len: 100).Is(CtState.Established, O, TcpState.Established);
        h.S(Ack, Sisn + 1, Cisn + 101).Is(CtState.Established, R, TcpState.Established);
        Assert.Equal(60, TimeoutSeconds(h));
        return h;
    }

    /// <summary>Lets the entry expire; with <paramref name="reap"/> the housekeeper runs (the tombstone path), else not (in-place revival).</summary>
    private static void Expire(Harness h, bool reap, double seconds = 61)
    {
        h.Sleep(seconds);
        Assert.Null(h.Flow());
        if (reap)
        {
            Assert.Equal(1, h.Engine.Maintain(h.Now));
            Assert.Equal(1, h.Engine.RescueStats.TombstonesLive);
        }
    }

    private static long TimeoutSeconds(Harness h) => h.Flow()!.Value.TimeoutMs / 1000;

    private static void IsRescued(Classification r, CtDirection dir, TcpState tcp)
    {
        r.Is(CtState.Established, dir, tcp);
        Assert.True(r.Rescued);
        Assert.Equal(InvalidReason.None, r.Reason);
    }

    private static void IsPlain(Classification r, CtDirection dir, TcpState tcp)
    {
        r.Is(CtState.Established, dir, tcp);
        Assert.False(r.Rescued);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FittingFin_AfterExpiry_RescuedThenWholeTeardownEstablished(bool reap)
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap);
        Classification fin = h.C(Fin | Ack, Cisn + 101, Sisn + 1);
        IsRescued(fin, O, TcpState.FinWait);
        Assert.Equal(TcpState.Established, fin.PreviousTcpState);
        Assert.Equal(CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed, fin.Status);
        FlowInfo f = h.Flow()!.Value;
        Assert.True(f.Rescued);
        Assert.Equal(CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed, f.Status);
        Assert.Equal(120, TimeoutSeconds(h));
        Assert.Equal(1, h.Engine.Count);

        IsPlain(h.S(Ack, Sisn + 1, Cisn + 102), R, TcpState.CloseWait);
        IsPlain(h.S(Fin | Ack, Sisn + 1, Cisn + 102), R, TcpState.LastAck);
        IsPlain(h.C(Ack, Cisn + 102, Sisn + 2), O, TcpState.TimeWait);
        Assert.Equal(120, TimeoutSeconds(h));

        RescueCounters c = h.Engine.RescueStats;
        Assert.Equal(1, c.RescuedFin);
        Assert.Equal(0, c.RescuedRst);
        Assert.Equal(0, c.TombstonesLive);
        Assert.Equal(reap ? 1 : 0, c.TombstonesStored);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FittingFin_FromReplySide_RescuedInReplyDirection(bool reap)
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap);
        IsRescued(h.S(Fin | Ack, Sisn + 1, Cisn + 101), R, TcpState.FinWait);
        IsPlain(h.C(Ack, Cisn + 101, Sisn + 2), O, TcpState.CloseWait);
        IsPlain(h.C(Fin | Ack, Cisn + 101, Sisn + 2), O, TcpState.LastAck);
        IsPlain(h.S(Ack, Sisn + 2, Cisn + 102), R, TcpState.TimeWait);
        Assert.Equal(ConnTupleOf(h), h.Flow()!.Value.Original); // same tuple as before expiry
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FittingRst_AfterExpiry_RescuedToClose(bool reap)
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap);
        IsRescued(h.C(Rst, Cisn + 101, 0), O, TcpState.Close);
        Assert.Equal(10, TimeoutSeconds(h));
        Assert.Equal(1, h.Engine.RescueStats.RescuedRst);
        h.Sleep(11);
        Assert.Null(h.Flow());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void RstOutsideWindow_Invalid_TombstoneKeptForAFinThatFits(bool reap)
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap);
        Classification rst = h.C(Rst, Cisn + 101 + 5_000_000, 0);
        rst.IsInvalid(InvalidReason.RescueOutOfWindow);
        Assert.False(rst.Rescued);
        Assert.Null(h.Flow());
        h.C(Fin | Ack, Cisn + 101 + 5_000_000, Sisn + 1).IsInvalid(InvalidReason.RescueOutOfWindow);
        RescueCounters c = h.Engine.RescueStats;
        Assert.Equal(2, c.RejectedOutOfWindow);
        Assert.Equal(1, c.TombstonesLive); // without reap, the housekeeping after the RST reaped it

        IsRescued(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void FinAfterTheWindow_InvalidAsTheKernel(bool reap)
    {
        using var h = Idle(RescueMode.Tombstone, window: 30);
        Expire(h, reap);
        h.Sleep(31);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
        h.C(Rst, Cisn + 101, 0).IsInvalid(InvalidReason.TcpInvalidNew);
        RescueCounters c = h.Engine.RescueStats;
        Assert.Equal(0, c.TombstonesLive);
        Assert.Equal(0, c.RescuedFin + c.RescuedRst);
        Assert.Equal(reap ? 1 : 0, c.TombstonesExpired);
    }

    [Fact]
    public void FinJustInsideTheWindow_Rescued()
    {
        using var h = Idle(RescueMode.Tombstone, window: 30);
        Expire(h, reap: true, seconds: 60);
        h.Sleep(30); // expired at +60 s exactly: 30 s after expiry is still inside
        IsRescued(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DataAfterRescuedFin_NeverEstablishedStateNorItsTimeout(bool reap)
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap);
        IsRescued(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
        uint sseq = Sisn + 1;
        for (int i = 0; i < 5; i++)
        {
            Check(h.S(Ack | Psh, sseq, Cisn + 102, len: 200));
            sseq += 200;
            Check(h.C(Ack, Cisn + 102, sseq));
            Check(h.C(Ack | Psh, Cisn + 102, sseq, len: 10)); // data from the side that sent the FIN
            h.Sleep(1);
        }

        static void Check(Classification r) => Assert.NotEqual(TcpState.Established, r.TcpState);
        Assert.NotEqual(TcpState.Established, h.Flow()!.Value.TcpState);
        Assert.True(TimeoutSeconds(h) <= 120);
    }

    [Fact]
    public void DataAfterRescuedFin_TimeoutStaysClosingEveryPacket()
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap: true);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1);
        for (int i = 0; i < 3; i++)
        {
            h.S(Ack | Psh, Sisn + 1 + (uint)(i * 100), Cisn + 102, len: 100);
            FlowInfo f = h.Flow()!.Value;
            Assert.NotEqual(TcpState.Established, f.TcpState);
            Assert.True(f.TimeoutMs <= 120_000, $"timeout {f.TimeoutMs} ms in {f.TcpState}");
        }
    }

    [Fact]
    public void Tombstone_ExpiredInFinWait_LateFinOfPeerRescuedToLastAck()
    {
        using var h = Idle(RescueMode.Tombstone);
        IsPlain(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
        IsPlain(h.S(Ack, Sisn + 1, Cisn + 102), R, TcpState.CloseWait);
        h.Sleep(61); // CLOSE_WAIT: 60 s
        Assert.Null(h.Flow());
        Assert.Equal(1, h.Engine.Maintain(h.Now));
        IsRescued(h.S(Fin | Ack, Sisn + 1, Cisn + 102), R, TcpState.LastAck);
        IsPlain(h.C(Ack, Cisn + 102, Sisn + 2), O, TcpState.TimeWait);
    }

    [Fact]
    public void Tombstone_NotLeftByTimeWaitOrByKill()
    {
        using var h = Idle(RescueMode.Tombstone);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1);
        h.S(Fin | Ack, Sisn + 1, Cisn + 102);
        h.C(Ack, Cisn + 102, Sisn + 2).Is(CtState.Established, O, TcpState.TimeWait);
        h.Sleep(121);
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.RescueStats.TombstonesStored);

        h.ClientPort++;
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn, Cisn + 1);
        h.C(Ack, Cisn + 1, Sisn + 1);
        Assert.Equal(1, h.Engine.Flush(h.Now));
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.RescueStats.TombstonesStored);
        h.C(Fin | Ack, Cisn + 1, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SynRecvExpired_FittingRst_RescuedToClose(bool reap)
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Tombstone });
        h.C(Syn, Cisn, 0);
        h.S(Syn | Ack, Sisn, Cisn + 1).Is(CtState.Established, R, TcpState.SynRecv);
        Expire(h, reap, seconds: 61); // SYN_RECV: 60 s
        IsRescued(h.C(Rst, Cisn + 1, 0), O, TcpState.Close);
    }

    [Fact]
    public void TimeWaitExpiredNotReaped_LateFin_NotRevived()
    {
        using var h = Idle(RescueMode.Tombstone);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1);
        h.S(Fin | Ack, Sisn + 1, Cisn + 102);
        h.C(Ack, Cisn + 102, Sisn + 2).Is(CtState.Established, O, TcpState.TimeWait);
        h.Sleep(121);
        h.S(Fin | Ack, Sisn + 1, Cisn + 102).IsInvalid(InvalidReason.TcpInvalidNew);
        Assert.Equal(0, h.Engine.RescueStats.RescuedFin);
    }

    [Fact]
    public void Tombstone_ConsumedOnce_SecondLateFinFindsTheEntry()
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap: true);
        IsRescued(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
        IsPlain(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.LastAck); // retransmission: the kernel's table
        Assert.Equal(1, h.Engine.RescueStats.RescuedFin);
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void RescuedEntry_ExpiresAgain_LeavesANewTombstone()
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap: true);
        IsRescued(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
        h.Sleep(121);
        Assert.Equal(1, h.Engine.Maintain(h.Now));
        Assert.Equal(2, h.Engine.RescueStats.TombstonesStored);
        IsRescued(h.S(Fin | Ack, Sisn + 1, Cisn + 102), R, TcpState.LastAck);
    }

    [Fact]
    public void Listing_RescuedEntry_PrintsRescuedAfterAssured()
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap: true);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1);
        string line = ConntrackListing.Format(h.Flow()!.Value);
        Assert.Contains(" [ASSURED] [RESCUED] mark=0 use=1", line, StringComparison.Ordinal);
        Assert.StartsWith("tcp      6 120 FIN_WAIT src=10.99.1.2 dst=10.99.2.2 sport=40000 dport=80 ", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Listing_PlainEntry_NoRescuedFlag()
    {
        using var h = Idle(RescueMode.Tombstone);
        Assert.DoesNotContain("RESCUED", ConntrackListing.Format(h.Flow()!.Value), StringComparison.Ordinal);
    }

    [Fact]
    public void Store_Full_OldestEvictedFirstAndCounted()
    {
        using var h = new Harness(Harness.With("nf_conntrack_tcp_timeout_established=60"),
            rescue: new RescueOptions { Mode = RescueMode.Tombstone, MaxTombstones = 2 });
        for (ushort port = 40000; port < 40003; port++)
        {
            h.ClientPort = port;
            h.C(Syn, Cisn, 0);
            h.S(Syn | Ack, Sisn, Cisn + 1);
            h.C(Ack, Cisn + 1, Sisn + 1).Is(CtState.Established, O, TcpState.Established);
            h.Sleep(5);
        }
        // Deadlines at +60, +65, +70 s; expire them one at a time, as the daemon's housekeeper would.
        h.Sleep(58 - 15);
        for (int i = 0; i < 3; i++)
        {
            h.Sleep(5);
            Assert.Equal(1, h.Engine.Maintain(h.Now));
        }
        RescueCounters c = h.Engine.RescueStats;
        Assert.Equal(3, c.TombstonesStored);
        Assert.Equal(1, c.TombstonesEvicted);
        Assert.Equal(2, c.TombstonesLive);

        h.ClientPort = 40000;
        h.C(Fin | Ack, Cisn + 1, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
        h.ClientPort = 40001;
        IsRescued(h.C(Fin | Ack, Cisn + 1, Sisn + 1), O, TcpState.FinWait);
        h.ClientPort = 40002;
        IsRescued(h.C(Rst, Cisn + 1, 0), O, TcpState.Close);
        Assert.Equal(0, h.Engine.RescueStats.TombstonesLive);
    }

    [Fact]
    public void Store_TombstonesTakeNoTableSlot_NewFlowsAdmittedWhenTableFullOfTombstones()
    {
        using var h = new Harness(Harness.With("nf_conntrack_max=4", "nf_conntrack_tcp_timeout_established=60"),
            rescue: new RescueOptions { Mode = RescueMode.Tombstone });
        for (ushort port = 40000; port < 40004; port++)
        {
            h.ClientPort = port;
            h.C(Syn, Cisn, 0);
            h.S(Syn | Ack, Sisn, Cisn + 1);
            h.C(Ack, Cisn + 1, Sisn + 1);
        }
        Assert.Equal(4, h.Engine.Count);
        h.Sleep(61);
        Assert.Equal(4, h.Engine.Maintain(h.Now));
        Assert.Equal(4, h.Engine.RescueStats.TombstonesLive);
        for (ushort port = 50000; port < 50004; port++)
        {
            h.ClientPort = port;
            h.C(Syn, Cisn, 0).Is(CtState.New, O, TcpState.SynSent);
        }
        Assert.Equal(4, h.Engine.Count);
    }

    [Fact]
    public void Store_WindowPassed_TombstoneDroppedAndCountedExpired()
    {
        using var h = Idle(RescueMode.Tombstone, window: 10);
        Expire(h, reap: true, seconds: 60); // expires at exactly +60 s
        h.Sleep(10);
        h.Engine.Maintain(h.Now);
        Assert.Equal(1, h.Engine.RescueStats.TombstonesLive); // exactly 10 s old: still inside
        h.SleepMs(1);
        h.Engine.Maintain(h.Now);
        RescueCounters c = h.Engine.RescueStats;
        Assert.Equal(0, c.TombstonesLive);
        Assert.Equal(1, c.TombstonesExpired);
        Assert.Equal(0, c.TombstonesEvicted);
    }

    [Fact]
    public void Store_ReapedLongAfterExpiry_TombstoneAgedFromTheDeadlineNotTheReaping()
    {
        using var h = Idle(RescueMode.Tombstone, window: 60);
        h.Sleep(100); // expired at +60 s; first housekeeping only at +100 s
        h.Engine.Maintain(h.Now);
        Assert.Equal(1, h.Engine.RescueStats.TombstonesLive);
        h.Sleep(21);  // 61 s after expiry, 21 s after reaping
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
    }

    [Fact]
    public void Store_ReapedAfterTheWholeWindow_NothingStored()
    {
        using var h = Idle(RescueMode.Tombstone, window: 30);
        h.Sleep(100);
        h.Engine.Maintain(h.Now);
        Assert.Equal(default, h.Engine.RescueStats);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
    }

    [Fact]
    public void Off_LateFinAndRst_InvalidAsTheKernelAndNothingKept()
    {
        using var h = Idle(RescueMode.Off);
        Expire(h, reap: false);
        h.Engine.Maintain(h.Now);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
        h.C(Rst, Cisn + 101, 0).IsInvalid(InvalidReason.TcpInvalidNew);
        h.S(Fin | Ack, Sisn + 1, Cisn + 101).IsInvalid(InvalidReason.TcpInvalidNew);
        Assert.Equal(default, h.Engine.RescueStats);
        Assert.Equal(RescueMode.Off, h.Engine.Rescue.Mode);
        Assert.Equal(0, h.Engine.Count);
    }

    [Fact]
    public void Off_ExpiredButNotReaped_LateFinInvalidAsTheKernel()
    {
        using var h = Idle(RescueMode.Off);
        Expire(h, reap: false);
        h.C(Fin | Ack, Cisn + 101, Sisn + 1).IsInvalid(InvalidReason.TcpInvalidNew);
    }

    [Fact]
    public void Tombstone_BareFinWithoutHistory_InvalidAsTheKernel()
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Tombstone });
        h.C(Fin | Ack, Cisn, Sisn).IsInvalid(InvalidReason.TcpInvalidNew);
        h.C(Rst, Cisn, 0).IsInvalid(InvalidReason.TcpInvalidNew);
        Assert.Equal(0, h.Engine.Count);
    }

    [Fact]
    public void Tombstone_LateAckOrData_PickedUpByTheKernelRulesNotRescued()
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap: true);
        Classification r = h.C(Ack | Psh, Cisn + 101, Sisn + 1, len: 10);
        r.Is(CtState.New, O, TcpState.Established);
        Assert.False(r.Rescued);
        Assert.Equal(1, h.Engine.RescueStats.TombstonesLive); // ACKs and data do not look at tombstones
    }

    // ---- loose ----

    [Fact]
    public void Loose_BareFin_ClosingOnlyEntryWithShortTimeout()
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Loose });
        Classification fin = h.C(Fin | Ack, Cisn, Sisn);
        IsRescued(fin, O, TcpState.FinWait);
        Assert.Equal(CtStatus.SeenReply | CtStatus.Confirmed, fin.Status);
        FlowInfo f = h.Flow()!.Value;
        Assert.True(f.Rescued);
        Assert.Equal(CtStatus.SeenReply | CtStatus.Confirmed, f.Status); // not assured: first to go when full
        Assert.Equal(10, TimeoutSeconds(h));
        Assert.Equal(1, h.Engine.RescueStats.RescuedLoose);

        // The rest of the close passes, liberal both ways, still capped at the loose timeout.
        IsPlain(h.S(Ack, Sisn + 123456, Cisn + 1), R, TcpState.CloseWait);
        Assert.True(TimeoutSeconds(h) <= 10);
        IsPlain(h.S(Fin | Ack, Sisn + 123456, Cisn + 1), R, TcpState.LastAck);
        IsPlain(h.C(Ack, Cisn + 1, Sisn + 123457), O, TcpState.TimeWait);
        Assert.True(TimeoutSeconds(h) <= 10);
        h.Sleep(10.001);
        Assert.Null(h.Flow());
    }

    [Fact]
    public void Loose_BareRst_CloseEntry()
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Loose });
        IsRescued(h.C(Rst | Ack, Cisn, Sisn), O, TcpState.Close);
        Assert.Equal(10, TimeoutSeconds(h));
        Assert.Equal(1, h.Engine.RescueStats.RescuedLoose);
        Assert.Equal(0, h.Engine.RescueStats.RescuedRst);
    }

    [Theory]
    [InlineData(Fin | Ack, 3, 3)]
    [InlineData(Rst, 3, 3)]
    [InlineData(Fin | Ack, 30, 30)]   // FIN_WAIT's own timeout is 120 s
    [InlineData(Rst, 30, 10)]         // CLOSE's own timeout is 10 s
    public void Loose_Timeout_IsTheSmallerOfLooseAndState(TcpFlags flags, int loose, int expected)
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Loose, LooseTimeoutSeconds = loose });
        Assert.True(h.C(flags, Cisn, Sisn).Rescued);
        Assert.Equal(expected, TimeoutSeconds(h));
    }

    [Fact]
    public void Loose_SynAckAlone_InvalidAsTheKernel()
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Loose });
        Classification r = h.S(Syn | Ack, Sisn, Cisn + 1);
        r.IsInvalid(InvalidReason.TcpInvalidNew);
        Assert.False(r.Rescued);
        Assert.Equal(0, h.Engine.Count);
        Assert.Equal(0, h.Engine.RescueStats.RescuedLoose);
    }

    [Fact]
    public void Loose_AckAloneAndData_PickedUpAsTheKernelNotRescued()
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Loose });
        Classification ack = h.C(Ack, Cisn, Sisn);
        ack.Is(CtState.New, O, TcpState.Established);
        Assert.False(ack.Rescued);
        h.ClientPort++;
        Classification data = h.C(Ack | Psh, Cisn, Sisn, len: 100);
        data.Is(CtState.New, O, TcpState.Established);
        Assert.False(data.Rescued);
        Assert.Equal(0, h.Engine.RescueStats.RescuedLoose);
    }

    [Fact]
    public void Loose_TombstoneThatDoesNotFit_OutOfWindowNotLoose()
    {
        using var h = Idle(RescueMode.Loose);
        Expire(h, reap: true);
        h.C(Rst, Cisn + 101 + 5_000_000, 0).IsInvalid(InvalidReason.RescueOutOfWindow);
        Assert.Equal(0, h.Engine.RescueStats.RescuedLoose);
        Assert.Null(h.Flow());
    }

    [Fact]
    public void Loose_AfterTheWindow_ClosingOnlyEntry()
    {
        using var h = Idle(RescueMode.Loose, window: 30);
        Expire(h, reap: true);
        h.Sleep(31);
        IsRescued(h.C(Fin | Ack, Cisn + 101, Sisn + 1), O, TcpState.FinWait);
        Assert.Equal(1, h.Engine.RescueStats.RescuedLoose);
        Assert.Equal(CtStatus.SeenReply | CtStatus.Confirmed, h.Flow()!.Value.Status);
    }

    [Fact]
    public void Loose_DeferConfirm_EntryWaitsForTheVerdict()
    {
        using var h = new Harness(rescue: new RescueOptions { Mode = RescueMode.Loose });
        Classification r = h.Send(h.Build(true, Fin | Ack, Cisn, Sisn), new PacketContext { DeferConfirm = true, VerifyChecksums = true });
        Assert.True(r.Rescued);
        Assert.True(r.PendingEntry >= 0);
        Assert.Null(h.Flow());
        h.Worker.Abort(ref r);
        Assert.Equal(0, h.Engine.Count);

        r = h.Send(h.Build(true, Fin | Ack, Cisn, Sisn), new PacketContext { DeferConfirm = true, VerifyChecksums = true });
        h.Worker.Enter();
        Assert.True(h.Worker.Confirm(ref r));
        h.Worker.Exit();
        Assert.Equal(TcpState.FinWait, h.Flow()!.Value.TcpState);
    }

    [Fact]
    public void Tombstone_DeferConfirm_RescuedEntryInsertedAtOnce()
    {
        using var h = Idle(RescueMode.Tombstone);
        Expire(h, reap: true);
        Classification r = h.Send(h.Build(true, Fin | Ack, Cisn + 101, Sisn + 1), new PacketContext { DeferConfirm = true, VerifyChecksums = true });
        Assert.True(r.Rescued);
        Assert.Equal(-1, r.PendingEntry);
        Assert.Equal(TcpState.FinWait, h.Flow()!.Value.TcpState);
    }

    [Fact]
    public void Options_OutOfRange_Refused()
    {
        var s = new ConntrackSettings();
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConntrackEngine(s, 0, rescue: new RescueOptions { Mode = RescueMode.Tombstone, MaxTombstones = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConntrackEngine(s, 0, rescue: new RescueOptions { Mode = RescueMode.Tombstone, WindowSeconds = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConntrackEngine(s, 0, rescue: new RescueOptions { Mode = RescueMode.Loose, LooseTimeoutSeconds = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConntrackEngine(s, 0, rescue: new RescueOptions { Mode = (RescueMode)7 }));
        var defaults = new RescueOptions();
        Assert.Equal(RescueMode.Off, defaults.Mode);
        Assert.Equal(120, defaults.WindowSeconds);
        Assert.Equal(65536, defaults.MaxTombstones);
        Assert.Equal(10, defaults.LooseTimeoutSeconds);
    }

    private static ConnTuple ConnTupleOf(Harness h) => h.Tuple(IpProto.Tcp, h.ClientPort, h.ServerPort);
}
