using System.Buffers.Binary;
using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>Lines as nf_log_syslog.c prints them (every field ends with a space, the line too).</summary>
public class LogFormatterTests
{
    private const string V4 = "SRC=192.0.2.10 DST=198.51.100.20";
    private const string V6 = "SRC=2001:0db8:0000:0000:0000:0000:0000:0010 DST=2001:0db8:0001:0000:0000:0000:0000:0020";

    private static string Log(TestPacket p, Hook hook = Hook.Input, LogOptions? options = null, string inIf = "eth0", string outIf = "",
        byte[]? mac = null, uint mark = 0)
    {
        var facts = new PacketFacts(hook, ref p.Parsed, p.Bytes, p.Result)
        {
            In = IfName.Create(hook == Hook.Output ? "" : inIf),
            Out = IfName.Create(hook == Hook.Input ? "" : outIf),
            State = CtState.New,
            MacHeader = mac,
            Mark = mark,
        };
        return LogFormatter.Format(facts, options ?? new LogOptions());
    }

    private static TestPacket Edit(TestPacket p, Action<byte[]> edit)
    {
        byte[] bytes = (byte[])p.Bytes.Clone();
        edit(bytes);
        return new TestPacket(bytes);
    }

    [Fact]
    public void Format_TcpSynIpv4_MatchesTheKernelLine() =>
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 ",
            Log(T.Tcp()));

    [Fact]
    public void Format_ForwardedTcpWithDfAndMac_MatchesTheKernelLine()
    {
        TestPacket p = Edit(T.Tcp(), b =>
        {
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), 54321);
            b[6] = 0x40;
        });
        byte[] mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00];
        Assert.Equal($"[fw] IN=eth0 OUT=eth1 MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 {V4} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 ",
            Log(p, Hook.Forward, new LogOptions { Prefix = "[fw] " }, outIf: "eth1", mac: mac));
    }

    [Fact]
    public void Format_OutputHook_HasNoInputAndNoMac() =>
        Assert.StartsWith($"IN= OUT=eth0 {V4} LEN=40 ", Log(T.Tcp(), Hook.Output, outIf: "eth0"), StringComparison.Ordinal);

    [Fact]
    public void Format_TosPrecedenceAndFlagBits_AreSplitAsTheKernelDoes()
    {
        TestPacket p = Edit(T.Tcp(flags: TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr), b =>
        {
            b[1] = 0xB8; // DSCP EF
            b[6] = 0x80 | 0x20; // CE (the evil bit) and MF
            b[20 + 12] |= 0x0F; // the four reserved TCP bits
        });
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=40 TOS=0x18 PREC=0xA0 TTL=64 ID=0 CE MF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x3c CWR ECE SYN URGP=0 ",
            Log(p));
    }

    [Fact]
    public void Format_AllTcpFlags_InKernelOrder() =>
        Assert.EndsWith("RES=0x00 URG ACK PSH RST SYN FIN URGP=0 ",
            Log(T.Tcp(flags: TcpFlags.Fin | TcpFlags.Syn | TcpFlags.Rst | TcpFlags.Psh | TcpFlags.Ack | TcpFlags.Urg)), StringComparison.Ordinal);

    [Fact]
    public void Format_TcpSequenceAndOptionsFlags_AddSeqAckAndOpt()
    {
        var spec = new TcpSpec { Src = T.V4Client, Dst = T.V4Server, SrcPort = 40000, DstPort = 443, Seq = 123456789, Ack = 0, Flags = TcpFlags.Syn, Window = 64240, Mss = 1460 };
        byte[] buffer = new byte[100];
        var p = new TestPacket(buffer[..PacketBuilder.Tcp(buffer, spec)]);
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP SPT=40000 DPT=443 SEQ=123456789 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B4) ",
            Log(p, options: new LogOptions { Flags = LogFlags.TcpSequence | LogFlags.TcpOptions | LogFlags.IpOptions }));
    }

    [Fact]
    public void Format_Ipv4Options_AreShownOnlyWithIpOptions()
    {
        // A 24-byte IPv4 header with one NOP,NOP,NOP,EOL option word, in front of a UDP datagram.
        byte[] udp = T.Udp(payload: 0).Bytes;
        byte[] bytes = new byte[udp.Length + 4];
        udp.AsSpan(0, 20).CopyTo(bytes);
        bytes[0] = 0x46;
        bytes[3] = (byte)bytes.Length;
        bytes[20] = 1;
        bytes[21] = 1;
        bytes[22] = 1;
        udp.AsSpan(20).CopyTo(bytes.AsSpan(24));
        PacketBuilder.WriteIpv4HeaderChecksum(bytes);
        var p = new TestPacket(bytes);
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=0 OPT (01010100) PROTO=UDP SPT=5353 DPT=53 LEN=8 ",
            Log(p, options: new LogOptions { Flags = LogFlags.IpOptions }));
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5353 DPT=53 LEN=8 ", Log(p));
    }

    [Fact]
    public void Format_UdpIpv4_ShowsPortsAndUdpLength() =>
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=48 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5353 DPT=53 LEN=28 ", Log(T.Udp()));

    [Fact]
    public void Format_IcmpEcho_ShowsTypeCodeIdSeq() =>
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=36 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=8 CODE=0 ID=4660 SEQ=1 ", Log(T.Icmp()));

    [Fact]
    public void Format_IcmpError_ShowsTheQuotedPacketInBrackets() =>
        Assert.Equal("IN=eth0 OUT= MAC= SRC=198.51.100.20 DST=192.0.2.10 LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=ICMP TYPE=3 CODE=3 "
            + $"[{V4} LEN=48 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP SPT=5353 DPT=53 LEN=28 ] ",
            Log(T.IcmpError(false, 3, 3, T.Udp())));

    [Fact]
    public void Format_FragmentationNeeded_ShowsTheMtu()
    {
        byte[] buffer = new byte[200];
        var p = new TestPacket(buffer[..PacketBuilder.IcmpError(buffer, false, T.V4Server, T.V4Client, 3, 4, T.Udp().Bytes, rest: 1400)]);
        Assert.EndsWith("PROTO=UDP SPT=5353 DPT=53 LEN=28 ] MTU=1400 ", Log(p), StringComparison.Ordinal);
    }

    [Fact]
    public void Format_IcmpErrorQuotingATruncatedTcpHeader_SaysIncomplete()
    {
        byte[] buffer = new byte[200];
        var p = new TestPacket(buffer[..PacketBuilder.IcmpError(buffer, false, T.V4Server, T.V4Client, 11, 0, T.Tcp().Bytes.AsSpan(0, 28))]);
        Assert.EndsWith("PROTO=ICMP TYPE=11 CODE=0 [SRC=192.0.2.10 DST=198.51.100.20 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP INCOMPLETE [8 bytes] ] ",
            Log(p), StringComparison.Ordinal);
    }

    [Fact]
    public void Format_NonFirstFragment_ShowsOffsetAndNoPorts()
    {
        TestPacket p = MatchTests.Fragment(T.Tcp(), 16, more: false);
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 FRAG:2 PROTO=TCP ", Log(p));
    }

    [Fact]
    public void Format_TruncatedTcpHeader_SaysIncompleteAndStops()
    {
        var p = new TestPacket(T.Tcp().Bytes[..30]);
        Assert.Equal($"IN=eth0 OUT= MAC= {V4} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP INCOMPLETE [10 bytes] ", Log(p, mark: 7));
    }

    [Fact]
    public void Format_Mark_IsAppendedInHex() =>
        Assert.EndsWith("SYN URGP=0 MARK=0x2a ", Log(T.Tcp(), mark: 42), StringComparison.Ordinal);

    [Fact]
    public void Format_OtherProtocol_ShowsItsNumber() =>
        Assert.EndsWith("ID=0 PROTO=47 ", Log(T.Generic(false, IpProto.Gre)), StringComparison.Ordinal);

    [Fact]
    public void Format_TcpIpv6_UsesUncompressedAddresses() =>
        Assert.Equal($"IN=eth0 OUT= MAC= {V6} LEN=60 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0 ",
            Log(T.Tcp(v6: true)));

    [Fact]
    public void Format_Ipv6TrafficClassAndFlowLabel_AreDecimal()
    {
        TestPacket p = Edit(T.Udp(v6: true), b => BinaryPrimitives.WriteUInt32BigEndian(b, 0x6B81_2345));
        Assert.Equal($"IN=eth0 OUT= MAC= {V6} LEN=68 TC=184 HOPLIMIT=64 FLOWLBL=74565 PROTO=UDP SPT=5353 DPT=53 LEN=28 ", Log(p));
    }

    [Fact]
    public void Format_UdpIpv6_ShowsPortsAndUdpLength() =>
        Assert.Equal($"IN=eth0 OUT= MAC= {V6} LEN=68 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=53 LEN=28 ", Log(T.Udp(v6: true)));

    [Fact]
    public void Format_Icmpv6Echo_ShowsTypeCodeIdSeq() =>
        Assert.Equal($"IN=eth0 OUT= MAC= {V6} LEN=56 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=4660 SEQ=1 ", Log(T.Icmp(v6: true)));

    [Fact]
    public void Format_Icmpv6Error_ShowsTheQuotedPacketInBrackets() =>
        Assert.Equal("IN=eth0 OUT= MAC= SRC=2001:0db8:0001:0000:0000:0000:0000:0020 DST=2001:0db8:0000:0000:0000:0000:0000:0010 LEN=116 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=1 CODE=4 "
            + $"[{V6} LEN=68 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=53 LEN=28 ] ",
            Log(T.IcmpError(true, 1, 4, T.Udp(v6: true))));

    [Fact]
    public void Format_Icmpv6PacketTooBig_ShowsTheMtu()
    {
        byte[] buffer = new byte[400];
        var p = new TestPacket(buffer[..PacketBuilder.IcmpError(buffer, true, T.V6Server, T.V6Client, 2, 0, T.Udp(v6: true).Bytes, rest: 1280)]);
        Assert.EndsWith("LEN=28 ] MTU=1280 ", Log(p), StringComparison.Ordinal);
    }

    [Fact]
    public void Format_Ipv6FragmentHeader_IsShownWithItsId()
    {
        byte[] buffer = new byte[200];
        TestPacket udp = T.Udp(v6: true);
        udp.Bytes.CopyTo(buffer, 0);
        int length = PacketBuilder.Ipv6InsertFragmentHeader(buffer, udp.Bytes.Length, 0, moreFragments: true, identification: 0xABCDEF);
        var p = new TestPacket(buffer[..length]);
        Assert.Equal($"IN=eth0 OUT= MAC= {V6} LEN=76 TC=0 HOPLIMIT=64 FLOWLBL=0 FRAG:0 INCOMPLETE ID:00abcdef PROTO=UDP SPT=5353 DPT=53 LEN=28 ", Log(p));
        Assert.Equal($"IN=eth0 OUT= MAC= {V6} LEN=76 TC=0 HOPLIMIT=64 FLOWLBL=0 OPT ( FRAG:0 INCOMPLETE ID:00abcdef ) PROTO=UDP SPT=5353 DPT=53 LEN=28 ",
            Log(p, options: new LogOptions { Flags = LogFlags.IpOptions }));
    }

    [Fact]
    public void Format_NoBytes_SaysTruncated()
    {
        TestPacket p = T.Tcp();
        var facts = new PacketFacts(Hook.Input, ref p.Parsed, default, p.Result) { In = IfName.Create("eth0") };
        Assert.Equal("IN=eth0 OUT= MAC= TRUNCATED", LogFormatter.Format(facts, new LogOptions()));
    }

    [Fact]
    public void Format_SmallDestination_IsCutNotOverrun()
    {
        TestPacket p = T.Tcp();
        var facts = new PacketFacts(Hook.Input, ref p.Parsed, p.Bytes, p.Result) { In = IfName.Create("eth0") };
        Span<char> small = stackalloc char[25];
        int n = LogFormatter.Format(small, facts, new LogOptions());
        Assert.Equal(25, n);
        Assert.Equal($"IN=eth0 OUT= MAC= {V4}"[..25], small.ToString());
    }

    [Fact]
    public void Format_LogRuleHitFromEvaluate_UsesTheRulesPrefix()
    {
        Ruleset rs = T.Table("-A INPUT -p tcp -m state --state INVALID -j LOG --log-prefix \"[iptables] INPUT INVALID: \"");
        TestPacket fin = T.Tcp(flags: TcpFlags.Fin | TcpFlags.Ack, ack: 5);
        Span<int> hits = stackalloc int[4];
        RuleVerdict v = T.Eval(rs, fin, state: CtState.Invalid, logs: hits);
        Assert.Equal(1, v.LogCount);
        var facts = new PacketFacts(Hook.Input, ref fin.Parsed, fin.Bytes, fin.Result) { In = IfName.Create("eth0"), State = CtState.Invalid };
        Assert.Equal($"[iptables] INPUT INVALID: IN=eth0 OUT= MAC= {V4} LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 ACK FIN URGP=0 ",
            LogFormatter.Format(facts, rs.Rules[hits[0]].Log!));
    }
}
