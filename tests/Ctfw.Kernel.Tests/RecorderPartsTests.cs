using System.Net;
using Ctfw.Kernel.Tests.Lab;
using Ctfw.Kernel.Tests.Recording;

using Ctfw.Packets;

namespace Ctfw.Kernel.Tests;

/// <summary>Unit tier: the pieces of the recorder that need no kernel.</summary>
public sealed class RecorderPartsTests
{
    [Fact]
    public void ConntrackEntry_TcpLine_ParsesStateFlagsAndBothTuples()
    {
        const string line = "tcp      6 431999 ESTABLISHED src=10.99.1.2 dst=10.99.2.2 sport=40001 dport=443 " +
            "src=10.99.2.2 dst=10.99.1.2 sport=443 dport=40001 [ASSURED] mark=0 use=1";
        Assert.True(ConntrackEntry.TryParse(line, out ConntrackEntry? e));
        Assert.Equal(6, e.Protocol);
        Assert.Equal(431999, e.TimeoutSeconds);
        Assert.Equal("ESTABLISHED", e.TcpState);
        Assert.Equal(40001, e.Original.SrcPort);
        Assert.Equal(443, e.Reply.SrcPort);
        Assert.Equal(IPAddress.Parse("10.99.1.2"), e.Reply.Dst);
        Assert.Equal(["ASSURED"], e.Flags);
    }

    [Fact]
    public void ConntrackEntry_UnrepliedIcmpv6Line_ParsesTypeAndId()
    {
        const string line = "icmpv6   58 29 src=fd99:1::2 dst=fd99:2::2 type=128 code=0 id=673 [UNREPLIED] " +
            "src=fd99:2::2 dst=fd99:1::2 type=129 code=0 id=673 mark=0 use=1";
        Assert.True(ConntrackEntry.TryParse(line, out ConntrackEntry? e));
        Assert.Null(e.TcpState);
        Assert.Equal(129, e.Reply.IcmpType);
        Assert.Equal(["UNREPLIED"], e.Flags);
    }

    [Fact]
    public void ConntrackEntry_SummaryOrGarbage_IsNotAnEntry()
    {
        Assert.False(ConntrackEntry.TryParse("conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.", out _));
        Assert.False(ConntrackEntry.TryParse("tcp 6 10 CLOSE src=10.99.1.2", out _));
    }

    [Fact]
    public void ConntrackEntry_ReplyPacket_MatchesByReplyTupleOnly()
    {
        Assert.True(ConntrackEntry.TryParse("unknown  253 599 src=10.99.1.2 dst=10.99.2.2 [UNREPLIED] src=10.99.2.2 dst=10.99.1.2 mark=0 use=1",
            out ConntrackEntry? e));
        FlowKey reply = FlowKey.FromPacket(new GenericPacket(Side.Server, false, 253).ToBytes());
        FlowKey otherProto = FlowKey.FromPacket(new GenericPacket(Side.Server, false, 254).ToBytes());
        Assert.True(e.Matches(reply));
        Assert.False(e.Matches(otherProto));
    }

    [Fact]
    public void ConntrackEntry_FtpMasterAndRelatedDataConnection_EachPacketFindsItsOwnEntry()
    {
        // As recorded in ftp_split_command: the master carries helper=ftp, the data connection (opened by the
        // server from port 20) is an ordinary entry whose ORIGINAL tuple is the server's.
        string listing =
            "tcp      6 299 ESTABLISHED src=10.99.1.2 dst=10.99.2.2 sport=40106 dport=21 src=10.99.2.2 dst=10.99.1.2 sport=21 dport=40106 [ASSURED] mark=0 helper=ftp use=1\n" +
            "tcp      6 119 SYN_SENT src=10.99.2.2 dst=10.99.1.2 sport=20 dport=40006 [UNREPLIED] src=10.99.1.2 dst=10.99.2.2 sport=40006 dport=20 mark=0 use=1\n";
        IReadOnlyList<ConntrackEntry> entries = ConntrackEntry.ParseAll(listing);
        Assert.Equal(2, entries.Count);
        var data = new TcpFlow(false, 40006, 20, 1, 2);
        var control = new TcpFlow(false, 40106, 21, 3, 4);
        Assert.Equal("SYN_SENT", Assert.Single(entries, e => e.Matches(FlowKey.FromPacket(data.Syn(Side.Server).ToBytes()))).TcpState);
        Assert.Equal("SYN_SENT", Assert.Single(entries, e => e.Matches(FlowKey.FromPacket(data.SynAck(Side.Client).ToBytes()))).TcpState);
        Assert.Equal("ESTABLISHED", Assert.Single(entries, e => e.Matches(FlowKey.FromPacket(control.Syn().ToBytes()))).TcpState);
    }

    [Fact]
    public void FlowKey_TcpSegment_TakesPortsAndAddresses()
    {
        var f = new TcpFlow(true, 40201, 443, 1, 2);
        FlowKey key = FlowKey.FromPacket(f.Syn().ToBytes());
        Assert.Equal(6, key.Protocol);
        Assert.Equal(IPAddress.Parse(LabAddresses.ClientV6), key.Src);
        Assert.Equal(40201, key.SrcPort);
        Assert.Equal(443, key.DstPort);
    }

    [Fact]
    public void TcpFlow_Handshake_ChainsSequenceAndAckNumbers()
    {
        var f = new TcpFlow(false, 40001, 80, 0xFFFF_FFFF, 1000);
        TcpPacket syn = f.Syn();
        TcpPacket synAck = f.SynAck();
        TcpPacket ack = f.Ack(Side.Client);
        TcpPacket data = f.Data(Side.Client, 10);
        TcpPacket fin = f.Fin(Side.Client);
        Assert.Equal(0xFFFF_FFFFu, syn.Seq);
        Assert.Equal(0u, synAck.Ack);      // ISN + 1 wraps
        Assert.Equal(0u, ack.Seq);
        Assert.Equal(1001u, ack.Ack);
        Assert.Equal(0u, data.Seq);
        Assert.Equal(10u, fin.Seq);
        Assert.Equal(11u, f.Nxt(Side.Client));
        Assert.Equal(TcpFlags.Fin | TcpFlags.Ack, fin.Flags);
    }

    [Fact]
    public void TcpPacket_BadChecksum_DiffersOnlyInTheChecksum()
    {
        var f = new TcpFlow(false, 40001, 80, 7, 9);
        TcpPacket syn = f.Syn();
        byte[] good = syn.ToBytes();
        byte[] bad = (syn with { BadChecksum = true }).ToBytes();
        Assert.Equal(good.Length, bad.Length);
        int[] differing = [.. Enumerable.Range(0, good.Length).Where(i => good[i] != bad[i])];
        Assert.Equal([20 + 17], differing);
    }

    [Fact]
    public void SamePacket_IgnoresOnlyTheFieldsThePathRewrites()
    {
        byte[] sent = new UdpPacket(Side.Client, false, 1, 2, 8).ToBytes();
        byte[] forwarded = (byte[])sent.Clone();
        forwarded[4] = 0x12;   // id filled in by the raw socket
        forwarded[8] -= 1;     // TTL
        forwarded[10] ^= 0xFF; // header checksum
        Assert.True(KernelRecorder.SamePacket(sent, forwarded));
        forwarded[^1] ^= 1;
        Assert.False(KernelRecorder.SamePacket(sent, forwarded));
    }

    [Fact]
    public void KernelRow_TsvLine_RoundTrips()
    {
        var row = new KernelRow(3, new KernelVerdict(CtStates.Established, CtDirections.Reply, TcpStates.SynRecv));
        Assert.Equal("3\tESTABLISHED\tREPLY\tSYN_RECV\t-", row.ToTsv());
        Assert.Equal(row, KernelRow.Parse(row.ToTsv()));
        Assert.Throws<FormatException>(() => KernelRow.Parse("3\tESTABLISHED\tSIDEWAYS\tSYN_RECV\t-"));
    }
    [Fact]
    public void CheckBursts_BurstSlowerThanTimeoutMargin_IsReportedAndSleepsAreNot()
    {
        KernelScenario udp = KernelScenarios.Get("udp_expiry"); // 2 s timeout: bursts must fit in 1 s
        Assert.Equal(TimeSpan.FromSeconds(1), udp.MaxBurst);
        long s = 1_000_000_000;
        ScenarioRecording Recording(params long[] times) => new(udp.Name,
            [.. times.Select(t => new RecordedPacket(t, []))], [], udp.EffectiveSysctls, []);

        Assert.Null(KernelRecorder.CheckBursts(udp, Recording(0, s / 2, 4 * s, 4 * s + s / 2)));
        Assert.Contains("packets 1-2", KernelRecorder.CheckBursts(udp, Recording(0, s + s / 2, 5 * s, 5 * s + 1)), StringComparison.Ordinal);
        Assert.Contains("packets 3-4", KernelRecorder.CheckBursts(udp, Recording(0, 1, 4 * s, 6 * s)), StringComparison.Ordinal);
        Assert.Null(KernelScenarios.Get("tcp_handshake_data_close").MaxBurst);
    }
}
