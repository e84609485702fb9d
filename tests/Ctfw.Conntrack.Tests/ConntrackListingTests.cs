using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Listing and event lines against conntrack-tools' own output on the live kernel. Every golden line
/// below is copied from tests/data/conntrack-tools (README there: recorded with conntrack v1.4.7 on
/// Linux 6.18, nf_conntrack_acct=1, in a namespace); the flows are rebuilt from the values in them.
/// </summary>
public class ConntrackListingTests
{
    private static readonly IpAddress Lo = IpAddress.FromV4(0x7F000001);

    private static FlowInfo Flow(byte proto, ushort sport, ushort dport, CtStatus status, TcpState tcp, long timeoutMs,
        long po = 0, long bo = 0, long pr = 0, long br = 0)
    {
        ConnTuple t = default;
        t.Src = Lo;
        t.Dst = Lo;
        t.SrcId = sport;
        t.DstId = dport;
        t.Protocol = proto;
        t.IpVersion = 4;
        Assert.True(t.TryInvert(out ConnTuple reply));
        return new FlowInfo(t, reply, status, tcp, timeoutMs)
        {
            HasAccounting = true, PacketsOriginal = po, BytesOriginal = bo, PacketsReply = pr, BytesReply = br,
        };
    }

    private static readonly FlowInfo Established = Flow(IpProto.Tcp, 45906, 5555,
        CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed, TcpState.Established, 431_999_400, 4, 221, 3, 170);

    [Fact]
    public void List_Accounting_MatchesConntrackL()
    {
        Assert.Equal(
            "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 packets=4 bytes=221 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906 packets=3 bytes=170 [ASSURED] mark=0 use=1",
            ConntrackListing.Format(Established, ListingOptions.Accounting));
    }

    [Fact]
    public void List_AccountingOff_HasNoCounters()
    {
        Assert.Equal(
            "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906 [ASSURED] mark=0 use=1",
            ConntrackListing.Format(Established));
    }

    [Fact]
    public void List_Extended_MatchesConntrackLoExtended()
    {
        Assert.Equal(
            "ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 packets=4 bytes=221 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906 packets=3 bytes=170 [ASSURED] mark=0 use=1",
            ConntrackListing.Format(Established, ListingOptions.Accounting | ListingOptions.Extended));
    }

    [Fact]
    public void List_UnrepliedUdp_PutsCountersBeforeUnreplied()
    {
        FlowInfo f = Flow(IpProto.Udp, 51855, 5353, CtStatus.Confirmed, TcpState.None, 29_500, 1, 29, 0, 0);
        Assert.Equal(
            "udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=51855 dport=5353 packets=1 bytes=29 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=5353 dport=51855 packets=0 bytes=0 mark=0 use=1",
            ConntrackListing.Format(f, ListingOptions.Accounting));
    }

    [Fact]
    public void Event_NewTcp_MatchesConntrackE()
    {
        FlowInfo f = Flow(IpProto.Tcp, 45906, 5555, CtStatus.Confirmed, TcpState.SynSent, 120_000, 1, 60);
        Assert.Equal(
            "    [NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906",
            ConntrackListing.FormatEvent(ConntrackEventKind.New, f, ListingOptions.Accounting, userspace: false));
    }

    [Fact]
    public void Event_UpdateAssured_MatchesConntrackE()
    {
        FlowInfo f = Flow(IpProto.Tcp, 45906, 5555, CtStatus.Confirmed | CtStatus.SeenReply | CtStatus.Assured, TcpState.Established, 432_000_000, 2, 120, 1, 60);
        Assert.Equal(
            " [UPDATE] tcp      6 432000 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906 [ASSURED]",
            ConntrackListing.FormatEvent(ConntrackEventKind.Update, f, ListingOptions.Accounting, userspace: false));
    }

    [Fact]
    public void Event_UpdateExtended_MatchesConntrackEoExtended()
    {
        FlowInfo f = Flow(IpProto.Tcp, 45906, 5555, CtStatus.Confirmed | CtStatus.SeenReply, TcpState.SynRecv, 60_000);
        Assert.Equal(
            " [UPDATE] ipv4     2 tcp      6 60 SYN_RECV src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906",
            ConntrackListing.FormatEvent(ConntrackEventKind.Update, f, ListingOptions.Extended, userspace: false));
    }

    [Fact]
    public void Event_DestroyOnExpiry_HasNoTimeoutAndHasCounters()
    {
        FlowInfo f = Flow(IpProto.Udp, 6000, 6001, CtStatus.Confirmed | CtStatus.SeenReply, TcpState.None, 0, 1, 29, 1, 30);
        Assert.Equal(
            "[DESTROY] udp      17 src=127.0.0.1 dst=127.0.0.1 sport=6000 dport=6001 packets=1 bytes=29 src=127.0.0.1 dst=127.0.0.1 sport=6001 dport=6000 packets=1 bytes=30",
            ConntrackListing.FormatEvent(ConntrackEventKind.Destroy, f, ListingOptions.Accounting, userspace: false));
    }

    [Fact]
    public void Event_DestroyByRst_KeepsTimeoutStateAndUnreplied()
    {
        FlowInfo f = Flow(IpProto.Tcp, 40428, 7, CtStatus.Confirmed, TcpState.Close, 120_000, 1, 60, 1, 40);
        Assert.Equal(
            "[DESTROY] tcp      6 120 CLOSE src=127.0.0.1 dst=127.0.0.1 sport=40428 dport=7 packets=1 bytes=60 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=7 dport=40428 packets=1 bytes=40",
            ConntrackListing.FormatEvent(ConntrackEventKind.Destroy, f, ListingOptions.Accounting, userspace: false));
    }

    [Fact]
    public void Event_DestroyByFlush_EndsWithUserspace()
    {
        // conntrack prints `[USERSPACE] portid=N progname=conntrack` for a netlink client's kill; ctfw's
        // kills come over its control socket, which has no netlink port id: the flag alone.
        FlowInfo f = Flow(IpProto.Tcp, 45906, 5555, CtStatus.Confirmed | CtStatus.SeenReply | CtStatus.Assured, TcpState.TimeWait, 119_700, 6, 325, 5, 274);
        Assert.Equal(
            "[DESTROY] tcp      6 119 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 packets=6 bytes=325 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906 packets=5 bytes=274 [ASSURED] [USERSPACE]",
            ConntrackListing.FormatEvent(ConntrackEventKind.Destroy, f, ListingOptions.Accounting, userspace: true));
    }

    [Fact]
    public void Event_NewIcmp_MatchesConntrackE()
    {
        FlowInfo f = Flow(IpProto.Icmp, 7878, 8 << 8, CtStatus.Confirmed, TcpState.None, 1_000);
        Assert.Equal(
            "    [NEW] icmp     1 1 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id=7878 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id=7878",
            ConntrackListing.FormatEvent(ConntrackEventKind.New, f, ListingOptions.None, userspace: false));
    }

    [Fact]
    public void Settings_AcctSysctl_IsReadAndDumped()
    {
        var s = new ConntrackSettings();
        Assert.False(s.Acct); // the kernel's default
        Assert.Null(s.Set("net.netfilter.nf_conntrack_acct", "1"));
        Assert.True(s.Acct);
        Assert.Contains("nf_conntrack_acct=1", s.Dump());
    }

    [Fact]
    public void List_AccountingOptionButFlowNotCounted_ShowsNoCounters()
    {
        // An entry without the kernel's acct extension lists without packets=/bytes= even with the option.
        FlowInfo uncounted = Established with { HasAccounting = false };
        string line = ConntrackListing.Format(uncounted, ListingOptions.Accounting);
        Assert.DoesNotContain("packets=", line);
        Assert.Equal(ConntrackListing.Format(Established, ListingOptions.None), line);
        Assert.Contains("packets=4 bytes=221", ConntrackListing.Format(Established, ListingOptions.Accounting));
    }
}

/// <summary>`-o json`: one object per line with every field of the flow (schema in docs/OPERATIONS.md).</summary>
public class ConntrackJsonTests
{
    [Fact]
    public void Json_Listing_HasTuplesCountersAndAges()
    {
        ConnTuple t = default;
        t.Src = IpAddress.FromV4(0x0A000001);
        t.Dst = IpAddress.FromV4(0x0A000002);
        t.SrcId = 40000;
        t.DstId = 443;
        t.Protocol = IpProto.Tcp;
        t.IpVersion = 4;
        Assert.True(t.TryInvert(out ConnTuple reply));
        var f = new FlowInfo(t, reply, CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed, TcpState.Established, 431_999_500)
        {
            HasAccounting = true, PacketsOriginal = 4, BytesOriginal = 221, PacketsReply = 3, BytesReply = 170,
            StateSinceMs = 9_000, CreatedMs = 4_000, ZeroWindowSinceReply = 9_500, FinSeenOriginal = true,
        };
        string line = ConntrackListing.FormatJson(f, nowMs: 10_000);
        Assert.DoesNotContain('\n', line);
        using var doc = System.Text.Json.JsonDocument.Parse(line);
        var root = doc.RootElement;
        Assert.False(root.TryGetProperty("event", out _));
        Assert.Equal("ipv4", root.GetProperty("family").GetString());
        Assert.Equal("tcp", root.GetProperty("protocol").GetString());
        Assert.Equal(6, root.GetProperty("protonum").GetInt32());
        Assert.Equal(431999, root.GetProperty("timeout").GetInt64());
        Assert.Equal("ESTABLISHED", root.GetProperty("state").GetString());
        Assert.Equal("10.0.0.1", root.GetProperty("original").GetProperty("src").GetString());
        Assert.Equal(443, root.GetProperty("original").GetProperty("dport").GetInt32());
        Assert.Equal(4, root.GetProperty("original").GetProperty("packets").GetInt64());
        Assert.Equal(221, root.GetProperty("original").GetProperty("bytes").GetInt64());
        Assert.Equal("10.0.0.2", root.GetProperty("reply").GetProperty("src").GetString());
        Assert.Equal(170, root.GetProperty("reply").GetProperty("bytes").GetInt64());
        Assert.True(root.GetProperty("assured").GetBoolean());
        Assert.True(root.GetProperty("seen_reply").GetBoolean());
        Assert.Equal(14u, root.GetProperty("status").GetUInt32());
        Assert.Equal(6_000, root.GetProperty("age_ms").GetInt64());
        Assert.Equal(1_000, root.GetProperty("state_age_ms").GetInt64());
        Assert.Equal(500, root.GetProperty("zero_window_reply_ms").GetInt64());
        Assert.False(root.TryGetProperty("zero_window_original_ms", out _));
        Assert.True(root.GetProperty("fin_original").GetBoolean());
        Assert.False(root.GetProperty("fin_reply").GetBoolean());
    }

    [Fact]
    public void Json_DestroyEvent_NamesTheEventAndUserspace()
    {
        ConnTuple t = default;
        t.Src = IpAddress.FromV4(0x7F000001);
        t.Dst = IpAddress.FromV4(0x7F000001);
        t.SrcId = 7878;
        t.DstId = 8 << 8;
        t.Protocol = IpProto.Icmp;
        t.IpVersion = 4;
        Assert.True(t.TryInvert(out ConnTuple reply));
        var f = new FlowInfo(t, reply, CtStatus.Confirmed, TcpState.None, 0);
        using var doc = System.Text.Json.JsonDocument.Parse(ConntrackListing.FormatJson(f, ConntrackEventKind.Destroy, userspace: true));
        var root = doc.RootElement;
        Assert.Equal("destroy", root.GetProperty("event").GetString());
        Assert.True(root.GetProperty("userspace").GetBoolean());
        Assert.False(root.TryGetProperty("state", out _));
        Assert.Equal(8, root.GetProperty("original").GetProperty("type").GetInt32());
        Assert.Equal(0, root.GetProperty("reply").GetProperty("type").GetInt32());
        Assert.Equal(7878, root.GetProperty("reply").GetProperty("id").GetInt32());
        Assert.False(root.TryGetProperty("state_age_ms", out _));
        // Not counted (nf_conntrack_acct off): no counters at all, not zero ones.
        Assert.False(root.GetProperty("original").TryGetProperty("packets", out _));
        Assert.False(root.GetProperty("reply").TryGetProperty("bytes", out _));
    }
}
