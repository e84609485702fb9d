using System.Buffers.Binary;
using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>REJECT replies parse back (PacketParser), carry the kernel's seq/ack and valid checksums, and are not sent where the kernel sends none.</summary>
public class RejectBuilderTests
{
    private static int Build(TestPacket p, RejectWith with, Span<byte> reply, IpAddress? source = null, bool verify = true, Hook hook = Hook.Input)
    {
        var facts = new PacketFacts(hook, ref p.Parsed, p.Bytes, p.Result) { State = CtState.New };
        return RejectBuilder.Build(reply, with, facts, source, verify);
    }

    private static (TestPacket Reply, ParsedPacket Parsed) Reply(TestPacket p, RejectWith with, IpAddress? source = null)
    {
        byte[] buffer = new byte[RejectBuilder.MaxReplyLength];
        int n = Build(p, with, buffer, source);
        Assert.True(n > 0, "expected a reply");
        var reply = new TestPacket(buffer[..n]);
        Assert.Equal(InvalidReason.None, reply.Result);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(reply.Bytes, reply.Parsed));
        if (!reply.Parsed.IsV6)
            Assert.Equal(0, Checksums.InternetChecksum(reply.Bytes.AsSpan(0, 20)));
        return (reply, reply.Parsed);
    }

    private static int NoReplyLength(TestPacket p, RejectWith with, bool verify = true) =>
        Build(p, with, new byte[RejectBuilder.MaxReplyLength], verify: verify);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TcpReset_ForSyn_AcksTheSynWithSequenceZero(bool v6)
    {
        (TestPacket reply, ParsedPacket r) = Reply(T.Tcp(v6: v6, seq: 0xFFFF_FFFF), RejectWith.TcpReset);
        Assert.Equal(IpProto.Tcp, r.Protocol);
        Assert.Equal((T.Server(v6), T.Client(v6), (ushort)80, (ushort)40000), (r.Src, r.Dst, r.SrcPort, r.DstPort));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, r.TcpFlags);
        Assert.Equal(0u, r.Seq);
        Assert.Equal(0u, r.AckSeq); // seq + 1 wraps
        Assert.Equal((ushort)0, r.Window);
        Assert.Equal(20, r.TcpHeaderLength);
        Assert.Equal(64, r.Ttl);
        Assert.Equal(v6 ? 60 : 40, reply.Bytes.Length);
        if (!v6)
            Assert.Equal(0x40, reply.Bytes[6]); // DF, as nf_reject_iphdr_put sets it
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TcpReset_ForSegmentWithAck_UsesItsAckAsSequence(bool v6)
    {
        (_, ParsedPacket r) = Reply(T.Tcp(v6: v6, flags: TcpFlags.Ack | TcpFlags.Psh, seq: 5000, ack: 7000, payload: 100), RejectWith.TcpReset);
        Assert.Equal(TcpFlags.Rst, r.TcpFlags);
        Assert.Equal(7000u, r.Seq);
        Assert.Equal(0u, r.AckSeq);
    }

    [Fact]
    public void TcpReset_ForFinWithDataWithoutAck_AcksPayloadPlusFin()
    {
        (_, ParsedPacket r) = Reply(T.Tcp(flags: TcpFlags.Fin, seq: 1000, payload: 10), RejectWith.TcpReset);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, r.TcpFlags);
        Assert.Equal(0u, r.Seq);
        Assert.Equal(1011u, r.AckSeq);
    }

    [Fact]
    public void TcpReset_ForSynWithOptions_CountsOnlyPayload()
    {
        var spec = new TcpSpec { Src = T.V4Client, Dst = T.V4Server, SrcPort = 1, DstPort = 2, Seq = 100, Flags = TcpFlags.Syn, Mss = 1460, Timestamp = true, PayloadLength = 3 };
        byte[] buffer = new byte[200];
        var p = new TestPacket(buffer[..PacketBuilder.Tcp(buffer, spec)]);
        Assert.Equal(104u, Reply(p, RejectWith.TcpReset).Parsed.AckSeq);
    }

    [Theory]
    [InlineData(RejectWith.IcmpNetUnreachable, 0)]
    [InlineData(RejectWith.IcmpHostUnreachable, 1)]
    [InlineData(RejectWith.IcmpProtoUnreachable, 2)]
    [InlineData(RejectWith.IcmpPortUnreachable, 3)]
    [InlineData(RejectWith.Default, 3)]
    [InlineData(RejectWith.IcmpNetProhibited, 9)]
    [InlineData(RejectWith.IcmpHostProhibited, 10)]
    [InlineData(RejectWith.IcmpAdminProhibited, 13)]
    public void Unreachable_Ipv4_QuotesTheOffenderWithTheKindsCode(RejectWith with, byte code)
    {
        TestPacket udp = T.Udp();
        (TestPacket reply, ParsedPacket r) = Reply(udp, with);
        Assert.Equal((IpProto.Icmp, (byte)3, code), (r.Protocol, r.IcmpType, r.IcmpCode));
        Assert.Equal((T.V4Server, T.V4Client), (r.Src, r.Dst));
        Assert.True(r.Inner.Present);
        Assert.Equal((IpProto.Udp, T.V4Client, T.V4Server, (ushort)5353, (ushort)53), (r.Inner.Protocol, r.Inner.Src, r.Inner.Dst, r.Inner.SrcId, r.Inner.DstId));
        Assert.Equal(udp.Bytes, reply.Bytes[28..]);
        Assert.Equal(0xC0, reply.Bytes[1]); // precedence "internetwork control"
    }

    [Theory]
    [InlineData(RejectWith.Icmp6NoRoute, 0)]
    [InlineData(RejectWith.Icmp6AdmProhibited, 1)]
    [InlineData(RejectWith.Icmp6AddrUnreachable, 3)]
    [InlineData(RejectWith.Icmp6PortUnreachable, 4)]
    [InlineData(RejectWith.Default, 4)]
    [InlineData(RejectWith.Icmp6PolicyFail, 5)]
    [InlineData(RejectWith.Icmp6RejectRoute, 6)]
    public void Unreachable_Ipv6_QuotesTheOffenderWithTheKindsCode(RejectWith with, byte code)
    {
        TestPacket tcp = T.Tcp(v6: true);
        (TestPacket reply, ParsedPacket r) = Reply(tcp, with);
        Assert.Equal((IpProto.Icmpv6, (byte)1, code), (r.Protocol, r.IcmpType, r.IcmpCode));
        Assert.Equal((T.V6Server, T.V6Client), (r.Src, r.Dst));
        Assert.True(r.Inner.Present);
        Assert.Equal((IpProto.Tcp, (ushort)40000, (ushort)80), (r.Inner.Protocol, r.Inner.SrcId, r.Inner.DstId));
        Assert.Equal(tcp.Bytes, reply.Bytes[48..]);
    }

    [Theory]
    [InlineData(false, 576)]
    [InlineData(true, 1280)]
    public void Unreachable_LargeOffender_IsQuotedUpToTheMinimumMtu(bool v6, int expected)
    {
        (TestPacket reply, _) = Reply(T.Udp(v6: v6, payload: 1400), RejectWith.Default);
        Assert.Equal(expected, reply.Bytes.Length);
    }

    [Fact]
    public void Unreachable_WithSourceForForwardedPacket_AnswersFromThatAddress()
    {
        IpAddress router = T.Addr("203.0.113.1");
        Assert.Equal(router, Reply(T.Udp(), RejectWith.IcmpAdminProhibited, router).Parsed.Src);
    }

    [Fact]
    public void Unreachable_ForEchoRequest_IsSent() =>
        Assert.Equal((byte)3, Reply(T.Icmp(), RejectWith.Default).Parsed.IcmpType);

    [Theory]
    [InlineData("rst4")]
    [InlineData("rst6")]
    [InlineData("udp-for-reset")]
    [InlineData("icmp-error4")]
    [InlineData("icmp-unknown4")]
    [InlineData("icmp-redirect4")]
    [InlineData("icmp-error6")]
    [InlineData("multicast4")]
    [InlineData("broadcast4")]
    [InlineData("zero-source4")]
    [InlineData("multicast6")]
    [InlineData("unspecified-source6")]
    [InlineData("reset-to-multicast6")]
    [InlineData("fragment4")]
    [InlineData("bad-checksum4")]
    [InlineData("bad-checksum6")]
    [InlineData("wrong-family")]
    public void Build_WhereTheKernelSendsNothing_ReturnsZero(string name)
    {
        (TestPacket p, RejectWith with) = name switch
        {
            "rst4" => (T.Tcp(flags: TcpFlags.Rst), RejectWith.TcpReset),
            "rst6" => (T.Tcp(v6: true, flags: TcpFlags.Rst | TcpFlags.Ack), RejectWith.TcpReset),
            "udp-for-reset" => (T.Udp(), RejectWith.TcpReset),
            "icmp-error4" => (T.IcmpError(false, 3, 1, T.Udp()), RejectWith.Default),
            "icmp-unknown4" => (T.Icmp(type: 40), RejectWith.Default),
            "icmp-redirect4" => (T.Icmp(type: 5), RejectWith.Default),
            "icmp-error6" => (T.IcmpError(true, 3, 0, T.Udp(v6: true)), RejectWith.Default),
            "multicast4" => (T.Udp(dst: T.Addr("224.0.0.251")), RejectWith.Default),
            "broadcast4" => (T.Udp(dst: T.Addr("255.255.255.255")), RejectWith.Default),
            "zero-source4" => (T.Udp(src: T.Addr("0.0.0.0")), RejectWith.IcmpHostProhibited),
            "multicast6" => (T.Udp(v6: true, dst: T.Addr("ff02::fb")), RejectWith.Default),
            "unspecified-source6" => (T.Udp(v6: true, src: T.Addr("::")), RejectWith.Default),
            "reset-to-multicast6" => (T.Tcp(v6: true, dst: T.Addr("ff02::1")), RejectWith.TcpReset),
            "fragment4" => (MatchTests.Fragment(T.Udp(), 16, more: false), RejectWith.Default),
            "bad-checksum4" => (Corrupt(T.Tcp()), RejectWith.TcpReset),
            "bad-checksum6" => (Corrupt(T.Udp(v6: true)), RejectWith.Default),
            "wrong-family" => (T.Udp(), RejectWith.Icmp6AdmProhibited),
            _ => throw new ArgumentException(name),
        };
        Assert.Equal(0, NoReplyLength(p, with));
    }

    private static TestPacket Corrupt(TestPacket p)
    {
        byte[] bytes = (byte[])p.Bytes.Clone();
        bytes[^1] ^= 0xFF;
        if (p.Parsed.Protocol == IpProto.Tcp)
            bytes[p.Parsed.L3HeaderLength + 4] ^= 0x01; // the sequence number: the TCP checksum covers it
        return new TestPacket(bytes);
    }

    [Fact]
    public void Build_BadChecksumWithVerificationOff_StillAnswers()
    {
        // Locally generated packets carry partial checksums (offload): the kernel does not verify them.
        TestPacket bad = Corrupt(T.Tcp());
        Assert.Equal(40, Build(bad, RejectWith.TcpReset, new byte[RejectBuilder.MaxReplyLength], verify: false, hook: Hook.Output));
    }

    [Fact]
    public void Build_UdpWithoutChecksum_IsAnswered()
    {
        byte[] bytes = (byte[])T.Udp().Bytes.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(26), 0);
        Assert.Equal(3, Reply(new TestPacket(bytes), RejectWith.Default).Parsed.IcmpType);
    }

    [Fact]
    public void Build_BufferTooSmallForTheReply_Throws()
    {
        TestPacket p = T.Udp();
        Assert.Throws<ArgumentException>(() => Build(p, RejectWith.Default, new byte[30]));
    }

    [Fact]
    public void Build_FromEvaluatedVerdict_AnswersWithTheResolvedKind()
    {
        Ruleset rs = T.Load(File.ReadAllText(Path.Combine(T.RulesDirectory(), "gateway.rules")));
        TestPacket ident = T.Tcp(dport: 113, seq: 77);
        RuleVerdict v = T.Eval(rs, ident, state: CtState.New);
        Assert.Equal((Verdict.Reject, RejectWith.TcpReset), (v.Verdict, v.RejectWith));
        Assert.Equal(78u, Reply(ident, v.RejectWith).Parsed.AckSeq);
    }
}
