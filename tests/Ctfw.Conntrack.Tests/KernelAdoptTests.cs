using System.Globalization;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Switch-over from and back to kernel conntrack: entries as a ctnetlink dump shows them adopted by
/// <see cref="ConntrackEngine.Adopt"/> (kernel-conntrack.md §13.4) and judged from their next packet on,
/// and <see cref="ConntrackEngine.ExportConnections"/> giving back what the kernel would be asked to create.
/// </summary>
public class KernelAdoptTests
{
    private const uint Cseq = 3_000_000_000, Sseq = 7000;
    private const byte WsSack = 0x03;       // WINDOW_SCALE | SACK_PERM
    private const byte MaxAckSet = 0x20;
    private const byte DataUnacked = 0x10;
    private const byte BeLiberal = 0x08;

    private static readonly CtStatus Replied = CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed;

    /// <summary>What the kernel dumps for the harness's client→server TCP connection.</summary>
    private static KernelConnection Tcp(Harness h, TcpState state = TcpState.Established, byte flags0 = WsSack | MaxAckSet | DataUnacked,
        byte flags1 = WsSack | MaxAckSet, byte scale = 7, uint timeout = 431_999, CtStatus? status = null)
    {
        ConnTuple o = h.Tuple(IpProto.Tcp, h.ClientPort, h.ServerPort);
        o.TryInvert(out ConnTuple r);
        return new KernelConnection
        {
            Original = o,
            Reply = r,
            Status = status ?? Replied,
            TimeoutSeconds = timeout,
            TcpState = state,
            WindowScaleOriginal = scale,
            WindowScaleReply = scale,
            TcpFlagsOriginal = flags0,
            TcpFlagsReply = flags1,
        };
    }

    private static KernelConnection Plain(Harness h, byte protocol, ushort srcId, ushort dstId, CtStatus status, uint timeout = 100)
    {
        ConnTuple o = h.Tuple(protocol, srcId, dstId);
        Assert.True(o.TryInvert(out ConnTuple r));
        return new KernelConnection { Original = o, Reply = r, Status = status, TimeoutSeconds = timeout };
    }

    private static AdoptResult Adopt(Harness h, params KernelConnection[] entries)
    {
        AdoptResult r = h.Engine.Adopt(entries, h.Now);
        h.Engine.Maintain(h.Now); // arms them, as the housekeeper's next tick
        Assert.Equal(entries.Length, r.Adopted + r.Skipped);
        return r;
    }

    private static TcpConn TcpOf(Harness h)
    {
        ConnTuple t = h.Tuple(IpProto.Tcp, h.ClientPort, h.ServerPort);
        int idx = h.Engine.Table.Lookup(t, h.Engine.Table.Hash(t), h.Now, out _);
        Assert.True(idx >= 0);
        return h.Engine.Table.Entries[idx].Tcp;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Tcp_AdoptedEstablished_MidStreamSegmentEachDirection_EstablishedEvenWithoutLoose(bool v6, bool serverFirst)
    {
        using var h = new Harness(Harness.With("nf_conntrack_tcp_loose=0"), v6);
        Assert.Equal(1, Adopt(h, Tcp(h)).Adopted);

        Classification c, s;
        if (serverFirst)
        {
            s = h.S(Ack | Psh, Sseq, Cseq, win: 509, len: 300);
            c = h.C(Ack, Cseq, Sseq + 300, win: 502);
        }
        else
        {
            c = h.C(Ack | Psh, Cseq, Sseq, win: 502, len: 100);
            s = h.S(Ack, Sseq, Cseq + 100, win: 509);
        }

        c.Is(CtState.Established, CtDirection.Original, TcpState.Established);
        s.Is(CtState.Established, CtDirection.Reply, TcpState.Established);
        Assert.False(c.Ignored);
        Assert.False(s.Ignored);
        Assert.Equal(Replied, s.Status);
    }

    [Fact]
    public void Tcp_NotAdopted_SameSegmentsInvalidWithoutLoose()
    {
        // The oracle for the test above: without the adopted entry, tcp_loose=0 refuses the pickup.
        using var h = new Harness(Harness.With("nf_conntrack_tcp_loose=0"));
        h.C(Ack | Psh, Cseq, Sseq, win: 502, len: 100).IsInvalid(InvalidReason.TcpLooseDisabled);
    }

    [Fact]
    public void Tcp_Adopted_WindowsZeroFlagsPortableLastIndexNone()
    {
        using var h = new Harness();
        Adopt(h, Tcp(h, flags0: WsSack | MaxAckSet | DataUnacked | 0x04, flags1: 0xFF));

        TcpConn t = TcpOf(h);
        Assert.Equal(TcpState.Established, t.State);
        Assert.Equal(0u, t.Seen0.TdMaxWin);
        Assert.Equal(0u, t.Seen1.TdMaxWin);
        Assert.Equal(0u, t.Seen0.TdEnd | t.Seen0.TdMaxEnd | t.Seen0.TdMaxAck | t.Seen1.TdEnd | t.Seen1.TdMaxEnd | t.Seen1.TdMaxAck);
        Assert.Equal((byte)(WsSack | 0x04), t.Flags0);
        Assert.Equal(KernelConnection.PortableTcpFlags, t.Flags1);
        Assert.Equal(7, t.Scale0);
        Assert.Equal(7, t.Scale1);
        Assert.Equal(TcpTracker.IdxNone, t.LastIndex);
    }

    [Fact]
    public void Tcp_AdoptedAfterWindowsLearned_FarOutOfWindowInvalid_InWindowStillEstablished()
    {
        using var h = new Harness(Harness.With("nf_conntrack_tcp_loose=0"));
        Adopt(h, Tcp(h));
        h.C(Ack | Psh, Cseq, Sseq, win: 502, len: 100).Is(CtState.Established, CtDirection.Original, TcpState.Established);
        h.S(Ack, Sseq, Cseq + 100, win: 509).Is(CtState.Established, CtDirection.Reply, TcpState.Established);

        h.C(Ack | Psh, Cseq + 1_000_000_000, Sseq, win: 502, len: 100).IsInvalid(InvalidReason.TcpSeqOverUpperBound);
        h.S(Ack | Psh, Sseq, Cseq + 100, win: 509, len: 1000).Is(CtState.Established, CtDirection.Reply, TcpState.Established);
        h.C(Ack, Cseq + 100, Sseq + 2_000_000_000, win: 502).IsInvalid(InvalidReason.TcpAckOverUpperBound);
        h.C(Ack | Psh, Cseq + 100, Sseq + 1000, win: 502, len: 100).Is(CtState.Established, CtDirection.Original, TcpState.Established);
    }

    [Fact]
    public void Tcp_AdoptedBeLiberal_FarOutOfWindowAccepted()
    {
        // BE_LIBERAL carries over: the same far segment the test above finds INVALID passes.
        using var h = new Harness(Harness.With("nf_conntrack_tcp_loose=0"));
        Adopt(h, Tcp(h, flags0: WsSack | BeLiberal, flags1: WsSack | BeLiberal));
        h.C(Ack | Psh, Cseq, Sseq, win: 502, len: 100);
        h.S(Ack, Sseq, Cseq + 100, win: 509);
        h.C(Ack | Psh, Cseq + 1_000_000_000, Sseq, win: 502, len: 100).Is(CtState.Established, CtDirection.Original, TcpState.Established);
    }

    [Fact]
    public void Tcp_AdoptedWithMaxAckSet_Cleared_FirstRstNotComparedAgainstZeroMaxAck()
    {
        // Kept, MAXACK_SET would make this RST's seq (in the half "before" 0) an invalid RST (§4.6):
        // td_maxack is 0 in an adopted entry. Cleared, the RST initialises the window and closes.
        using var h = new Harness();
        Adopt(h, Tcp(h, flags0: WsSack | MaxAckSet, flags1: WsSack | MaxAckSet));
        h.S(Rst | Ack, 0x9000_0000, Cseq, win: 0).Is(CtState.Established, CtDirection.Reply, TcpState.Close);
    }

    [Fact]
    public void Tcp_AdoptedFinWait_FinSeenOfCloserListedAndCloseContinues()
    {
        using var h = new Harness();
        Adopt(h, Tcp(h, state: TcpState.FinWait, flags0: WsSack | 0x04, timeout: 100));
        FlowInfo f = h.Flow()!.Value;
        Assert.True(f.FinSeenOriginal);
        Assert.False(f.FinSeenReply);
        Assert.Equal(100_000, f.TimeoutMs);

        h.S(Ack, Sseq, Cseq + 1, win: 509).Is(CtState.Established, CtDirection.Reply, TcpState.CloseWait);
        h.S(Fin | Ack, Sseq, Cseq + 1, win: 509).Is(CtState.Established, CtDirection.Reply, TcpState.LastAck);
        h.C(Ack, Cseq + 1, Sseq + 1, win: 502).Is(CtState.Established, CtDirection.Original, TcpState.TimeWait);
    }

    [Fact]
    public void Udp_AdoptedAssured_ReplyEstablishedWithStreamTimeout()
    {
        using var h = new Harness();
        Adopt(h, Plain(h, IpProto.Udp, h.ClientPort, h.ServerPort, Replied, timeout: 90));
        Assert.Equal(90_000, h.UdpFlow()!.Value.TimeoutMs);

        Classification r = h.Udp(false);
        r.Is(CtState.Established, CtDirection.Reply);
        Assert.Equal(Replied, r.Status);
        Assert.Equal(h.Engine.Settings.UdpTimeoutStream * 1000L, h.UdpFlow()!.Value.TimeoutMs);
        h.Udp(true).Is(CtState.Established, CtDirection.Original);
    }

    [Fact]
    public void Udp_AdoptedRepliedNotAssured_TwoSecondsOfANewFlowBeforeAssured()
    {
        using var h = new Harness();
        Adopt(h, Plain(h, IpProto.Udp, h.ClientPort, h.ServerPort, CtStatus.SeenReply | CtStatus.Confirmed, timeout: 20));
        Classification r = h.Udp(true);
        r.Is(CtState.Established, CtDirection.Original);
        Assert.Equal(CtStatus.SeenReply | CtStatus.Confirmed, r.Status);
        Assert.Equal(h.Engine.Settings.UdpTimeout * 1000L, h.UdpFlow()!.Value.TimeoutMs);
        h.Sleep(3);
        Assert.Equal(Replied, h.Udp(true).Status);
    }

    [Fact]
    public void Udp_AdoptedUnreplied_FirstReplyEstablished_OriginalStaysNewUntilThen()
    {
        using var h = new Harness();
        Adopt(h, Plain(h, IpProto.Udp, h.ClientPort, h.ServerPort, CtStatus.Confirmed, timeout: 25));
        h.Udp(true).Is(CtState.New, CtDirection.Original);
        h.Udp(false).Is(CtState.Established, CtDirection.Reply);
        h.Udp(true).Is(CtState.Established, CtDirection.Original);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Icmp_AdoptedEchoRequest_ReplyEstablished(bool v6)
    {
        using var h = new Harness(v6: v6);
        byte request = v6 ? (byte)128 : (byte)8, reply = v6 ? (byte)129 : (byte)0;
        Assert.Equal(1, Adopt(h, Plain(h, v6 ? IpProto.Icmpv6 : IpProto.Icmp, 7, (ushort)(request << 8), CtStatus.Confirmed, timeout: 29)).Adopted);
        h.Icmp(false, reply).Is(CtState.Established, CtDirection.Reply);
    }

    [Fact]
    public void Generic_AdoptedEsp_BothDirectionsEstablished()
    {
        using var h = new Harness();
        Assert.Equal(1, Adopt(h, Plain(h, IpProto.Esp, 0, 0, Replied & ~CtStatus.Assured, timeout: 500)).Adopted);
        h.Generic(true, IpProto.Esp).Is(CtState.Established, CtDirection.Original);
        h.Generic(false, IpProto.Esp).Is(CtState.Established, CtDirection.Reply);
    }

    [Fact]
    public void Nat_ReplyNotTheInverse_Skipped_NatBitsAlone_Skipped()
    {
        using var h = new Harness();
        KernelConnection dnat = Tcp(h);
        ConnTuple reply = dnat.Reply;
        reply.Src = IpAddress.FromV4(0x0A630309); // the server the kernel translated to
        reply.SrcId = 8080;
        dnat = dnat with { Reply = reply, Status = Replied | KernelStatus.DstNat | KernelStatus.DstNatDone };
        h.ClientPort++;
        KernelConnection bitsOnly = Tcp(h) with { Status = Replied | KernelStatus.SrcNat };
        h.ClientPort++;
        KernelConnection nullBinding = Tcp(h) with { Status = Replied | KernelStatus.SrcNatDone | KernelStatus.DstNatDone };

        AdoptResult r = Adopt(h, dnat, bitsOnly, nullBinding);

        Assert.Equal(2, r.Nat);
        Assert.Equal(1, r.Adopted); // a NAT null binding (NAT_DONE without a translation) is plain conntrack
        Assert.Equal(1, h.Engine.Count);
        Assert.Equal(Replied, h.Flow()!.Value.Status); // NAT_DONE dropped
    }

    [Fact]
    public void Duplicate_OfferedTwiceOrAlreadyTracked_SkippedAndCounted()
    {
        using var h = new Harness();
        h.ClientPort = 41000;
        h.C(Syn, Cseq, 0, wscale: 7).Is(CtState.New, CtDirection.Original, TcpState.SynSent);
        KernelConnection tracked = Tcp(h);
        h.ClientPort = 41001;
        KernelConnection fresh = Tcp(h);
        ConnTuple swapped = fresh.Reply;
        KernelConnection replyAsOriginal = fresh with { Original = swapped, Reply = fresh.Original };

        AdoptResult r = Adopt(h, fresh, tracked, fresh, replyAsOriginal);

        Assert.Equal(1, r.Adopted);
        Assert.Equal(3, r.Duplicates);
        Assert.Equal(2, h.Engine.Count);
        h.ClientPort = 41000;
        Assert.Equal(TcpState.SynSent, h.Flow()!.Value.TcpState); // the tracked entry was not replaced
        Assert.Contains("3 duplicates", r.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OverMax_AdoptsUpToMaxWithoutEarlyDrop()
    {
        using var h = new Harness(Harness.With("nf_conntrack_max=3"));
        h.ClientPort = 30000;
        h.Udp(true); // unassured: early drop would take it
        var offered = new List<KernelConnection>();
        for (ushort p = 31000; p < 31004; p++)
            offered.Add(Plain(h, IpProto.Udp, p, 53, CtStatus.Confirmed, timeout: 20));

        AdoptResult r = Adopt(h, [.. offered]);

        Assert.Equal(2, r.Adopted);
        Assert.Equal(2, r.OverLimit);
        Assert.Equal(3, h.Engine.Count);
        Assert.NotNull(h.Flow(h.Tuple(IpProto.Udp, 30000, h.ServerPort)));
        Assert.Equal(0, h.Engine.EarlyDrops);
    }

    public static TheoryData<string, int> Refused => new()
    {
        { "zero-timeout", 0 },
        { "fixed-timeout", 1 },
        { "offload", 1 },
        { "hw-offload", 1 },
        { "dying", 1 },
        { "template", 1 },
        { "nat-clash", 1 },
        { "unknown-bit", 1 },
        { "tcp-state-none", 1 },
        { "tcp-state-max", 1 },
        { "wscale-15", 1 },
        { "directional-zone", 1 },
        { "ip-version-5", 1 },
        { "icmp-reply-type", 1 },
        { "sctp-state-none", 1 },
        { "sctp-state-9", 1 },
        { "dccp", 2 },
        { "gre-keys", 2 },
        { "icmp-no-inverse", 2 },
        { "icmpv4-in-v6", 2 },
        { "seq-adjust", 3 },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void Refused_EntryLeftOutUnderItsReason(string what, int reason)
    {
        using var h = new Harness(v6: what == "icmpv4-in-v6");
        KernelConnection c = what switch
        {
            "zero-timeout" => Tcp(h, timeout: 0),
            "fixed-timeout" => Tcp(h, status: Replied | CtStatus.FixedTimeout),
            "offload" => Tcp(h, status: Replied | KernelStatus.Offload, timeout: 0),
            "hw-offload" => Tcp(h, status: Replied | KernelStatus.HwOffload),
            "dying" => Tcp(h, status: Replied | CtStatus.Dying),
            "template" => Tcp(h, status: Replied | KernelStatus.Template),
            "nat-clash" => Plain(h, IpProto.Udp, 1, 2, Replied | KernelStatus.NatClash),
            "unknown-bit" => Tcp(h, status: Replied | (CtStatus)(1u << 16)),
            "tcp-state-none" => Tcp(h, state: TcpState.None),
            "tcp-state-max" => Tcp(h, state: TcpState.Max),
            "wscale-15" => Tcp(h, scale: 15),
            "directional-zone" => Tcp(h) with { Original = Tcp(h).Original with { Zone = 5 } },
            "ip-version-5" => Tcp(h) with { Original = Tcp(h).Original with { IpVersion = 5 }, Reply = Tcp(h).Reply with { IpVersion = 5 } },
            "icmp-reply-type" => Plain(h, IpProto.Icmp, 7, 0 << 8, CtStatus.Confirmed),
            "sctp-state-none" => Plain(h, IpProto.Sctp, 5000, 5001, Replied),
            "sctp-state-9" => Plain(h, IpProto.Sctp, 5000, 5001, Replied) with { SctpState = SctpState.Max },
            "dccp" => Plain(h, 33, 5000, 5001, Replied),
            "gre-keys" => Plain(h, IpProto.Gre, 0x10, 0x20, Replied),
            "icmp-no-inverse" => new KernelConnection { Original = h.Tuple(IpProto.Icmp, 7, 9 << 8), Reply = h.Tuple(IpProto.Icmp, 7, 9 << 8), TimeoutSeconds = 30 },
            "icmpv4-in-v6" => Plain(h, IpProto.Icmp, 7, 8 << 8, CtStatus.Confirmed),
            "seq-adjust" => Tcp(h, status: Replied | KernelStatus.SeqAdjust),
            _ => throw new ArgumentOutOfRangeException(nameof(what)),
        };

        AdoptResult r = Adopt(h, c);

        Assert.Equal(0, r.Adopted);
        Assert.Equal(0, h.Engine.Count);
        int got = r.ZeroTimeout == 1 ? 0 : r.Unrepresentable == 1 ? 1 : r.UnsupportedProtocol == 1 ? 2 : r.Nat == 1 ? 3 : -1;
        Assert.True(reason == got, $"{what}: {r.Message}");
    }

    [Fact]
    public void UnknownHelperAndMark_AdoptedWithoutThem_Counted()
    {
        using var h = new Harness();
        KernelConnection sip = Tcp(h) with { Helper = "sip", Mark = 0x42, Status = Replied | KernelStatus.Helper };
        AdoptResult r = Adopt(h, sip);
        Assert.Equal(1, r.Adopted);
        Assert.Equal(1, r.HelpersDropped);
        Assert.Equal(1, r.MarksDropped);
        Assert.Equal(Replied, h.Flow()!.Value.Status);
        Assert.Equal(CtHelper.None, h.Flow()!.Value.Helper);
        Assert.Contains("1 lost their helper, 1 their mark", r.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FtpHelper_Adopted_KeptListedAndExported()
    {
        using var h = new Harness();
        AdoptResult r = Adopt(h, Tcp(h) with { Helper = "ftp", Status = Replied | KernelStatus.Helper });
        Assert.Equal(1, r.Adopted);
        Assert.Equal(0, r.HelpersDropped);
        FlowInfo f = h.Flow()!.Value;
        Assert.Equal(CtHelper.Ftp, f.Helper);
        Assert.EndsWith(" [ASSURED] mark=0 helper=ftp use=1", ConntrackListing.Format(f), StringComparison.Ordinal);
        Assert.Equal("ftp", Assert.Single(h.Engine.ExportConnections(h.Now)).Helper);
    }

    [Fact]
    public void FtpHelper_OnUdp_Dropped()
    {
        using var h = new Harness();
        AdoptResult r = Adopt(h, Plain(h, IpProto.Udp, 1000, 21, Replied) with { Helper = "ftp" });
        Assert.Equal(1, r.HelpersDropped);
        Assert.Equal(CtHelper.None, h.Engine.Snapshot(h.Now)[0].Helper);
    }

    [Fact]
    public void Sctp_Adopted_StateAndVtagsKeptAndExported()
    {
        using var h = new Harness();
        KernelConnection c = Plain(h, IpProto.Sctp, 5000, 5001, Replied, timeout: 210) with
        {
            SctpState = SctpState.Established,
            SctpVtagOriginal = 0x11223344,
            SctpVtagReply = 0xA1B2C3D4,
        };
        Assert.Equal(1, Adopt(h, c).Adopted);
        FlowInfo f = Assert.Single(h.Engine.Snapshot(h.Now));
        Assert.Equal(SctpState.Established, f.SctpState);
        Assert.Equal(0x11223344u, f.SctpVtagOriginal);
        Assert.Equal(0xA1B2C3D4u, f.SctpVtagReply);
        KernelConnection back = Assert.Single(h.Engine.ExportConnections(h.Now));
        Assert.Equal((c.SctpState, c.SctpVtagOriginal, c.SctpVtagReply), (back.SctpState, back.SctpVtagOriginal, back.SctpVtagReply));
    }

    [Fact]
    public void Expected_WithMaster_MasterKeptAndExportedAfterIt()
    {
        using var h = new Harness();
        KernelConnection master = Tcp(h) with { Helper = "ftp" };
        ConnTuple dataTuple = h.Tuple(IpProto.Tcp, 20, 50000);
        dataTuple.TryInvert(out ConnTuple dataReply);
        var data = new KernelConnection
        {
            Original = dataTuple,
            Reply = dataReply,
            Status = CtStatus.Expected | CtStatus.Confirmed,
            TimeoutSeconds = 120,
            TcpState = TcpState.SynSent,
            Master = master.Original,
        };
        // Offered after its master (as ExportConnections orders them): it learns the master's helper.
        Assert.Equal(2, Adopt(h, master, data).Adopted);
        int idx = h.Engine.Table.Lookup(dataTuple, h.Engine.Table.Hash(dataTuple), h.Now, out _);
        Assert.Equal(CtHelper.Ftp, h.Engine.Table.Helpers![idx].MasterHelper);
        FlowInfo related = h.Engine.Snapshot(h.Now).Single(f => f.Original == dataTuple);
        Assert.Equal(master.Original, related.Master);
        Assert.Contains(" master-src=", ConntrackListing.Format(related), StringComparison.Ordinal);
        List<KernelConnection> exported = h.Engine.ExportConnections(h.Now);
        Assert.Equal([master.Original, dataTuple], exported.Select(c => c.Original)); // masters first, whatever the bucket order
        Assert.Equal(master.Original, exported[1].Master);
        Assert.Null(exported[0].Master);

        // Offered the other way round: the export still lists the master first.
        using var h2 = new Harness();
        Assert.Equal(2, Adopt(h2, data, master).Adopted);
        Assert.Equal([master.Original, dataTuple], h2.Engine.ExportConnections(h2.Now).Select(c => c.Original));
    }

    [Fact]
    public void Expected_Adopted_OriginalRelatedUntilReply()
    {
        using var h = new Harness();
        Adopt(h, Plain(h, IpProto.Udp, h.ClientPort, h.ServerPort, CtStatus.Expected | CtStatus.Confirmed, timeout: 30));
        h.Udp(true).Is(CtState.Related, CtDirection.Original);
        h.Udp(false).Is(CtState.Established, CtDirection.Reply);
    }

    [Fact]
    public void Export_TimeoutRoundedUpStatusAsKernelShowsIt()
    {
        using var h = new Harness();
        h.C(Syn, Cseq, 0, wscale: 7, sackPerm: true);
        h.S(Syn | Ack, Sseq, Cseq + 1, wscale: 6, sackPerm: true);
        h.C(Ack, Cseq + 1, Sseq + 1, win: 502);
        h.SleepMs(1_500);

        KernelConnection k = Assert.Single(h.Engine.ExportConnections(h.Now));

        Assert.Equal(h.Tuple(IpProto.Tcp, h.ClientPort, h.ServerPort), k.Original);
        Assert.Equal(k.Original.Src, k.Reply.Dst);
        Assert.Equal(Replied, k.Status);
        Assert.Equal(TcpState.Established, k.TcpState);
        Assert.Equal(7, k.WindowScaleOriginal);
        Assert.Equal(6, k.WindowScaleReply);
        Assert.Equal(WsSack, k.TcpFlagsOriginal); // MAXACK_SET set in the engine, not exported
        Assert.Equal(WsSack, k.TcpFlagsReply);
        Assert.Equal((uint)(h.Engine.Settings.TcpTimeout(TcpState.Established) - 1), k.TimeoutSeconds); // 431998.5 s up → 431999
        Assert.True((TcpOf(h).Flags0 & MaxAckSet) != 0);
    }

    [Fact]
    public void Export_LastMillisecond_AtLeastOneSecond()
    {
        using var h = new Harness(Harness.With("nf_conntrack_udp_timeout=2"));
        h.Udp(true);
        h.SleepMs(1_999);
        Assert.Equal(1u, Assert.Single(h.Engine.ExportConnections(h.Now)).TimeoutSeconds);
        h.SleepMs(1);
        Assert.Empty(h.Engine.ExportConnections(h.Now));
    }

    [Fact]
    public void ExportThenAdopt_RoundTrip_TuplesStateFlagsTimeoutsKept()
    {
        using var a = new Harness();
        a.C(Syn, Cseq, 0, wscale: 7, sackPerm: true);
        a.S(Syn | Ack, Sseq, Cseq + 1, wscale: 9, sackPerm: true);
        a.C(Ack, Cseq + 1, Sseq + 1, win: 502);
        a.C(Fin | Ack, Cseq + 1, Sseq + 1, win: 502);                       // FIN_WAIT, CLOSE_INIT on ORIGINAL
        a.ClientPort = 40001;
        a.C(Syn, Cseq, 0);                                                   // SYN_SENT, unreplied
        a.Udp(true);
        a.Udp(false);
        a.Sleep(3);
        a.Udp(true);                                                         // ASSURED
        a.Icmp(true, 8);
        a.Send(a.UdpBytes(true), new PacketContext { VerifyChecksums = true, Zone = 9 });
        a.V6 = true;
        a.ClientPort = 40002;
        a.C(Syn, Cseq, 0, wscale: 2);
        a.S(Syn | Ack, Sseq, Cseq + 1, wscale: 3);
        a.Icmp(true, 128);
        a.Generic(true, IpProto.Gre);
        a.Sleep(0.3);
        List<KernelConnection> exported = a.Engine.ExportConnections(a.Now);
        Assert.Equal(a.Engine.Count, exported.Count);

        using var b = new Harness { Now = 55_000_000 };
        AdoptResult r = b.Engine.Adopt(exported, b.Now);
        b.Engine.Maintain(b.Now);

        Assert.Equal(exported.Count, r.Adopted);
        Assert.Equal(Describe(exported), Describe(b.Engine.ExportConnections(b.Now)));
        Assert.Contains(exported, k => k.TcpState == TcpState.FinWait && (k.TcpFlagsOriginal & 0x04) != 0);
        Assert.Contains(exported, k => k.Original.Zone == 9);
    }

    private static List<string> Describe(List<KernelConnection> list) => list
        .Select(k => string.Create(CultureInfo.InvariantCulture,
            $"{k.Original}|{k.Original.Zone}|{k.Reply}|{k.Reply.Zone}|{k.Status}|{k.TimeoutSeconds}|{k.TcpState}|{k.WindowScaleOriginal}|{k.WindowScaleReply}|{k.TcpFlagsOriginal}|{k.TcpFlagsReply}|{k.Mark}"))
        .Order(StringComparer.Ordinal)
        .ToList();

    [Fact]
    public void Adopt_RandomFields_NeverThrows_EveryEntryCountedOnce()
    {
        var rng = new Random(12);
        using var h = new Harness();
        var offered = new List<KernelConnection>();
        byte[] protocols = [IpProto.Tcp, IpProto.Udp, IpProto.Icmp, IpProto.Icmpv6, IpProto.Gre, IpProto.Sctp, 0, 255];
        for (int i = 0; i < 5000; i++)
        {
            ConnTuple o = default, r = default;
            o.Src = new IpAddress((ulong)rng.NextInt64(), (ulong)rng.Next(3));
            o.Dst = new IpAddress((ulong)rng.NextInt64(), 0);
            o.SrcId = (ushort)rng.Next(4);
            o.DstId = (ushort)rng.Next(0x10000);
            o.Protocol = protocols[rng.Next(protocols.Length)];
            o.IpVersion = rng.Next(10) == 0 ? (byte)rng.Next(256) : rng.Next(2) == 0 ? (byte)4 : (byte)6;
            o.Zone = (ushort)rng.Next(2);
            if (rng.Next(4) == 0 || !o.TryInvert(out r))
            {
                r = o;
                r.Zone = (ushort)rng.Next(2);
            }
            offered.Add(new KernelConnection
            {
                Original = o,
                Reply = r,
                Status = (CtStatus)(uint)rng.NextInt64(0, 1L << 18) & (rng.Next(2) == 0 ? (CtStatus)0xE : (CtStatus)uint.MaxValue),
                TimeoutSeconds = (uint)rng.NextInt64(0, 1L << 32),
                TcpState = (TcpState)(rng.Next(4) == 0 ? rng.Next(256) : rng.Next(1, 10)),
                WindowScaleOriginal = (byte)rng.Next(rng.Next(4) == 0 ? 256 : 15),
                WindowScaleReply = (byte)rng.Next(rng.Next(4) == 0 ? 256 : 15),
                TcpFlagsOriginal = (byte)rng.Next(256),
                TcpFlagsReply = (byte)rng.Next(256),
                Helper = rng.Next(10) == 0 ? "sip" : null,
                Mark = (uint)rng.Next(3),
            });
        }

        AdoptResult res = h.Engine.Adopt(offered, h.Now);
        h.Engine.Maintain(h.Now);

        Assert.Equal(offered.Count, res.Adopted + res.Skipped);
        Assert.Equal(res.Adopted, h.Engine.Count);
        Assert.True(res.Adopted > 200 && res.Nat > 200 && res.Unrepresentable > 200 && res.UnsupportedProtocol > 200, res.Message);
        Assert.Equal(res.Adopted, h.Engine.ExportConnections(h.Now).Count);
    }

    [Fact]
    public async Task Adopt_WhileWorkersClassifyAndHousekeeperRuns_AllAdoptedAllTracked()
    {
        using var h = new Harness();
        const int Adopted = 20_000, Tracked = 2_000;
        var offered = new List<KernelConnection>(Adopted);
        for (int i = 0; i < Adopted; i++)
            offered.Add(Plain(h, IpProto.Udp, (ushort)(1 + (i % 60000)), (ushort)(1000 + (i / 60000)), Replied, timeout: 100));
        long now = h.Now;
        using var stop = new CancellationTokenSource();
        int newFlows = 0;
        var worker = Task.Run(() =>
        {
            using ConntrackWorker w = h.Engine.CreateWorker();
            var buf = new byte[128];
            for (int i = 0; i < Tracked; i++)
            {
                int n = PacketBuilder.Udp(buf, false, Harness.Client4, Harness.Server4, (ushort)(1 + i), 9999, 10);
                w.Enter();
                w.Process(buf.AsSpan(0, n), now, new PacketContext(), out Classification c);
                w.Exit();
                if (c.State == CtState.New)
                    newFlows++;
            }
        });
        var housekeeper = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
                h.Engine.Maintain(now, 1000);
        });

        AdoptResult r = h.Engine.Adopt(offered, now);
        await worker;
        await stop.CancelAsync();
        await housekeeper;
        h.Engine.Maintain(now);

        Assert.Equal(Adopted, r.Adopted);
        Assert.Equal(Tracked, newFlows);
        Assert.Equal(Adopted + Tracked, h.Engine.Count);
        Assert.Equal(Adopted + Tracked, h.Engine.ExportConnections(now).Count);
    }
}
