using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Firewall.Shadow;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall.Tests;

/// <summary>
/// The functional tier: the whole decision in process, packets in through an in-memory queue,
/// verdicts out, as the daemon runs it on NFQUEUE but without root.
/// </summary>
public sealed class PipelineFunctionalTests
{
    private const string GatewayRules = """
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :FWD_NEW - [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -m conntrack --ctstate NEW -j FWD_NEW
        -A FWD_NEW -i lan0 -o wan0 -p tcp -m tcp --dport 80 -j ACCEPT
        -A FWD_NEW -i lan0 -o wan0 -p tcp -m tcp --dport 113 -j REJECT --reject-with tcp-reset
        -A FWD_NEW -i lan0 -o wan0 -p udp -m udp --dport 53 -j REJECT
        -A FWD_NEW -p tcp -m tcp --dport 25 -j LOG --log-prefix "smtp: "
        COMMIT
        """;

    [Fact]
    public void Handshake_AllowedPort_AcceptedNewThenEstablished()
    {
        using var gw = new Gateway(GatewayRules);
        var o = gw.Forward(Gateway.Handshake(40000, 80));
        Assert.All(o, x => Assert.Equal(FirewallVerdict.Accept, x.Verdict));
        Assert.Equal([CtState.New, CtState.Established, CtState.Established], o.Select(x => x.State));
        Assert.Equal("FWD_NEW:1", o[0].Decision.Describe(gw.Pipeline.Config.Rules!));
        Assert.Equal("FORWARD:2", o[1].Decision.Describe(gw.Pipeline.Config.Rules!));
        Assert.Equal(1, gw.Engine.Count);
        Assert.Equal(3, gw.Pipeline.Counters.Accepted);
    }

    [Fact]
    public void NewSyn_DroppedByPolicy_CreatesNoState()
    {
        using var gw = new Gateway(GatewayRules);
        var first = gw.ForwardOne(Gateway.Tcp(true, 40001, 8080, TcpFlags.Syn, 1000, 0));
        Assert.Equal(FirewallVerdict.Drop, first.Verdict);
        Assert.Equal(DecisionCause.Policy, first.Decision.Cause);
        Assert.Equal("FORWARD:policy", first.Decision.Describe(gw.Pipeline.Config.Rules!));
        Assert.Equal(0, gw.Engine.Count);
        // The kernel never confirmed the entry, so the server's SYN/ACK finds nothing and is NEW
        // (loose pickup is off for SYN/ACK without SYN: INVALID), and a retransmitted SYN is NEW again.
        var again = gw.ForwardOne(Gateway.Tcp(true, 40001, 8080, TcpFlags.Syn, 1000, 0));
        Assert.Equal(CtState.New, again.State);
        Assert.Equal(0, gw.Engine.Count);
    }

    [Fact]
    public void NewSyn_Rejected_AnswersWithRstAndCreatesNoState()
    {
        using var gw = new Gateway(GatewayRules);
        var o = gw.ForwardOne(Gateway.Tcp(true, 40002, 113, TcpFlags.Syn, 7777, 0));
        Assert.Equal(FirewallVerdict.Reject, o.Verdict);
        Assert.Equal(RejectWith.TcpReset, o.Decision.RejectWith);
        Assert.Equal(0, gw.Engine.Count);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(o.Reply, out ParsedPacket rst));
        Assert.Equal(IpProto.Tcp, rst.Protocol);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.TcpFlags & (TcpFlags.Rst | TcpFlags.Ack));
        Assert.Equal(Gateway.Server, rst.Src);
        Assert.Equal(Gateway.Client, rst.Dst);
        Assert.Equal(7778u, rst.AckSeq);
    }

    [Fact]
    public void UdpReject_AnswersPortUnreachableQuotingThePacket()
    {
        using var gw = new Gateway(GatewayRules);
        var o = gw.ForwardOne(Gateway.Udp(true, 5353, 53));
        Assert.Equal(FirewallVerdict.Reject, o.Verdict);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(o.Reply, out ParsedPacket icmp));
        Assert.Equal(IpProto.Icmp, icmp.Protocol);
        Assert.Equal(3, icmp.IcmpType);
        Assert.Equal(3, icmp.IcmpCode);
        Assert.Equal(0, gw.Engine.Count);
    }

    [Fact]
    public void InvalidAck_DroppedByInvalidRule()
    {
        using var gw = new Gateway(GatewayRules, ConntrackSettingsWith("nf_conntrack_tcp_loose=0"));
        var o = gw.ForwardOne(Gateway.Tcp(true, 40003, 80, TcpFlags.Ack, 1, 1));
        Assert.Equal(CtState.Invalid, o.State);
        Assert.Equal(FirewallVerdict.Drop, o.Verdict);
        Assert.Equal("FORWARD:1", o.Decision.Describe(gw.Pipeline.Config.Rules!));
        Assert.Equal(1, gw.Pipeline.Counters.States[(int)CtState.Invalid]);
    }

    [Fact]
    public void RetransmittedSyn_InTheSameBatch_FindsTheConfirmedEntry()
    {
        using var gw = new Gateway(GatewayRules);
        byte[] syn = Gateway.Tcp(true, 40004, 80, TcpFlags.Syn, 1000, 0);
        var o = gw.Forward(syn, syn);
        // Each decision confirms (or aborts) its entry before the next packet is tracked, so the
        // second SYN is a retransmission on the entry the first created, not a second NEW entry.
        Assert.All(o, x => Assert.Equal(FirewallVerdict.Accept, x.Verdict));
        Assert.All(o, x => Assert.Equal(CtState.New, x.State));
        Assert.Equal(TcpState.SynSent, o[1].Decision.Conntrack.PreviousTcpState);
        Assert.Equal(0, gw.Pipeline.Counters.ConfirmDrops);
        Assert.Equal(1, gw.Engine.Count);
    }

    [Fact]
    public void LogRule_WritesKernelStyleLineAndGoesOn()
    {
        using var gw = new Gateway(GatewayRules);
        var o = gw.ForwardOne(Gateway.Tcp(true, 40005, 25, TcpFlags.Syn, 1000, 0));
        Assert.Equal(FirewallVerdict.Drop, o.Verdict); // LOG is not terminal: the policy drops
        string log = gw.LogText.ToString();
        Assert.Contains("smtp: IN=lan0 OUT=wan0 ", log);
        Assert.Contains("SRC=192.0.2.10 DST=198.51.100.20", log);
        Assert.Contains("DPT=25", log);
    }

    [Fact]
    public void Reconfigure_MidBatch_TakesEffectAtTheNextBatchOnly()
    {
        using var gw = new Gateway(GatewayRules);
        const string open = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        byte[] syn1 = Gateway.Tcp(true, 40006, 8080, TcpFlags.Syn, 1000, 0);
        byte[] syn2 = Gateway.Tcp(true, 40016, 8080, TcpFlags.Syn, 1000, 0);
        // The swap comes (as from the control thread) right after the first packet's decision.
        var batch = new SwappingBatch([syn1, syn2], () => gw.Pipeline.Reconfigure(Gateway.Config(open)));
        gw.Pipeline.DecideBatch(ref batch, gw.Now);
        Assert.Equal([FirewallVerdict.Drop, FirewallVerdict.Drop], batch.Verdicts);
        var after = gw.ForwardOne(syn2);
        Assert.Equal(FirewallVerdict.Accept, after.Verdict);
        Assert.Equal("FORWARD:policy", after.Decision.Describe(gw.Pipeline.Config.Rules!));
        Assert.DoesNotContain(gw.Pipeline.Config.Rules!.Chains, c => c.Name == "FWD_NEW");
    }

    [Theory]
    [InlineData(false, FirewallVerdict.Accept)]
    [InlineData(true, FirewallVerdict.Drop)]
    public void PacketWithoutBytes_FollowsFailMode(bool failClosed, FirewallVerdict expected)
    {
        using var gw = new Gateway(GatewayRules, failClosed: failClosed);
        gw.Queue.Enqueue([], new PacketMeta { Hook = PacketHook.Forward });
        var o = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(expected, o[0].Verdict);
        Assert.Equal(DecisionCause.NoPayload, o[0].Decision.Cause);
        Assert.Equal(1, gw.Pipeline.Counters.NoPayload);
    }

    [Fact]
    public void PreRoutingHook_TrackedAndAcceptedWithoutRules()
    {
        using var gw = new Gateway(GatewayRules);
        byte[] syn = Gateway.Tcp(true, 40007, 8080, TcpFlags.Syn, 1000, 0);
        gw.Queue.Enqueue(syn, new PacketMeta { Hook = PacketHook.PreRouting, VerifyChecksums = true });
        var o = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(FirewallVerdict.Accept, o[0].Verdict);
        Assert.Equal(DecisionCause.NoFilterHook, o[0].Decision.Cause);
        Assert.Equal(1, gw.Engine.Count);
    }

    [Fact]
    public void NoRuleset_TracksAndAcceptsEverything()
    {
        using var gw = new Gateway(rules: null);
        var o = gw.Forward(Gateway.Handshake(40008, 9999));
        Assert.All(o, x => Assert.Equal(FirewallVerdict.Accept, x.Verdict));
        Assert.Equal(CtState.Established, o[2].State);
    }

    [Fact]
    public void CorruptChecksum_InvalidWhenVerifiedButNotWhenTheTransportCannotVerify()
    {
        byte[] syn = Gateway.Tcp(true, 40009, 80, TcpFlags.Syn, 1000, 0);
        syn[^1] ^= 0x5a; // last byte of the TCP header: the checksum no longer adds up
        using var gw = new Gateway(GatewayRules);
        gw.Queue.Enqueue(syn, Gateway.ForwardMeta(syn));
        var verified = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(CtState.Invalid, verified[0].State);
        Assert.Equal(InvalidReason.TcpBadChecksum, verified[0].Decision.Conntrack.Reason);

        var meta = Gateway.ForwardMeta(syn);
        gw.Queue.Enqueue(syn, new PacketMeta { Hook = meta.Hook, InInterface = meta.InInterface, OutInterface = meta.OutInterface, VerifyChecksums = false });
        var unverified = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(CtState.New, unverified[0].State);
        Assert.Equal(FirewallVerdict.Accept, unverified[0].Verdict);
    }

    [Fact]
    public void PaddedDatagram_DecidedAsTheDatagram()
    {
        byte[] syn = Gateway.Tcp(true, 40010, 80, TcpFlags.Syn, 1000, 0);
        byte[] padded = [.. syn, 0, 0, 0, 0, 0, 0];
        using var gw = new Gateway(GatewayRules);
        var o = gw.ForwardOne(padded);
        Assert.Equal(CtState.New, o.State);
        Assert.Equal(FirewallVerdict.Accept, o.Verdict);
    }

    [Fact]
    public void ShadowMode_KernelAnswerDrivesRulesAndDisagreementIsCounted()
    {
        var mark = new KernelStateMark(KernelStateMark.DefaultShift);
        var abLines = new LogQueue(64);
        var shadow = new ShadowMode(mark, EnforceCtfw: false, new AbLog(abLines));
        using var gw = new Gateway(GatewayRules, ConntrackSettingsWith("nf_conntrack_tcp_loose=0"), shadow: shadow);
        // A mid-stream ACK: ctfw (loose off) says INVALID, the "kernel" says ESTABLISHED.
        byte[] ack = Gateway.Tcp(true, 40011, 80, TcpFlags.Ack, 1, 1);
        uint kernelEstablished = mark.Encode(CtState.Established, CtDirection.Original) | 0x1;
        gw.Queue.Enqueue(ack, Gateway.ForwardMeta(ack, kernelEstablished));
        var o = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(CtState.Invalid, o[0].State);
        Assert.True(o[0].Decision.Disagreed);
        Assert.Equal(CtState.Established, o[0].Decision.RuleState);
        Assert.Equal(FirewallVerdict.Accept, o[0].Verdict);
        Assert.Equal(1, gw.Pipeline.Counters.AbCompared);
        Assert.Equal(0, gw.Pipeline.Counters.AbAgreed);
        Assert.Contains("kernel ESTABLISHED ORIGINAL, ctfw INVALID", QueuedLines.Drain(abLines));

        // Enforcing ctfw's answer: the same packet is dropped by the INVALID rule.
        gw.Pipeline.Reconfigure(Gateway.Config(GatewayRules, shadow: shadow with { EnforceCtfw = true }));
        gw.Queue.Enqueue(ack, Gateway.ForwardMeta(ack, kernelEstablished));
        var enforced = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(FirewallVerdict.Drop, enforced[0].Verdict);
        Assert.Equal(2, gw.Pipeline.Counters.AbCompared);
    }

    [Theory]
    [InlineData("-A FORWARD -m mark --mark 0x1 -j DROP", 0x1u, FirewallVerdict.Drop)]
    [InlineData("-A FORWARD -m mark --mark 0x1 -j DROP", 0x2u, FirewallVerdict.Accept)]
    [InlineData("-A FORWARD -m mark ! --mark 0/0x0f000000 -j DROP", 0x1u, FirewallVerdict.Accept)]
    [InlineData("-A FORWARD -m mark --mark 0x01000000/0x0f000000 -j DROP", 0x0u, FirewallVerdict.Accept)]
    public void ShadowMode_MarkMatch_NeverSeesTheShadowBits(string rule, uint ownMark, FirewallVerdict expected)
    {
        // The kernel's answer rides in bits 24-27 of the mark; -m mark compares the rest only (docs/AB.md).
        var mark = new KernelStateMark(KernelStateMark.DefaultShift);
        var shadow = new ShadowMode(mark, EnforceCtfw: false, new AbLog(new LogQueue(64)));
        using var gw = new Gateway($"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{rule}\nCOMMIT\n", shadow: shadow);
        byte[] syn = Gateway.Tcp(true, 40014, 80, TcpFlags.Syn, 1000, 0);
        gw.Queue.Enqueue(syn, Gateway.ForwardMeta(syn, mark.Encode(CtState.New, CtDirection.Original) | ownMark));
        var o = gw.Queue.Run(gw.Pipeline, gw.Now);
        Assert.Equal(1, gw.Pipeline.Counters.AbCompared);
        Assert.Equal(expected, o[0].Verdict);
    }

    [Fact]
    public void ShadowMode_UnmarkedPacket_CountedAndCtfwAnswerUsed()
    {
        var shadow = new ShadowMode(new KernelStateMark(KernelStateMark.DefaultShift), false, new AbLog(new LogQueue(64)));
        using var gw = new Gateway(GatewayRules, shadow: shadow);
        var o = gw.ForwardOne(Gateway.Tcp(true, 40012, 80, TcpFlags.Syn, 1000, 0));
        Assert.Equal(FirewallVerdict.Accept, o.Verdict);
        Assert.Equal(1, gw.Pipeline.Counters.AbUnmarked);
        Assert.Equal(0, gw.Pipeline.Counters.AbCompared);
    }

    [Fact]
    public void Ipv6Handshake_AcceptedAndEstablished()
    {
        using var gw = new Gateway(GatewayRules);
        var o = gw.Forward(Gateway.Handshake(40013, 80, v6: true));
        Assert.All(o, x => Assert.Equal(FirewallVerdict.Accept, x.Verdict));
        Assert.Equal(CtState.Established, o[2].State);
    }

    [Theory]
    [InlineData(VerdictReason.Rule)]
    [InlineData(VerdictReason.Policy)]
    [InlineData(VerdictReason.HotDrop)]
    [InlineData(VerdictReason.NotFiltered)]
    [InlineData(VerdictReason.Overflow)]
    public void DecisionCause_SharesTheEvaluatorsReasonValues(VerdictReason reason) =>
        Assert.Equal(reason.ToString().Replace("Overflow", "RulesOverflow", StringComparison.Ordinal), ((DecisionCause)reason).ToString());

    [Fact]
    public void Decide_OutsideABatch_Refused()
    {
        using var gw = new Gateway(GatewayRules);
        byte[] syn = Gateway.Tcp(true, 40014, 80, TcpFlags.Syn, 1000, 0);
        Assert.Throws<InvalidOperationException>(() => gw.Pipeline.Decide(syn, Gateway.ForwardMeta(syn), gw.Now, out _));
    }

    [Fact]
    public void EstablishedTraffic_AllocatesNothingPerPacket()
    {
        using var gw = new Gateway(GatewayRules);
        gw.Forward(Gateway.Handshake(40015, 80));
        byte[][] data = new byte[64][];
        for (int i = 0; i < data.Length; i++)
            data[i] = Gateway.Tcp(i % 2 == 0, 40015, 80, TcpFlags.Ack | TcpFlags.Psh, i % 2 == 0 ? 1001u + (uint)(i / 2 * 100) : 5001u + (uint)(i / 2 * 100), i % 2 == 0 ? 5001u + (uint)(i / 2 * 100) : 1001u + (uint)(i / 2 * 100 + 100), payload: 100);
        var batch = new ArrayBatch(data);
        gw.Pipeline.DecideBatch(ref batch, gw.Now); // warm up (JIT, tiering)
        for (int round = 0; round < 3; round++)
            gw.Pipeline.DecideBatch(ref batch, gw.Now);
        batch.Accepted = 0;
        long before = GC.GetAllocatedBytesForCurrentThread();
        gw.Pipeline.DecideBatch(ref batch, gw.Now);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(data.Length, batch.Accepted);
    }

    private static ConntrackSettings ConntrackSettingsWith(string assignment)
    {
        var s = new ConntrackSettings();
        Assert.Null(s.SetAssignment(assignment));
        return s;
    }

    /// <summary>Forwarded LAN→WAN packets; calls an action after the first decision.</summary>
    private struct SwappingBatch(byte[][] packets, Action afterFirst) : IPacketBatch
    {
        public readonly List<FirewallVerdict> Verdicts = [];

        public readonly int Count => packets.Length;

        public readonly ReadOnlySpan<byte> Packet(int index) => packets[index];

        public readonly PacketMeta Meta(int index) => Gateway.ForwardMeta(packets[index]);

        public readonly void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply)
        {
            Verdicts.Add(decision.Verdict);
            if (index == 0)
                afterFirst();
        }
    }

    /// <summary>A batch over fixed packets that counts accepts: no allocation of its own.</summary>
    private struct ArrayBatch(byte[][] packets) : IPacketBatch
    {
        public int Accepted;

        public readonly int Count => packets.Length;

        public readonly ReadOnlySpan<byte> Packet(int index) => packets[index];

        public readonly PacketMeta Meta(int index) => new()
        {
            Hook = PacketHook.Forward,
            InInterface = index % 2 == 0 ? Gateway.Lan : Gateway.Wan,
            OutInterface = index % 2 == 0 ? Gateway.Wan : Gateway.Lan,
            VerifyChecksums = true,
        };

        public void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply)
        {
            if (decision.Verdict == FirewallVerdict.Accept)
                Accepted++;
        }
    }
}
