using System.Buffers.Binary;
using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Packets;
using static Ctfw.Linux.Tests.Support.SyncTestKit;

namespace Ctfw.Linux.Tests;

/// <summary>
/// <see cref="SyncCodec"/>: round trips of every shape ctfw syncs, the exact attributes conntrackd 1.4.7
/// accepts, and every way a message is refused.
/// </summary>
public sealed class SyncCodecTests
{
    private const CtStatus Replied = CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed;

    public static TheoryData<string> Shapes => ["tcp4", "tcp6", "udp4", "udp6", "icmp", "icmpv6", "gre", "sctp", "zone", "mark", "helper", "snat4", "dnat4", "snat6", "scales",
        "sctp-established", "sctp6-zone", "expected4", "expected6-zone"];

    private static KernelConnection Shape(string name) => name switch
    {
        "tcp4" => Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40000, 80), Replied, 432000, TcpState.Established),
        "tcp6" => Entry(Tuple("fd01::1", "fd01::2", IpProto.Tcp, 40001, 443), Replied, 120, TcpState.FinWait),
        "udp4" => Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5353, 53), CtStatus.Confirmed, 30),
        "udp6" => Entry(Tuple("fd01::1", "fd01::3", IpProto.Udp, 5353, 53), CtStatus.SeenReply | CtStatus.Confirmed, 30),
        "icmp" => Entry(Tuple("10.1.0.1", "10.1.0.4", IpProto.Icmp, 0x1234, 8 << 8), CtStatus.Confirmed, 30),
        "icmpv6" => Entry(Tuple("fd01::1", "fd01::4", IpProto.Icmpv6, 0x4321, 128 << 8), CtStatus.Confirmed, 30),
        "gre" => Entry(Tuple("10.1.0.1", "10.1.0.5", IpProto.Gre, 0, 0), CtStatus.Confirmed, 600),
        "sctp" => Entry(Tuple("10.1.0.1", "10.1.0.5", IpProto.Sctp, 0, 0), CtStatus.Confirmed, 600),
        "zone" => Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5355, 53, zone: 7), CtStatus.Confirmed, 40),
        "mark" => Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40002, 22), Replied, 300, TcpState.Established, mark: 0xdeadbeef),
        "helper" => Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40003, 21), Replied, 300, TcpState.Established) with { Helper = "ftp" },
        "snat4" => Nat(Entry(Tuple("10.1.0.1", "8.8.8.8", IpProto.Udp, 40004, 53), CtStatus.Confirmed | KernelStatus.SrcNat, 30), dst: "192.0.2.7", dstPort: 61000),
        "dnat4" => Nat(Entry(Tuple("10.1.0.1", "192.0.2.8", IpProto.Tcp, 40005, 80), Replied | KernelStatus.DstNat, 300, TcpState.Established), src: "10.2.0.9", srcPort: 8080),
        "snat6" => Nat(Entry(Tuple("fd01::1", "2001:db8::1", IpProto.Tcp, 40006, 443), Replied, 300, TcpState.Established), dst: "2001:db8:ffff::1"),
        "scales" => Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40007, 80), Replied, 300, TcpState.Established) with { WindowScaleOriginal = 7, WindowScaleReply = 10 },
        "sctp-established" => Entry(Tuple("10.1.0.1", "10.1.0.5", IpProto.Sctp, 5000, 5001), Replied, 210) with
            { SctpState = SctpState.Established, SctpVtagOriginal = 0x11223344, SctpVtagReply = 0xA1B2C3D4 },
        "sctp6-zone" => Entry(Tuple("fd01::1", "fd01::5", IpProto.Sctp, 5000, 5001, zone: 3), CtStatus.Confirmed, 3) with
            { SctpState = SctpState.CookieEchoed, SctpVtagOriginal = 1, SctpVtagReply = 0 },
        "expected4" => Entry(Tuple("10.1.0.2", "10.1.0.1", IpProto.Tcp, 20, 50000), CtStatus.Expected | CtStatus.Confirmed, 120, TcpState.SynSent) with
            { Master = Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40003, 21) },
        "expected6-zone" => Entry(Tuple("fd01::2", "fd01::1", IpProto.Udp, 69, 1234, zone: 5), CtStatus.Expected | CtStatus.Confirmed, 30) with
            { Master = Tuple("fd01::1", "fd01::2", IpProto.Udp, 1234, 69, zone: 5) },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private static KernelConnection Nat(KernelConnection c, string? src = null, string? dst = null, ushort srcPort = 0, ushort dstPort = 0)
    {
        ConnTuple r = c.Reply;
        if (src is not null)
            r.Src = Tuple(src, src, 0, 0, 0).Src;
        if (dst is not null)
            r.Dst = Tuple(dst, dst, 0, 0, 0).Dst;
        if (srcPort != 0)
            r.SrcId = srcPort;
        if (dstPort != 0)
            r.DstId = dstPort;
        return c with { Reply = r };
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void WriteThenRead_EveryShape_SameConnection(string shape)
    {
        KernelConnection c = Shape(shape);
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        foreach (SyncMessageType type in new[] { SyncMessageType.New, SyncMessageType.Update, SyncMessageType.Delete })
        {
            int n = SyncCodec.WriteConnection(buffer, type, c);
            Assert.True(n > SyncWire.HeaderSize);
            Assert.Equal(0, n % 4);
            Assert.Equal(n, SyncWire.LengthOf(buffer));
            Assert.Equal((byte)type, SyncWire.TypeOf(buffer));
            Assert.Equal(1, SyncWire.VersionOf(buffer));
            Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(buffer[..n], out SyncMessageType back, out KernelConnection read, out SyncError why));
            Assert.Equal(SyncError.None, why);
            Assert.Equal(type, back);
            Assert.Equal(c, read);
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Write_OnlyTypesConntrackd147Knows_ExactLengths_ZoneOnlyWhenSet(string shape)
    {
        KernelConnection c = Shape(shape);
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        int n = SyncCodec.WriteConnection(buffer, SyncMessageType.New, c);
        var types = new List<int>();
        for (int at = SyncWire.HeaderSize; at < n;)
        {
            int len = BinaryPrimitives.ReadUInt16BigEndian(buffer[at..]);
            int type = BinaryPrimitives.ReadUInt16BigEndian(buffer[(at + 2)..]);
            Assert.InRange(type, 0, SyncCodec.AttrMax - 1);
            types.Add(type);
            at += (len + 3) & ~3;
        }
        Assert.Equal(c.Original.Zone != 0, types.Contains(SyncCodec.AttrZone));
        Assert.Equal(c.Mark != 0, types.Contains(SyncCodec.AttrMark));
        Assert.Equal(ConnTuple.HasPorts(c.Original.Protocol), types.Contains(SyncCodec.AttrPort));
        Assert.Equal(c.Original.Protocol is IpProto.Icmp or IpProto.Icmpv6, types.Contains(SyncCodec.AttrIcmpId));
        Assert.Equal(types.Distinct().Count(), types.Count);
        Assert.Equal(c.Original.IsV6 ? SyncCodec.AttrIpv6 : SyncCodec.AttrIpv4, types[0]);
    }

    [Fact]
    public void Write_IcmpIdAndNatPorts_InHostOrder()
    {
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        int n = SyncCodec.WriteConnection(buffer, SyncMessageType.New, Shape("icmp"));
        // ... ICMP_TYPE 8, ICMP_CODE 0, ICMP_ID 0x1234 little-endian: 00 06 00 18 34 12 00 00
        Assert.Contains("0006001834120000", Convert.ToHexString(buffer[..n]), StringComparison.Ordinal);
        n = SyncCodec.WriteConnection(buffer, SyncMessageType.New, Shape("snat4"));
        string hex = Convert.ToHexString(buffer[..n]);
        Assert.Contains("0008000CC0000207", hex, StringComparison.Ordinal);   // SNAT_IPV4 192.0.2.7, network order
        Assert.Contains("0006000E48EE0000", hex, StringComparison.Ordinal);   // SPAT_PORT 61000 = 0xEE48, host order
    }

    [Fact]
    public void Write_NotRepresentable_ReturnsZero()
    {
        KernelConnection udp = Shape("udp4");
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        ConnTuple otherZone = udp.Reply;
        otherZone.Zone = 3;
        Assert.Equal(0, SyncCodec.WriteConnection(buffer, SyncMessageType.New, udp with { Reply = otherZone }));
        ConnTuple otherProto = udp.Reply;
        otherProto.Protocol = IpProto.Tcp;
        Assert.Equal(0, SyncCodec.WriteConnection(buffer, SyncMessageType.New, udp with { Reply = otherProto }));
        Assert.Equal(0, SyncCodec.WriteConnection(buffer, SyncMessageType.New, default));
        Assert.Equal(0, SyncCodec.WriteConnection(buffer, (SyncMessageType)3, udp));
        int full = SyncCodec.WriteConnection(buffer, SyncMessageType.New, udp);
        for (int size = 0; size < full; size++)
            Assert.Equal(0, SyncCodec.WriteConnection(buffer[..size], SyncMessageType.New, udp));
    }

    [Fact]
    public void Write_SctpAndMaster_AttributesAsConntrackdBuildsThem()
    {
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        int n = SyncCodec.WriteConnection(buffer, SyncMessageType.New, Shape("sctp-established"));
        string hex = Convert.ToHexString(buffer[..n]);
        // PORT, then SCTP_STATE 4, SCTP_VTAG_ORIG and _REPL in network order (build_l4proto_sctp, ct_build_u32).
        Assert.Contains("0008000313881389" + "0005001104000000" + "0008001211223344" + "00080013A1B2C3D4", hex, StringComparison.Ordinal);
        n = SyncCodec.WriteConnection(buffer, SyncMessageType.New, Shape("expected4"));
        hex = Convert.ToHexString(buffer[..n]);
        // After TIMEOUT: MASTER_IPV4 (10.1.0.1 → 10.1.0.2), MASTER_L4PROTO 6, MASTER_PORT 40003 → 21.
        Assert.Contains("00080006" + "00000078" + "000C0008" + "0A0100010A010002" + "0005000A06000000" + "0008000B9C430015", hex, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_MasterWithoutItsProtocol_AcceptedWithoutMaster()
    {
        byte[] m = Message(0, 0,
            (SyncCodec.AttrIpv4, [10, 1, 0, 1, 10, 1, 0, 2]),
            (SyncCodec.AttrL4Proto, [17]),
            (SyncCodec.AttrPort, [0, 69, 4, 210]),
            (SyncCodec.AttrMasterIpv4, [10, 1, 0, 2, 10, 1, 0, 1]));
        Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(m, out _, out KernelConnection c));
        Assert.Null(c.Master);
        m = Message(0, 0,
            (SyncCodec.AttrIpv4, [10, 1, 0, 1, 10, 1, 0, 2]),
            (SyncCodec.AttrL4Proto, [17]),
            (SyncCodec.AttrPort, [0, 69, 4, 210]),
            (SyncCodec.AttrMasterIpv4, [10, 1, 0, 2, 10, 1, 0, 1]),
            (SyncCodec.AttrMasterL4Proto, [17]));
        Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(m, out _, out c));
        Assert.Equal(Tuple("10.1.0.2", "10.1.0.1", IpProto.Udp, 0, 0), c.Master);
    }

    [Fact]
    public void Write_LargestWithMaster_FitsMaxMessageSize()
    {
        KernelConnection c = Nat(Shape("snat6"), src: "2001:db8:eeee::2", srcPort: 1, dstPort: 2) with
        {
            Helper = "netbios-ns",
            WindowScaleOriginal = 1,
            Mark = 1,
            Master = Tuple("fd01::9", "2001:db8::1", IpProto.Tcp, 1, 21),
        };
        ConnTuple o = c.Original, r = c.Reply, m = c.Master!.Value;
        o.Zone = r.Zone = m.Zone = 9;
        c = c with { Original = o, Reply = r, Master = m };
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        int n = SyncCodec.WriteConnection(buffer, SyncMessageType.Update, c);
        Assert.Equal(188 + 36 + 8 + 8, n);
        Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(buffer[..n], out _, out KernelConnection back));
        Assert.Equal(c, back);
    }

    [Fact]
    public void Write_LargestShape_FitsMaxMessageSize()
    {
        KernelConnection c = Nat(Shape("snat6"), src: "2001:db8:eeee::2", srcPort: 1, dstPort: 2) with
        {
            Helper = "netbios-ns",
            WindowScaleOriginal = 1,
            Mark = 1,
        };
        ConnTuple o = c.Original, r = c.Reply;
        o.Zone = r.Zone = 9;
        c = c with { Original = o, Reply = r };
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        int n = SyncCodec.WriteConnection(buffer, SyncMessageType.Update, c);
        Assert.Equal(188, n);
        Assert.True(n <= SyncCodec.MaxMessageSize);
        Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(buffer[..n], out _, out KernelConnection back));
        Assert.Equal(c, back);
    }

    private static byte[] Message(byte type, byte flags, params (int Type, byte[] Value)[] attrs)
    {
        var bytes = new List<byte>(new byte[8]);
        foreach ((int t, byte[] v) in attrs)
        {
            int len = 4 + v.Length;
            bytes.AddRange([(byte)(len >> 8), (byte)len, (byte)(t >> 8), (byte)t]);
            bytes.AddRange(v);
            while (bytes.Count % 4 != 0)
                bytes.Add(0);
        }
        byte[] m = [.. bytes];
        SyncWire.WriteHeader(m, type, flags, m.Length, 77);
        return m;
    }

    private static readonly (int, byte[]) s_addr = (SyncCodec.AttrIpv4, [10, 0, 0, 1, 10, 0, 0, 2]);
    private static readonly (int, byte[]) s_udp = (SyncCodec.AttrL4Proto, [17]);
    private static readonly (int, byte[]) s_ports = (SyncCodec.AttrPort, [0x9c, 0x40, 0, 53]);

    public static TheoryData<string, SyncParse, SyncError> Refusals => new()
    {
        { "version 2", SyncParse.Malformed, SyncError.BadVersion },
        { "length field", SyncParse.Malformed, SyncError.BadLength },
        { "header cut", SyncParse.Malformed, SyncError.Truncated },
        { "ack flag on data", SyncParse.Malformed, SyncError.BadFlags },
        { "type 7", SyncParse.Malformed, SyncError.BadType },
        { "exp_new", SyncParse.Unsupported, SyncError.Expectation },
        { "control", SyncParse.Unsupported, SyncError.Control },
        { "attribute 33", SyncParse.Malformed, SyncError.UnknownAttribute },
        { "port of 3 bytes", SyncParse.Malformed, SyncError.AttributeLength },
        { "attribute past end", SyncParse.Malformed, SyncError.AttributeLength },
        { "attribute len 2", SyncParse.Malformed, SyncError.AttributeLength },
        { "helper of 16 chars", SyncParse.Malformed, SyncError.AttributeLength },
        { "no address", SyncParse.Malformed, SyncError.MissingAddress },
        { "no protocol", SyncParse.Malformed, SyncError.MissingProtocol },
        { "udp without ports", SyncParse.Malformed, SyncError.MissingPorts },
        { "snat6 on ipv4", SyncParse.Malformed, SyncError.FamilyMismatch },
        { "tcp state 10", SyncParse.Malformed, SyncError.BadTcpState },
        { "icmp unreachable", SyncParse.Unsupported, SyncError.NotInvertible },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Read_Refused_WithTheReason(string name, SyncParse expected, SyncError reason)
    {
        byte[] m = name switch
        {
            "version 2" => Patch(Message(1, 0, s_addr, s_udp, s_ports), 0, 0x21),
            "length field" => Patch(Message(1, 0, s_addr, s_udp, s_ports), 3, 0xFF),
            "header cut" => Message(1, 0, s_addr)[..7],
            "ack flag on data" => Message(1, SyncWire.FlagAck, s_addr, s_udp, s_ports),
            "type 7" => Message(7, 0, s_addr, s_udp, s_ports),
            "exp_new" => Message(3, 0, s_addr, s_udp, s_ports),
            "control" => Message(10, SyncWire.FlagAlive),
            "attribute 33" => Message(0, 0, s_addr, s_udp, s_ports, (33, [0, 1])),
            "port of 3 bytes" => Message(0, 0, s_addr, s_udp, (SyncCodec.AttrPort, [1, 2, 3])),
            "attribute past end" => Patch(Message(0, 0, s_addr, s_udp, s_ports), 8 + 12 + 8 + 1, 40),
            "attribute len 2" => Patch(Message(0, 0, s_addr, s_udp, s_ports), 8 + 12 + 8 + 1, 2),
            "helper of 16 chars" => Message(0, 0, s_addr, s_udp, s_ports, (SyncCodec.AttrHelperName, new byte[13])),
            "no address" => Message(0, 0, s_udp, s_ports),
            "no protocol" => Message(0, 0, s_addr, s_ports),
            "udp without ports" => Message(0, 0, s_addr, s_udp),
            "snat6 on ipv4" => Message(0, 0, s_addr, s_udp, s_ports, (SyncCodec.AttrSnatIpv6, new byte[16])),
            "tcp state 10" => Message(0, 0, s_addr, (SyncCodec.AttrL4Proto, [6]), s_ports, (SyncCodec.AttrTcpState, [10])),
            "icmp unreachable" => Message(0, 0, s_addr, (SyncCodec.AttrL4Proto, [1]), (SyncCodec.AttrIcmpType, [3]), (SyncCodec.AttrIcmpCode, [1]), (SyncCodec.AttrIcmpId, [0, 0])),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        Assert.Equal(expected, SyncCodec.TryReadConnection(m, out _, out KernelConnection c, out SyncError why));
        Assert.Equal(reason, why);
        Assert.Equal(default, c);
        Assert.NotEqual("unknown", SyncWire.Reason(why));
    }

    private static byte[] Patch(byte[] m, int at, byte value)
    {
        m[at] = value;
        return m;
    }

    [Fact]
    public void Read_KnownAttributesCtfwDoesNotKeep_Skipped_HelloFlagsAllowed()
    {
        byte[] m = Message(1, SyncWire.FlagHello | SyncWire.FlagHelloBack, s_addr, s_udp, s_ports,
            (16, new byte[24]),                       // NAT_SEQ_ADJ
            (SyncCodec.AttrLabels, new byte[8]),      // LABELS
            (31, new byte[12]),                       // SYNPROXY
            (8, [1, 2, 3, 4, 5, 6, 7, 8]));           // MASTER_IPV4
        Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(m, out SyncMessageType type, out KernelConnection c));
        Assert.Equal(SyncMessageType.Update, type);
        Assert.Equal(Tuple("10.0.0.1", "10.0.0.2", IpProto.Udp, 40000, 53), c.Original);
        Assert.Equal(Tuple("10.0.0.2", "10.0.0.1", IpProto.Udp, 53, 40000), c.Reply);
        Assert.Null(c.Master); // MASTER_IPV4 without MASTER_L4PROTO
    }

    [Fact]
    public void Read_Allocates_Nothing()
    {
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        int n = SyncCodec.WriteConnection(buffer, SyncMessageType.New, Shape("helper"));
        byte[] m = buffer[..n].ToArray();
        SyncCodec.TryReadConnection(m, out _, out _);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            SyncCodec.TryReadConnection(m, out _, out KernelConnection c);
            SyncCodec.WriteConnection(buffer, SyncMessageType.Update, c);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
