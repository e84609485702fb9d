using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>ICMP and ICMPv6 (kernel-conntrack.md §8) and the generic tracker (§9).</summary>
public class IcmpTrackerTests
{
    private const CtDirection O = CtDirection.Original, R = CtDirection.Reply;
    private static readonly IpAddress Router4 = IpAddress.FromV4(0x0A630101);   // 10.99.1.1
    private static readonly IpAddress Router6 = IpAddress.FromV6(Convert.FromHexString("fd990001000000000000000000000001"));
    private static readonly IpAddress Stranger4 = IpAddress.FromV4(0xC0000207); // 192.0.2.7

    private static FlowInfo IcmpFlow(Harness h, byte requestType, ushort id = 7) =>
        h.Flow(h.Tuple(h.V6 ? IpProto.Icmpv6 : IpProto.Icmp, id, (ushort)(requestType << 8)))
        ?? throw new Xunit.Sdk.XunitException("no live ICMP entry");

    private static FlowInfo UdpFlow(Harness h) => h.UdpFlow() ?? throw new Xunit.Sdk.XunitException("no live UDP entry");

    /// <summary>An ICMP (or ICMPv6) error from any address, quoting <paramref name="embedded"/>.</summary>
    private static Classification Error(Harness h, IpAddress src, IpAddress dst, byte type, byte code, byte[] embedded)
    {
        var buf = new byte[2048];
        int n = PacketBuilder.IcmpError(buf, h.V6, src, dst, type, code, embedded);
        return h.Send(buf.AsSpan(0, n));
    }

    // ---------------- Echo-like queries (§8.3) ----------------

    [Theory]
    [InlineData(false, 8, 0)]
    [InlineData(true, 128, 129)]
    public void Echo_RequestReplyRequest_NewEstablishedEstablishedOneEntry(bool v6, byte request, byte reply)
    {
        using var h = new Harness(v6: v6);
        h.Icmp(true, request).Is(CtState.New, O);
        Assert.Equal(30_000, IcmpFlow(h, request).TimeoutMs);
        Assert.Equal(CtStatus.Confirmed, IcmpFlow(h, request).Status);

        h.SleepMs(10_000);
        h.Icmp(false, reply).Is(CtState.Established, R);
        Assert.Equal(30_000, IcmpFlow(h, request).TimeoutMs);

        h.SleepMs(10_000);
        h.Icmp(true, request, seq: 2).Is(CtState.Established, O);
        FlowInfo f = IcmpFlow(h, request);
        Assert.Equal(30_000, f.TimeoutMs);
        Assert.Equal(CtStatus.Confirmed | CtStatus.SeenReply, f.Status);   // never ASSURED
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void Echo_OtherIdentifier_SeparateEntry()
    {
        using var h = new Harness();
        h.Icmp(true, 8, id: 7);
        h.Icmp(false, 0, id: 7);
        h.Icmp(true, 8, id: 8).Is(CtState.New, O);
        Assert.Equal(2, h.Engine.Count);
        // A reply must carry the request's id: id 9 matches nothing and a reply cannot create.
        h.Icmp(false, 0, id: 9).IsInvalid(InvalidReason.IcmpNoInverse);
    }

    [Fact]
    public void Echo_ExpiresAfterIcmpTimeout()
    {
        using var h = new Harness(Harness.With("nf_conntrack_icmp_timeout=7"));
        h.Icmp(true, 8);
        h.SleepMs(6_999);
        Assert.NotNull(h.Flow(h.Tuple(IpProto.Icmp, 7, 8 << 8)));
        h.SleepMs(1);
        Assert.Null(h.Flow(h.Tuple(IpProto.Icmp, 7, 8 << 8)));
        h.Icmp(false, 0).IsInvalid(InvalidReason.IcmpNoInverse);
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 129)]
    public void EchoReply_NoRequest_InvalidNoInverse(bool v6, byte reply)
    {
        using var h = new Harness(v6: v6);
        h.Icmp(false, reply).IsInvalid(InvalidReason.IcmpNoInverse);
        Assert.Equal(0, h.Engine.Count);
    }

    [Theory]
    [InlineData(13, 14)]   // timestamp
    [InlineData(15, 16)]   // information
    [InlineData(17, 18)]   // address mask
    public void OtherQueries_RequestThenReply_NewThenEstablished(byte request, byte reply)
    {
        using var h = new Harness();
        h.Icmp(true, request).Is(CtState.New, O);
        h.Icmp(false, reply).Is(CtState.Established, R);
    }

    [Theory]
    [InlineData(9)]    // router advertisement: no inverse
    [InlineData(10)]   // router solicitation: no inverse
    [InlineData(14)]   // timestamp reply alone: has an inverse but is not a query
    [InlineData(16)]
    [InlineData(18)]
    [InlineData(0)]
    public void NonQueryTypes_NoEntry_InvalidNoInverse(byte type)
    {
        using var h = new Harness();
        h.Icmp(true, type).IsInvalid(InvalidReason.IcmpNoInverse);
        Assert.Equal(0, h.Engine.Count);
    }

    [Theory]
    [InlineData(19)]
    [InlineData(42)]   // extended echo: still INVALID in 6.17
    [InlineData(43)]
    [InlineData(255)]
    public void TypeAbove18_InvalidUnknownType(byte type)
    {
        using var h = new Harness();
        h.Icmp(true, type).IsInvalid(InvalidReason.IcmpUnknownType);
    }

    [Fact]
    public void BadChecksum_Verified_InvalidIcmpBadChecksum()
    {
        using var h = new Harness();
        var buf = new byte[128];
        int n = PacketBuilder.Icmp(buf, h.ClientAddr, h.ServerAddr, 8, 0, 7, 1);
        buf[n - 1] ^= 0x40;
        h.Send(buf.AsSpan(0, n)).IsInvalid(InvalidReason.IcmpBadChecksum);
        h.Send(buf.AsSpan(0, n), verifyChecksums: false).Is(CtState.New, O);
    }

    // ---------------- ICMP errors (§8.1 step 5) ----------------

    [Fact]
    public void DestUnreach_FromServerAboutTrackedUdp_RelatedReply()
    {
        using var h = new Harness();
        byte[] query = h.UdpBytes(true);
        h.Send(query).Is(CtState.New, O);
        Classification r = Error(h, h.ServerAddr, h.ClientAddr, 3, 3, query);
        Assert.Equal(CtState.Related, r.State);
        Assert.Equal(R, r.Direction);
        Assert.Equal(InvalidReason.None, r.Reason);
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void DestUnreach_FromClientAboutServerPacket_RelatedOriginal()
    {
        using var h = new Harness();
        h.Udp(true);
        byte[] answer = h.UdpBytes(false);
        h.Send(answer).Is(CtState.Established, R);
        // The client reports the server's datagram undeliverable: the inner packet travelled REPLY,
        // so its inverse is the ORIGINAL tuple.
        Classification r = Error(h, h.ClientAddr, h.ServerAddr, 3, 3, answer);
        Assert.Equal(CtState.Related, r.State);
        Assert.Equal(O, r.Direction);
    }

    [Fact]
    public void TimeExceeded_FromRouterToClientAboutTrackedTcp_Related()
    {
        using var h = new Harness();
        byte[] syn = h.TcpBytes(true, Syn, 1000, 0);
        h.Send(syn).Is(CtState.New, O, TcpState.SynSent);
        Classification r = Error(h, Router4, h.ClientAddr, 11, 0, syn);
        Assert.Equal(CtState.Related, r.State);
        Assert.Equal(R, r.Direction);
        Assert.Equal(TcpState.SynSent, h.Flow()!.Value.TcpState);
    }

    [Fact]
    public void DestUnreach_AboutTrackedEcho_Related()
    {
        using var h = new Harness();
        var buf = new byte[128];
        int n = PacketBuilder.Icmp(buf, h.ClientAddr, h.ServerAddr, 8, 0, 7, 1);
        byte[] echo = buf.AsSpan(0, n).ToArray();
        h.Send(echo).Is(CtState.New, O);
        Classification r = Error(h, Router4, h.ClientAddr, 3, 1, echo);
        Assert.Equal(CtState.Related, r.State);
        Assert.Equal(R, r.Direction);
    }

    [Fact]
    public void Error_AboutUntrackedFlow_InvalidNoEntry()
    {
        using var h = new Harness();
        h.Udp(true);
        h.ClientPort++;                                     // a datagram of a flow nobody tracks
        byte[] other = h.UdpBytes(true);
        Error(h, h.ServerAddr, h.ClientAddr, 3, 3, other).IsInvalid(InvalidReason.IcmpErrorNoEntry);
    }

    [Fact]
    public void Error_AboutExpiredFlow_InvalidNoEntry()
    {
        using var h = new Harness();
        byte[] query = h.UdpBytes(true);
        h.Send(query);
        h.SleepMs(30_000);
        Error(h, h.ServerAddr, h.ClientAddr, 3, 3, query).IsInvalid(InvalidReason.IcmpErrorNoEntry);
    }

    [Fact]
    public void Error_OuterDestinationNotEmbeddedSource_InvalidOuterMismatch()
    {
        using var h = new Harness();
        byte[] query = h.UdpBytes(true);
        h.Send(query);
        Error(h, h.ServerAddr, Stranger4, 3, 3, query).IsInvalid(InvalidReason.IcmpErrorOuterMismatch);
        Error(h, Router4, h.ServerAddr, 11, 0, query).IsInvalid(InvalidReason.IcmpErrorOuterMismatch);
    }

    [Fact]
    public void Error_DoesNotRefreshTimeoutNorSetSeenReply()
    {
        using var h = new Harness();
        byte[] query = h.UdpBytes(true);
        h.Send(query);
        h.SleepMs(10_000);
        Assert.Equal(CtState.Related, Error(h, h.ServerAddr, h.ClientAddr, 3, 3, query).State);
        FlowInfo f = UdpFlow(h);
        Assert.Equal(20_000, f.TimeoutMs);
        Assert.Equal(CtStatus.Confirmed, f.Status);
        // Still unreplied: the next original packet is NEW.
        h.Udp(true).Is(CtState.New, O);
    }

    // ---------------- ICMPv6 (§8.2) ----------------

    [Theory]
    [InlineData(130)]
    [InlineData(131)]
    [InlineData(132)]
    [InlineData(133)]
    [InlineData(134)]
    [InlineData(135)]
    [InlineData(136)]
    [InlineData(143)]
    [InlineData(151)]
    [InlineData(152)]
    public void Icmpv6_NeighbourDiscoveryAndMld_UntrackedNoEntry(byte type)
    {
        using var h = new Harness(v6: true);
        Classification r = h.Icmp(true, type);
        Assert.Equal(CtState.Untracked, r.State);
        Assert.Equal(CtDirection.None, r.Direction);
        Assert.Equal(0, h.Engine.Count);
    }

    [Theory]
    [InlineData(138)]
    [InlineData(141)]
    [InlineData(140)]   // node information reply alone
    public void Icmpv6_OtherInformational_InvalidNoInverse(byte type)
    {
        using var h = new Harness(v6: true);
        h.Icmp(true, type).IsInvalid(InvalidReason.IcmpNoInverse);
    }

    [Fact]
    public void Icmpv6_NodeInformation_QueryThenReply()
    {
        using var h = new Harness(v6: true);
        h.Icmp(true, 139).Is(CtState.New, O);
        h.Icmp(false, 140).Is(CtState.Established, R);
    }

    [Theory]
    [InlineData(1, 4)]   // destination unreachable, port unreachable
    [InlineData(2, 0)]   // packet too big
    [InlineData(3, 0)]   // time exceeded
    [InlineData(4, 0)]   // parameter problem
    public void Icmpv6_ErrorAboutTrackedUdp_RelatedReply(byte type, byte code)
    {
        using var h = new Harness(v6: true);
        byte[] query = h.UdpBytes(true);
        h.Send(query);
        Classification r = Error(h, h.ServerAddr, h.ClientAddr, type, code, query);
        Assert.Equal(CtState.Related, r.State);
        Assert.Equal(R, r.Direction);
        Assert.Equal(30_000, UdpFlow(h).TimeoutMs);
    }

    [Fact]
    public void Icmpv6_PacketTooBigFromRouterAboutTrackedTcp_Related()
    {
        using var h = new Harness(v6: true);
        byte[] syn = h.TcpBytes(true, Syn, 1000, 0);
        h.Send(syn);
        Classification r = Error(h, Router6, h.ClientAddr, 2, 0, syn);
        Assert.Equal(CtState.Related, r.State);
        Assert.Equal(R, r.Direction);
    }

    [Fact]
    public void Icmpv6_ErrorAboutUntrackedFlow_InvalidNoEntry()
    {
        using var h = new Harness(v6: true);
        byte[] query = h.UdpBytes(true);
        Error(h, h.ServerAddr, h.ClientAddr, 1, 4, query).IsInvalid(InvalidReason.IcmpErrorNoEntry);
    }

    [Theory]
    [InlineData(254, true)]    // hop limit not 255
    [InlineData(255, false)]   // source not link-local
    public void Icmpv6_RedirectFromWrongHopLimitOrSource_InvalidRedirectReason(byte hopLimit, bool linkLocalSource)
    {
        // §8.2 step 3 (kernel: "invalid saddr or hoplimit for redirect"): code 0 with hop limit ≠ 255
        // or a non-link-local source is rejected by the redirect check itself, before any tuple lookup.
        using var h = new Harness(v6: true);
        byte[] query = h.UdpBytes(true);
        h.Send(query);
        IpAddress linkLocal = IpAddress.FromV6(Convert.FromHexString("fe800000000000000000000000000001"));
        IpAddress src = linkLocalSource ? linkLocal : Router6;
        var buf = new byte[2048];
        int n = PacketBuilder.Icmpv6Redirect(buf, src, h.ClientAddr, linkLocal, h.ServerAddr, query, hopLimit: hopLimit);
        h.Send(buf.AsSpan(0, n)).IsInvalid(InvalidReason.Icmpv6RedirectInvalid);
    }

    [Fact]
    public void Icmpv6_RedirectWellFormed_RelatedToQuotedFlow()
    {
        using var h = new Harness(v6: true);
        byte[] query = h.UdpBytes(true);
        h.Send(query);
        IpAddress linkLocal = IpAddress.FromV6(Convert.FromHexString("fe800000000000000000000000000001"));
        var buf = new byte[2048];
        int n = PacketBuilder.Icmpv6Redirect(buf, linkLocal, h.ClientAddr, linkLocal, h.ServerAddr, query);
        Classification r = h.Send(buf.AsSpan(0, n));
        Assert.Equal(CtState.Related, r.State);
    }

    // ---------------- Wrong family (§8.3 last bullet) ----------------

    [Fact]
    public void WrongFamily_Icmpv4InsideIpv6_Invalid()
    {
        using var h = new Harness(v6: true);
        var buf = new byte[128];
        int n = PacketBuilder.IcmpAnyFamily(buf, v6: true, IpProto.Icmp, h.ClientAddr, h.ServerAddr, 8, 0, 7, 1, 0);
        h.Send(buf.AsSpan(0, n)).IsInvalid(InvalidReason.IcmpWrongFamily);
        Assert.Equal(0, h.Engine.Count);
    }

    [Fact]
    public void WrongFamily_Icmpv6InsideIpv4_Invalid()
    {
        using var h = new Harness();
        var buf = new byte[128];
        int n = PacketBuilder.IcmpAnyFamily(buf, v6: false, IpProto.Icmpv6, h.ClientAddr, h.ServerAddr, 128, 0, 7, 1, 0);
        h.Send(buf.AsSpan(0, n)).IsInvalid(InvalidReason.IcmpWrongFamily);
        Assert.Equal(0, h.Engine.Count);
    }

    // ---------------- Generic protocols (§9) ----------------

    [Theory]
    [InlineData(false, IpProto.Esp)]
    [InlineData(false, 253)]
    [InlineData(true, IpProto.Esp)]
    [InlineData(false, 33)]             // DCCP: no DCCP state machine here, generic timeouts (SCTP has its own: SctpTrackerTests)
    public void Generic_NewThenReply_Established600sNeverAssured(bool v6, byte protocol)
    {
        using var h = new Harness(v6: v6);
        h.Generic(true, protocol).Is(CtState.New, O);
        FlowInfo f = h.Flow(h.Tuple(protocol, 0, 0)) ?? FirstLive(h);
        Assert.Equal(600_000, f.TimeoutMs);
        h.SleepMs(100_000);
        h.Generic(false, protocol).Is(CtState.Established, R);
        h.SleepMs(5_000);
        h.Generic(true, protocol).Is(CtState.Established, O);
        f = FirstLive(h);
        Assert.Equal(600_000, f.TimeoutMs);
        Assert.Equal(CtStatus.Confirmed | CtStatus.SeenReply, f.Status);
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void Generic_CustomTimeout_Expires()
    {
        using var h = new Harness(Harness.With("nf_conntrack_generic_timeout=3"));
        h.Generic(true, 253);
        h.SleepMs(2_999);
        h.Generic(false, 253).Is(CtState.Established, R);
        h.SleepMs(3_000);
        h.Generic(false, 253).Is(CtState.New, O);
    }

    [Fact]
    public void Gre_UnrepliedThenReplied_30sThen180sAssured()
    {
        using var h = new Harness();
        h.Generic(true, IpProto.Gre).Is(CtState.New, O);
        Assert.Equal(30_000, FirstLive(h).TimeoutMs);
        h.SleepMs(1_000);
        h.Generic(false, IpProto.Gre).Is(CtState.Established, R);
        FlowInfo f = FirstLive(h);
        Assert.Equal(30_000, f.TimeoutMs);                 // tracker ran before SEEN_REPLY was set
        Assert.False(f.Status.HasFlag(CtStatus.Assured));
        h.SleepMs(1_000);
        h.Generic(true, IpProto.Gre).Is(CtState.Established, O);
        f = FirstLive(h);
        Assert.Equal(180_000, f.TimeoutMs);
        Assert.True(f.Status.HasFlag(CtStatus.Assured));
    }

    private static FlowInfo FirstLive(Harness h)
    {
        List<FlowInfo> all = h.Engine.Snapshot(h.Now);
        Assert.Single(all);
        return all[0];
    }
}
