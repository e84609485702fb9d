using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>The UDP tracker, kernel-conntrack.md §7 (and the §2 rules on SEEN_REPLY and expiry).</summary>
public class UdpTrackerTests
{
    private const CtDirection O = CtDirection.Original, R = CtDirection.Reply;

    private static FlowInfo Flow(Harness h) => h.UdpFlow() ?? throw new Xunit.Sdk.XunitException("no live UDP entry");

    private static int UdpOffset(bool v6) => v6 ? 40 : 20;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Timeline_KernelExample_NewThenReplyThenStreamAfterTwoSeconds(bool v6)
    {
        // §7 example: t=0 C→S NEW 30 s; t=0.1 S→C ESTABLISHED 30 s; t=0.2 C→S 30 s, not assured; t=3 120 s ASSURED.
        using var h = new Harness(v6: v6);
        h.Udp(true).Is(CtState.New, O);
        FlowInfo f = Flow(h);
        Assert.Equal(30_000, f.TimeoutMs);
        Assert.Equal(CtStatus.Confirmed, f.Status);

        h.SleepMs(100);
        Classification reply = h.Udp(false);
        reply.Is(CtState.Established, R);
        f = Flow(h);
        Assert.Equal(30_000, f.TimeoutMs);
        Assert.Equal(CtStatus.Confirmed | CtStatus.SeenReply, f.Status);

        h.SleepMs(100);
        h.Udp(true).Is(CtState.Established, O);
        f = Flow(h);
        Assert.Equal(30_000, f.TimeoutMs);
        Assert.False(f.Status.HasFlag(CtStatus.Assured));

        h.SleepMs(2_800);
        Classification stream = h.Udp(true);
        stream.Is(CtState.Established, O);
        Assert.True(stream.Status.HasFlag(CtStatus.Assured));
        f = Flow(h);
        Assert.Equal(120_000, f.TimeoutMs);
        Assert.Equal(CtStatus.Confirmed | CtStatus.SeenReply | CtStatus.Assured, f.Status);
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void Stream_ExactlyTwoSecondsAfterCreation_StillUnassured30s()
    {
        // stream_ts = creation + 2 s and the test is time_after(now, stream_ts): strict.
        using var h = new Harness();
        h.Udp(true);
        h.SleepMs(50);
        h.Udp(false);
        h.SleepMs(1_950);                                  // exactly creation + 2000 ms
        h.Udp(true).Is(CtState.Established, O);
        Assert.Equal(30_000, Flow(h).TimeoutMs);
        Assert.False(Flow(h).Status.HasFlag(CtStatus.Assured));
        h.SleepMs(1);                                      // creation + 2001 ms
        h.Udp(true).Is(CtState.Established, O);
        Assert.Equal(120_000, Flow(h).TimeoutMs);
        Assert.True(Flow(h).Status.HasFlag(CtStatus.Assured));
    }

    [Fact]
    public void Stream_ReplyDirectionAfterTwoSeconds_AlsoAssures()
    {
        using var h = new Harness();
        h.Udp(true);
        h.SleepMs(500);
        h.Udp(false);
        h.SleepMs(2_000);
        h.Udp(false).Is(CtState.Established, R);
        Assert.Equal(120_000, Flow(h).TimeoutMs);
        Assert.True(Flow(h).Status.HasFlag(CtStatus.Assured));
    }

    [Fact]
    public void FirstReplyLate_TrackerSeesNoSeenReply_Stays30sUntilNextPacket()
    {
        // SEEN_REPLY is set after the tracker ran (§2 step 9): the first reply itself refreshes with 30 s
        // even when it comes after stream_ts; the packet after it switches to 120 s and ASSURED.
        using var h = new Harness();
        h.Udp(true);
        h.SleepMs(5_000);
        h.Udp(false).Is(CtState.Established, R);
        Assert.Equal(30_000, Flow(h).TimeoutMs);
        Assert.False(Flow(h).Status.HasFlag(CtStatus.Assured));
        h.SleepMs(100);
        h.Udp(true).Is(CtState.Established, O);
        Assert.Equal(120_000, Flow(h).TimeoutMs);
        Assert.True(Flow(h).Status.HasFlag(CtStatus.Assured));
    }

    [Fact]
    public void Unreplied_RepeatedOriginalPackets_StayNewAndRefresh30s()
    {
        using var h = new Harness();
        for (int i = 0; i < 5; i++)
        {
            h.Udp(true).Is(CtState.New, O);
            Assert.Equal(30_000, Flow(h).TimeoutMs);
            Assert.Equal(CtStatus.Confirmed, Flow(h).Status);
            h.SleepMs(10_000);
        }
        Assert.Equal(1, h.Engine.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Expiry_AtUdpTimeout_EntryGoneAndNextPacketNew(bool v6)
    {
        using var h = new Harness(v6: v6);
        h.Udp(true);
        h.SleepMs(29_999);
        Assert.NotNull(h.UdpFlow());
        h.SleepMs(1);                                      // deadline − now = 0: expired (§1.2)
        Assert.Null(h.UdpFlow());
        // The server speaking first after expiry makes a new entry with the server as ORIGINAL.
        h.Udp(false).Is(CtState.New, O);
        FlowInfo f = Flow(h);
        Assert.Equal(h.ServerAddr, f.Original.Src);
        Assert.Equal(CtStatus.Confirmed, f.Status);
    }

    [Fact]
    public void Expiry_CustomSysctls_UnrepliedAndStreamTimeoutsHonoured()
    {
        using var h = new Harness(Harness.With("nf_conntrack_udp_timeout=5", "nf_conntrack_udp_timeout_stream=11"));
        h.Udp(true);
        Assert.Equal(5_000, Flow(h).TimeoutMs);
        h.SleepMs(4_999);
        Assert.NotNull(h.UdpFlow());
        h.SleepMs(1);
        Assert.Null(h.UdpFlow());

        h.Udp(true);
        h.SleepMs(100);
        h.Udp(false);
        h.SleepMs(3_000);
        h.Udp(true);
        Assert.Equal(11_000, Flow(h).TimeoutMs);
        h.SleepMs(10_999);
        Assert.NotNull(h.UdpFlow());
        h.SleepMs(1);
        Assert.Null(h.UdpFlow());
        // Reaped, not only invisible, within the wheel's horizon.
        h.SleepMs(TimerWheel.HorizonMs);
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.Count);
    }

    [Theory]
    [InlineData(false, 1)]
    [InlineData(false, 0x7FFF)]
    [InlineData(true, 1)]
    [InlineData(false, -1)]    // length field 7
    [InlineData(true, -8)]     // length field 0
    public void BadLength_FieldBeyondPacketOrBelowHeader_InvalidUdpBadLength(bool v6, int delta)
    {
        using var h = new Harness(v6: v6);
        byte[] p = h.UdpBytes(true, len: 10);
        int off = UdpOffset(v6) + 4;
        int field = delta > 0 ? 18 + delta : 8 + delta;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(off), (ushort)Math.Min(field, 0xFFFF));
        h.Send(p).IsInvalid(InvalidReason.UdpBadLength);
        h.Send(p, verifyChecksums: false).IsInvalid(InvalidReason.UdpBadLength);
        Assert.Equal(0, h.Engine.Count);
    }

    [Fact]
    public void Length_FieldShorterThanIpPayload_Accepted()
    {
        // Only "longer than the bytes present" or "below 8" is malformed; trailing bytes are allowed.
        // nf_checksum sums the IP payload (skb->len − dataoff), so re-sum it after the edit.
        using var h = new Harness();
        byte[] p = h.UdpBytes(true, len: 10);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(UdpOffset(false) + 4), 8);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(p, out ParsedPacket parsed));
        PacketBuilder.RewriteTransportChecksum(p, parsed);
        h.Send(p).Is(CtState.New, O);
    }

    [Fact]
    public void HeaderTruncated_FewerThanEightBytes_Invalid()
    {
        using var h = new Harness();
        var buf = new byte[64];
        int n = PacketBuilder.Generic(buf, false, h.ClientAddr, h.ServerAddr, IpProto.Udp, 6, payloadFill: 0x11);
        h.Send(buf.AsSpan(0, n)).IsInvalid(InvalidReason.UdpHeaderTruncated);
        Assert.Equal(0, h.Engine.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BadChecksum_VerifiedInvalid_UnverifiedAccepted(bool v6)
    {
        using var h = new Harness(v6: v6);
        byte[] p = h.UdpBytes(true, len: 10);
        p[^1] ^= 0x5A;                                     // payload changed, checksum not
        h.Send(p, verifyChecksums: true).IsInvalid(InvalidReason.UdpBadChecksum);
        Assert.Equal(0, h.Engine.Count);
        h.Send(p, verifyChecksums: false).Is(CtState.New, O);
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void BadChecksum_ChecksumSysctlOff_Accepted()
    {
        using var h = new Harness(Harness.With("nf_conntrack_checksum=0"));
        byte[] p = h.UdpBytes(true, len: 10);
        p[^1] ^= 0x5A;
        h.Send(p, verifyChecksums: true).Is(CtState.New, O);
    }

    [Fact]
    public void BadChecksum_OnReply_InvalidAndNoSeenReplyNoRefresh()
    {
        using var h = new Harness();
        h.Udp(true);
        h.SleepMs(1_000);
        byte[] reply = h.UdpBytes(false, len: 10);
        reply[^1] ^= 0x01;
        h.Send(reply).IsInvalid(InvalidReason.UdpBadChecksum);
        FlowInfo f = Flow(h);
        Assert.Equal(29_000, f.TimeoutMs);
        Assert.False(f.Status.HasFlag(CtStatus.SeenReply));
        h.Udp(true).Is(CtState.New, O);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ZeroChecksum_WithVerification_AcceptedForBothFamilies(bool v6)
    {
        using var h = new Harness(v6: v6);
        byte[] p = h.UdpBytes(true, len: 10);
        p.AsSpan(UdpOffset(v6) + 8).Fill(0xA5);            // any payload: a zero checksum means "none"
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(UdpOffset(v6) + 6), 0);
        h.Send(p, verifyChecksums: true).Is(CtState.New, O);
        Assert.Equal(1, h.Engine.Count);
    }

    [Fact]
    public void Ipv4AndIpv6_SamePorts_SeparateEntries()
    {
        using var h = new Harness();
        h.Udp(true).Is(CtState.New, O);
        h.V6 = true;
        h.Udp(true).Is(CtState.New, O);
        Assert.Equal(2, h.Engine.Count);
        h.Udp(false).Is(CtState.Established, R);
        h.V6 = false;
        h.Udp(true).Is(CtState.New, O);                    // the IPv4 entry saw no reply
    }
}
