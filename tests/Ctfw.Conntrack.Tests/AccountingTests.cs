using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Per-flow accounting (nf_conntrack_acct): packets and bytes (IP total length) per direction, for
/// the packets the tracker accepted, as the kernel's nf_ct_refresh_acct counts them; and only while
/// the sysctl is on, as the kernel adds its acct extension only then.
/// </summary>
public class AccountingTests
{
    private static ConntrackSettings On(params string[] more) => Harness.With(["nf_conntrack_acct=1", .. more]);

    [Fact]
    public void Tcp_HandshakeAndData_CountsEachDirectionWithIpTotalLength()
    {
        using var h = new Harness(On());
        long orig = 0, reply = 0;
        orig += h.Build(true, Syn, 100, 0).Length;
        h.C(Syn, 100, 0).Is(CtState.New, CtDirection.Original, TcpState.SynSent);
        reply += h.Build(false, Syn | Ack, 500, 101).Length;
        h.S(Syn | Ack, 500, 101);
        orig += h.Build(true, Ack, 101, 501).Length;
        h.C(Ack, 101, 501);
        orig += h.Build(true, Ack | Psh, 101, 501, len: 300).Length;
        h.C(Ack | Psh, 101, 501, len: 300);
        reply += h.Build(false, Ack, 501, 401).Length;
        h.S(Ack, 501, 401);

        FlowInfo f = h.Flow()!.Value;
        Assert.Equal(3, f.PacketsOriginal);
        Assert.Equal(orig, f.BytesOriginal);
        Assert.Equal(2, f.PacketsReply);
        Assert.Equal(reply, f.BytesReply);
        Assert.Equal(40 + 40 + 340, f.BytesOriginal); // SYN and ACK without options, 300 bytes of data: IP total lengths
    }

    [Fact]
    public void Tcp_InvalidPacket_IsNotCounted()
    {
        using var h = new Harness(On());
        h.C(Syn, 100, 0);
        h.S(Syn | Ack, 500, 101);
        h.C(Ack, 101, 501);
        FlowInfo before = h.Flow()!.Value;
        // Far outside the window: INVALID, and the kernel returns before nf_ct_refresh_acct.
        Assert.Equal(CtState.Invalid, h.C(Ack, 101 + 900_000_000, 501).State);
        FlowInfo after = h.Flow()!.Value;
        Assert.Equal(before.PacketsOriginal, after.PacketsOriginal);
        Assert.Equal(before.BytesOriginal, after.BytesOriginal);
    }

    [Fact]
    public void Udp_RequestAndReply_CountsBothDirections()
    {
        using var h = new Harness(On());
        h.Udp(true, len: 10);
        h.Udp(true, len: 20);
        h.Udp(false, len: 5);
        FlowInfo f = h.UdpFlow()!.Value;
        Assert.Equal(2, f.PacketsOriginal);
        Assert.Equal((20 + 8 + 10) + (20 + 8 + 20), f.BytesOriginal);
        Assert.Equal(1, f.PacketsReply);
        Assert.Equal(20 + 8 + 5, f.BytesReply);
    }

    [Fact]
    public void Udp_ReusedSlot_StartsFromTheNewFlowsFirstPacket()
    {
        using var h = new Harness(On("nf_conntrack_udp_timeout=1"));
        for (int i = 0; i < 5; i++)
            h.Udp(true, len: 100);
        h.Sleep(3);
        h.Engine.Maintain(h.Now);
        Assert.Null(h.UdpFlow());
        h.Udp(true, len: 1);
        FlowInfo f = h.UdpFlow()!.Value;
        Assert.Equal(1, f.PacketsOriginal);
        Assert.Equal(29, f.BytesOriginal);
        Assert.Equal(0, f.PacketsReply);
        Assert.Equal(0, f.BytesReply);
    }

    [Fact]
    public void Ipv6_BytesAreFortyPlusPayloadLength()
    {
        using var h = new Harness(On(), v6: true);
        h.Udp(true, len: 10);
        Assert.Equal(40 + 8 + 10, h.UdpFlow()!.Value.BytesOriginal);
    }

    [Fact]
    public void AcctOn_FromStart_ArrayAllocatedAndFlowsCarryCounters()
    {
        using var h = new Harness(On());
        Assert.True(h.Engine.Accounting);
        Assert.NotNull(h.Engine.Table.Acct);
        h.Udp(true, len: 10);
        FlowInfo f = h.UdpFlow()!.Value;
        Assert.True(f.HasAccounting);
        Assert.Contains("packets=1 bytes=38", ConntrackListing.Format(f, ListingOptions.Accounting));
        using var doc = System.Text.Json.JsonDocument.Parse(ConntrackListing.FormatJson(f, nowMs: h.Now));
        Assert.Equal(38, doc.RootElement.GetProperty("original").GetProperty("bytes").GetInt64());
        Assert.Equal(0, doc.RootElement.GetProperty("reply").GetProperty("packets").GetInt64());
    }

    [Fact]
    public void AcctOff_NoArrayAllocated_FlowsHaveNoCounters()
    {
        using var h = new Harness(); // nf_conntrack_acct=0, the kernel's default
        Assert.False(h.Engine.Accounting);
        Assert.Null(h.Engine.Table.Acct);
        h.Udp(true, len: 10);
        h.Udp(false, len: 5);
        h.C(Syn, 100, 0); // the TCP new-flow path too
        Assert.Null(h.Engine.Table.Acct); // the packet path never allocates it
        FlowInfo f = h.UdpFlow()!.Value;
        Assert.False(f.HasAccounting);
        Assert.Equal(0, f.PacketsOriginal + f.BytesOriginal + f.PacketsReply + f.BytesReply);
        Assert.DoesNotContain("packets=", ConntrackListing.Format(f, ListingOptions.Accounting));
        using var doc = System.Text.Json.JsonDocument.Parse(ConntrackListing.FormatJson(f, nowMs: h.Now));
        Assert.False(doc.RootElement.GetProperty("original").TryGetProperty("packets", out _));
        Assert.False(doc.RootElement.GetProperty("original").TryGetProperty("bytes", out _));
        Assert.False(doc.RootElement.GetProperty("reply").TryGetProperty("packets", out _));
        Assert.All(h.Engine.Snapshot(h.Now), flow => Assert.False(flow.HasAccounting));
    }

    [Fact]
    public void Reload_TurnsAcctOn_CountsPacketsFromThen()
    {
        using var h = new Harness();
        h.Udp(true, len: 10);
        h.Udp(true, len: 10);
        Assert.Null(h.Engine.Table.Acct);

        List<string> changed = h.Engine.ReloadSettings(Harness.With("nf_conntrack_acct=1"));
        Assert.Equal(["nf_conntrack_acct"], changed);
        Assert.True(h.Engine.Settings.Acct);
        Assert.True(h.Engine.Accounting);

        // A flow live before: zero at the reload, then counted (the kernel would show it no counters).
        FlowInfo before = h.UdpFlow()!.Value;
        Assert.True(before.HasAccounting);
        Assert.Equal(0, before.PacketsOriginal);
        h.Udp(true, len: 20);
        h.Udp(false, len: 5);
        FlowInfo live = h.UdpFlow()!.Value;
        Assert.Equal(1, live.PacketsOriginal);
        Assert.Equal(20 + 8 + 20, live.BytesOriginal);
        Assert.Equal(1, live.PacketsReply);
        Assert.Equal(20 + 8 + 5, live.BytesReply);

        // A new flow counts from its first packet.
        h.ClientPort++;
        h.Udp(true, len: 1);
        FlowInfo fresh = h.UdpFlow()!.Value;
        Assert.Equal(1, fresh.PacketsOriginal);
        Assert.Equal(29, fresh.BytesOriginal);
    }

    [Fact]
    public void Reload_TurnsAcctOff_KeepsTheArrayAndCounting()
    {
        using var h = new Harness(On());
        FlowAcct[]? array = h.Engine.Table.Acct;
        h.Udp(true, len: 10);
        Assert.Equal(["nf_conntrack_acct"], h.Engine.ReloadSettings(new ConntrackSettings()));
        Assert.False(h.Engine.Settings.Acct);
        // Workers may hold the array: it stays, and so does counting (listings hide it: ListingOptions).
        Assert.Same(array, h.Engine.Table.Acct);
        h.Udp(true, len: 10);
        Assert.Equal(2, h.UdpFlow()!.Value.PacketsOriginal);
        // On again: the same array, nothing lost.
        h.Engine.ReloadSettings(On());
        Assert.Same(array, h.Engine.Table.Acct);
        Assert.Equal(2, h.UdpFlow()!.Value.PacketsOriginal);
    }
}
