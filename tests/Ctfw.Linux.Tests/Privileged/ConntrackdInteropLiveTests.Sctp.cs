using Ctfw.Conntrack;
using Ctfw.Linux.Netlink;
using Ctfw.Linux.Sync;
using Ctfw.Linux.Tests.Support;
using Ctfw.Packets;
using static Ctfw.Linux.Tests.Support.SyncTestKit;

namespace Ctfw.Linux.Tests.Privileged;

public sealed partial class ConntrackdInteropLiveTests
{
    [Fact]
    public void CtfwToConntrackd_SctpAssociation_CommittedToKernelWithStateAndVtags()
    {
        using var lab = new NetnsLab();
        using var peer = new ConntrackdPeer(lab, new FtfwSession(new FtfwOptions()), trackTrafficInB: false);
        var receiver = new RecordingReceiver();
        Handshake(peer, receiver);

        KernelConnection sctp = Entry(Tuple("10.200.0.1", "10.200.0.7", IpProto.Sctp, 5000, 3868), Replied, 200) with
        {
            SctpState = SctpState.Established,
            SctpVtagOriginal = 0x11223344,
            SctpVtagReply = 0xA1B2C3D4,
        };
        Assert.True(peer.Session.Enqueue(SyncMessageType.New, sctp));
        string external = "";
        bool cached = peer.Run(receiver, () => (external = peer.Client("-e")).Contains("sport=5000", StringComparison.Ordinal));
        output.WriteLine(external);
        Assert.True(cached, $"external cache:\n{external}\nlog:\n{peer.Log}");
        Assert.Contains("sctp     132 ESTABLISHED src=10.200.0.1 dst=10.200.0.7 sport=5000 dport=3868", external, StringComparison.Ordinal);

        peer.Client("-c");
        Assert.True(peer.Run(receiver, () => peer.KernelTable().Contains("sport=5000", StringComparison.Ordinal)), peer.KernelTable());
        CtnetlinkDumpResult dump = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.B), () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            return ct.Dump();
        });
        KernelConnection k = Assert.Single(dump.Entries, e => e.Original == sctp.Original);
        // Observed with conntrackd 1.4.7 on 6.18: its commit leaves the ORIGINAL tag's last byte 0x08
        // whatever was sent (0x44 and 0xF0 alike; a TCP flag byte written over libnetfilter_conntrack's
        // protoinfo union, it seems). The rest is as sent: conntrackd read our attributes right.
        Assert.Equal((sctp.SctpState, sctp.SctpVtagOriginal & 0xFFFFFF00, sctp.SctpVtagReply), (k.SctpState, k.SctpVtagOriginal & 0xFFFFFF00, k.SctpVtagReply));
        Assert.Equal(0x08u, k.SctpVtagOriginal & 0xFF);
        Assert.Equal(0L, peer.Session.Counters.Malformed);
    }
}
