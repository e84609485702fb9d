using Ctfw.Conntrack;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

public class ChecksumAndClashTests
{
    private static readonly PacketContext Deferred = new() { VerifyChecksums = true, DeferConfirm = true };

    [Fact]
    public void TcpBadChecksum_AtPreRouting_InvalidAndEntryUntouched()
    {
        using var h = new Harness();
        h.C(Syn, 1000, 0);
        h.S(Syn | Ack, 5000, 1001);
        byte[] ack = h.Build(true, Ack, 1001, 5001).ToArray();
        ack[^1] ^= 0x55; // the urgent pointer: covered by the TCP checksum, ignored otherwise
        Classification r = h.Send(ack);
        r.IsInvalid(InvalidReason.TcpBadChecksum);
        Assert.Equal(TcpState.SynRecv, r.TcpState); // reported, not changed
        Assert.Equal(TcpState.SynRecv, h.Flow()!.Value.TcpState);
    }

    [Fact]
    public void TcpBadChecksum_NotVerified_WhenSysctlOffOrLocallyGenerated()
    {
        using var h = new Harness(Harness.With("nf_conntrack_checksum=0"));
        byte[] syn = h.Build(true, Syn, 1000, 0).ToArray();
        syn[^1] ^= 0x55;
        h.Send(syn).Is(CtState.New, CtDirection.Original, TcpState.SynSent);

        using var local = new Harness();
        byte[] syn2 = local.Build(true, Syn, 1000, 0).ToArray();
        syn2[^1] ^= 0x55;
        local.Send(syn2, verifyChecksums: false).Is(CtState.New, CtDirection.Original, TcpState.SynSent);
    }

    [Fact]
    public void Confirm_TcpClash_SecondPacketDropped_UdpClash_Accepted()
    {
        using var h = new Harness();
        byte[] syn = h.Build(true, Syn, 1000, 0).ToArray();
        h.Worker.Enter();
        h.Worker.Process(syn, h.Now, Deferred, out Classification a);
        h.Worker.Process(syn, h.Now, Deferred, out Classification b);
        Assert.True(a.PendingEntry >= 0 && b.PendingEntry >= 0);
        Assert.True(h.Worker.Confirm(ref a));
        Assert.False(h.Worker.Confirm(ref b)); // insert_failed: the kernel drops the second SYN
        byte[] udp = h.UdpBytes(true);
        h.Worker.Process(udp, h.Now, Deferred, out Classification c);
        h.Worker.Process(udp, h.Now, Deferred, out Classification d);
        Assert.True(h.Worker.Confirm(ref c));
        Assert.True(h.Worker.Confirm(ref d));   // clash resolution: accepted onto the first entry
        h.Worker.Exit();
        h.Engine.Maintain(h.Now);
        Assert.Equal(2, h.Engine.Count);
        Assert.Equal(2, h.Engine.Snapshot(h.Now).Count);
    }
}
