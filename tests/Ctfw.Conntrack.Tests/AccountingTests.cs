using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Per-flow accounting (nf_conntrack_acct): packets and bytes (IP total length) per direction, for
/// the packets the tracker accepted, as the kernel's nf_ct_refresh_acct counts them.
/// </summary>
public class AccountingTests
{
    [Fact]
    public void Tcp_HandshakeAndData_CountsEachDirectionWithIpTotalLength()
    {
        using var h = new Harness();
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
        using var h = new Harness();
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
        using var h = new Harness();
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
        using var h = new Harness(Harness.With("nf_conntrack_udp_timeout=1"));
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
        using var h = new Harness(v6: true);
        h.Udp(true, len: 10);
        Assert.Equal(40 + 8 + 10, h.UdpFlow()!.Value.BytesOriginal);
    }
}
