using System.Buffers.Binary;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Linux.Sync;

/// <summary>
/// conntrackd's CT_NEW/CT_UPD/CT_DEL messages to and from <see cref="KernelConnection"/>, as conntrackd
/// 1.4.7 builds and parses them (build.c, parse.c). After the header (<see cref="SyncWire"/>) come TLVs:
/// <code>
/// +---------------+---------------+-------------------------------+
/// | nta_len = 4 + payload (unpadded) |  nta_attr (type)           |
/// +---------------+---------------+-------------------------------+
/// | payload ... padded with zeros to a multiple of 4              |
/// </code>
/// Every length is exact per type (the receiver drops the whole message otherwise) and types ≥ 33 are
/// unknown to 1.4.7, so only these are written, in build.c's order: IPV4|IPV6, STATUS, L4PROTO, then
/// PORT + TCP_STATE (+ WSCALE when either scale is set), PORT + SCTP_STATE + SCTP_VTAG_ORIG/REPL
/// (network order, as ct_build_u32 sends them), or ICMP_TYPE/CODE/ID, TIMEOUT (when non-zero),
/// MARK (when non-zero), MASTER_IPV4|IPV6 + MASTER_L4PROTO (+ MASTER_PORT) for an expected entry,
/// SNAT/DNAT/SPAT/DPAT when the reply tuple is not the inverse of the original one, HELPER_NAME,
/// ZONE (when non-zero). The master has no zone of its own on the wire: it is the entry's.
/// <para>
/// Byte-order trap: conntrackd applies htons() to SPAT_PORT, DPAT_PORT and ICMP_ID values that are
/// already in network order, so on the wire they are in the sender's host order. Every deployed
/// conntrackd we interoperate with is little-endian (x86, arm64), so these three are little-endian
/// here. Everything else is network order: PORT, the IPV4/IPV6 addresses, and (as captured from 1.4.7,
/// tests/data/sync) the SNAT_IPV4/DNAT_IPV4 addresses too.
/// </para>
/// No method allocates (apart from a helper name that is not one of the kernel's helpers) or throws.
/// </summary>
public static class SyncCodec
{
    public const int AttrIpv4 = 0;
    public const int AttrIpv6 = 1;
    public const int AttrL4Proto = 2;
    public const int AttrPort = 3;
    public const int AttrTcpState = 4;
    public const int AttrStatus = 5;
    public const int AttrTimeout = 6;
    public const int AttrMark = 7;
    public const int AttrMasterIpv4 = 8;
    public const int AttrMasterIpv6 = 9;
    public const int AttrMasterL4Proto = 10;
    public const int AttrMasterPort = 11;
    public const int AttrSnatIpv4 = 12;
    public const int AttrDnatIpv4 = 13;
    public const int AttrSpatPort = 14;
    public const int AttrDpatPort = 15;
    public const int AttrSctpState = 17;
    public const int AttrSctpVtagOrig = 18;
    public const int AttrSctpVtagRepl = 19;
    public const int AttrIcmpType = 22;
    public const int AttrIcmpCode = 23;
    public const int AttrIcmpId = 24;
    public const int AttrTcpWscaleOrig = 25;
    public const int AttrTcpWscaleRepl = 26;
    public const int AttrHelperName = 27;
    public const int AttrLabels = 28;
    public const int AttrSnatIpv6 = 29;
    public const int AttrDnatIpv6 = 30;
    public const int AttrZone = 32;

    /// <summary>NTA_MAX of conntrackd 1.4.7: an attribute type at or above it makes the receiver drop the message.</summary>
    public const int AttrMax = 33;

    /// <summary>The largest message <see cref="WriteConnection"/> produces (IPv6, TCP, both NATs, a master, helper, zone: 244 bytes).</summary>
    public const int MaxMessageSize = 256;

    /// <summary>HELPER_NAME: conntrackd caps nta_len at NFCT_HELPER_NAME_MAX (16), so at most 11 characters + NUL.</summary>
    private const int MaxHelperAttrLength = 16;

    private const int LabelsMaxAttrLength = 4 + 1024;

    /// <summary>Exact nta_len per type (0 = variable, checked separately), parse.c's table for 1.4.7.</summary>
    private static ReadOnlySpan<byte> ExactLength =>
    [
        12, 36, 5, 8, 5, 8, 8, 8,       // IPV4 IPV6 L4PROTO PORT TCP_STATE STATUS TIMEOUT MARK
        12, 36, 5, 8,                   // MASTER_IPV4 MASTER_IPV6 MASTER_L4PROTO MASTER_PORT
        8, 8, 6, 6,                     // SNAT_IPV4 DNAT_IPV4 SPAT_PORT DPAT_PORT
        28, 5, 8, 8,                    // NAT_SEQ_ADJ SCTP_STATE SCTP_VTAG_ORIG SCTP_VTAG_REPL
        5, 5, 5, 5, 6,                  // DCCP_STATE DCCP_ROLE ICMP_TYPE ICMP_CODE ICMP_ID
        5, 5, 0, 0,                     // TCP_WSCALE_ORIG TCP_WSCALE_REPL HELPER_NAME LABELS
        20, 20, 16, 6,                  // SNAT_IPV6 DNAT_IPV6 SYNPROXY ZONE
    ];

    private static readonly string[] s_knownHelpers =
        ["ftp", "tftp", "sip", "irc", "amanda", "h323", "RAS", "Q.931", "pptp", "sane", "snmp", "snmp_trap", "netbios-ns"];

    /// <summary>
    /// Writes one CT message (header included, seq 0: the session stamps it). Returns the bytes written,
    /// or 0 when <paramref name="dst"/> is too small or the entry cannot be said in conntrackd's terms
    /// (original and reply zones differ, reply tuple of another protocol or family, unknown family).
    /// </summary>
    public static int WriteConnection(Span<byte> dst, SyncMessageType type, in KernelConnection c)
    {
        if (type > SyncMessageType.Delete)
            return 0;
        ConnTuple o = c.Original;
        ConnTuple r = c.Reply;
        if (o.IpVersion is not (4 or 6) || r.IpVersion != o.IpVersion || r.Protocol != o.Protocol || r.Zone != o.Zone)
            return 0;
        bool v6 = o.IsV6;
        var w = new TlvWriter(dst, SyncWire.HeaderSize);

        if (v6)
        {
            Span<byte> a = w.Put(AttrIpv6, 32);
            if (a.IsEmpty)
                return 0;
            o.Src.WriteV6(a);
            o.Dst.WriteV6(a[16..]);
        }
        else
        {
            Span<byte> a = w.Put(AttrIpv4, 8);
            if (a.IsEmpty)
                return 0;
            BinaryPrimitives.WriteUInt32BigEndian(a, o.Src.V4);
            BinaryPrimitives.WriteUInt32BigEndian(a[4..], o.Dst.V4);
        }
        w.U32(AttrStatus, (uint)(c.Status & KernelStatus.Defined));
        w.U8(AttrL4Proto, o.Protocol);

        bool ports = ConnTuple.HasPorts(o.Protocol);
        bool icmp = o.Protocol is IpProto.Icmp or IpProto.Icmpv6;
        if (ports)
        {
            Span<byte> p = w.Put(AttrPort, 4);
            if (!p.IsEmpty)
            {
                BinaryPrimitives.WriteUInt16BigEndian(p, o.SrcId);
                BinaryPrimitives.WriteUInt16BigEndian(p[2..], o.DstId);
            }
            if (o.Protocol == IpProto.Tcp && c.TcpState != TcpState.None)
            {
                w.U8(AttrTcpState, (byte)c.TcpState);
                // conntrackd sends the scales only with TCPWindowTracking on; 0 is what the receiver assumes.
                if (c.WindowScaleOriginal != 0 || c.WindowScaleReply != 0)
                {
                    w.U8(AttrTcpWscaleOrig, c.WindowScaleOriginal);
                    w.U8(AttrTcpWscaleRepl, c.WindowScaleReply);
                }
            }
            else if (o.Protocol == IpProto.Sctp && c.SctpState != SctpState.None)
            {
                w.U8(AttrSctpState, (byte)c.SctpState);
                w.U32(AttrSctpVtagOrig, c.SctpVtagOriginal);
                w.U32(AttrSctpVtagRepl, c.SctpVtagReply);
            }
        }
        else if (icmp)
        {
            w.U8(AttrIcmpType, (byte)(o.DstId >> 8));
            w.U8(AttrIcmpCode, (byte)o.DstId);
            w.U16HostOrder(AttrIcmpId, o.SrcId);
        }

        if (c.TimeoutSeconds != 0)
            w.U32(AttrTimeout, c.TimeoutSeconds);
        if (c.Mark != 0)
            w.U32(AttrMark, c.Mark);

        if (c.Master is { } m)
        {
            if (m.IpVersion != o.IpVersion)
                return 0;
            Span<byte> a = w.Put(v6 ? AttrMasterIpv6 : AttrMasterIpv4, v6 ? 32 : 8);
            if (!a.IsEmpty)
            {
                if (v6)
                {
                    m.Src.WriteV6(a);
                    m.Dst.WriteV6(a[16..]);
                }
                else
                {
                    BinaryPrimitives.WriteUInt32BigEndian(a, m.Src.V4);
                    BinaryPrimitives.WriteUInt32BigEndian(a[4..], m.Dst.V4);
                }
            }
            w.U8(AttrMasterL4Proto, m.Protocol);
            if (ConnTuple.HasPorts(m.Protocol))
            {
                Span<byte> p = w.Put(AttrMasterPort, 4);
                if (!p.IsEmpty)
                {
                    BinaryPrimitives.WriteUInt16BigEndian(p, m.SrcId);
                    BinaryPrimitives.WriteUInt16BigEndian(p[2..], m.DstId);
                }
            }
        }

        if (!o.TryInvert(out ConnTuple inverse))
            inverse = r;   // ICMP types with no inverse: nothing to compare, no NAT said.
        if (icmp ? (r.SrcId != inverse.SrcId || r.DstId != inverse.DstId) : (!ports && (r.SrcId != 0 || r.DstId != 0)))
            return 0;      // conntrackd has no way to say a rewritten ICMP id or type
        if (r.Dst != inverse.Dst)
            WriteNatAddress(ref w, v6 ? AttrSnatIpv6 : AttrSnatIpv4, r.Dst, v6);
        if (r.Src != inverse.Src)
            WriteNatAddress(ref w, v6 ? AttrDnatIpv6 : AttrDnatIpv4, r.Src, v6);
        if (ports && r.DstId != inverse.DstId)
            w.U16HostOrder(AttrSpatPort, r.DstId);
        if (ports && r.SrcId != inverse.SrcId)
            w.U16HostOrder(AttrDpatPort, r.SrcId);

        if (c.Helper is { Length: > 0 and <= MaxHelperAttrLength - 5 } helper && IsAscii(helper))
        {
            Span<byte> h = w.Put(AttrHelperName, helper.Length + 1);
            if (!h.IsEmpty)
            {
                for (int i = 0; i < helper.Length; i++)
                    h[i] = (byte)helper[i];
                h[helper.Length] = 0;
            }
        }
        if (o.Zone != 0)
            w.U16(AttrZone, o.Zone);

        if (w.Overflow)
            return 0;
        SyncWire.WriteHeader(dst, (byte)type, 0, w.Length, 0);
        return w.Length;
    }

    private static void WriteNatAddress(ref TlvWriter w, int attr, IpAddress address, bool v6)
    {
        if (v6)
        {
            Span<byte> a = w.Put(attr, 16);
            if (!a.IsEmpty)
                address.WriteV6(a);
        }
        else
        {
            w.U32(attr, address.V4);
        }
    }

    private static bool IsAscii(string s)
    {
        foreach (char ch in s)
        {
            if (ch is < (char)0x21 or > (char)0x7E)
                return false;
        }
        return true;
    }

    /// <inheritdoc cref="TryReadConnection(ReadOnlySpan{byte}, out SyncMessageType, out KernelConnection, out SyncError)"/>
    public static SyncParse TryReadConnection(ReadOnlySpan<byte> message, out SyncMessageType type, out KernelConnection c) =>
        TryReadConnection(message, out type, out c, out _);

    /// <summary>
    /// Reads one whole message (header included; its length field must equal the span's length). Applies
    /// conntrackd's receive checks (version 1, only HELLO flags on a state message, exact attribute lengths,
    /// no attribute type ≥ 33) plus what a tuple needs (address, protocol, ports for TCP/UDP). NAT
    /// attributes rewrite the reply tuple, which is then not the inverse of the original one.
    /// </summary>
    public static SyncParse TryReadConnection(ReadOnlySpan<byte> message, out SyncMessageType type, out KernelConnection c, out SyncError error)
    {
        type = default;
        c = default;
        error = CheckHeader(message);
        if (error != SyncError.None)
            return SyncParse.Malformed;
        byte t = SyncWire.TypeOf(message);
        if (t > (byte)SyncMessageType.Delete)
        {
            error = t switch
            {
                >= SyncWire.TypeExpNew and <= SyncWire.TypeExpDel => SyncError.Expectation,
                SyncWire.TypeControl => SyncError.Control,
                _ => SyncError.BadType,
            };
            return error == SyncError.BadType ? SyncParse.Malformed : SyncParse.Unsupported;
        }
        if ((SyncWire.FlagsOf(message) & ~SyncWire.DataFlags) != 0)
        {
            error = SyncError.BadFlags;
            return SyncParse.Malformed;
        }
        type = (SyncMessageType)t;

        ConnTuple o = default;
        bool haveAddress = false, haveProto = false, havePorts = false;
        byte icmpType = 0, icmpCode = 0;
        ushort icmpId = 0;
        bool haveIcmpType = false;
        int family = 0;                  // 4 or 6 from the NAT attributes
        bool snat = false, dnat = false, spat = false, dpat = false;
        IpAddress snatAddr = default, dnatAddr = default;
        ushort spatPort = 0, dpatPort = 0;
        uint status = 0, timeout = 0, mark = 0;
        byte tcpState = 0, wsOrig = 0, wsRepl = 0;
        ushort zone = 0;
        string? helper = null;
        byte sctpState = 0;
        uint vtagOrig = 0, vtagRepl = 0;
        ConnTuple master = default;
        bool haveMaster = false, haveMasterProto = false;

        ReadOnlySpan<byte> rest = message[SyncWire.HeaderSize..];
        // parse.c: attributes are read while more than a bare TLV header remains; a shorter tail is ignored.
        while (rest.Length > 4)
        {
            int len = BinaryPrimitives.ReadUInt16BigEndian(rest);
            int attr = BinaryPrimitives.ReadUInt16BigEndian(rest[2..]);
            if (len > rest.Length || len < 4)
            {
                error = SyncError.AttributeLength;
                return SyncParse.Malformed;
            }
            if (attr >= AttrMax)
            {
                error = SyncError.UnknownAttribute;
                return SyncParse.Malformed;
            }
            int exact = ExactLength[attr];
            if (exact != 0 ? len != exact : len > (attr == AttrHelperName ? MaxHelperAttrLength : LabelsMaxAttrLength))
            {
                error = SyncError.AttributeLength;
                return SyncParse.Malformed;
            }
            ReadOnlySpan<byte> v = rest.Slice(4, len - 4);
            switch (attr)
            {
                case AttrIpv4 or AttrIpv6:
                    ReadAddresses(ref o, v, attr == AttrIpv6);
                    haveAddress = true;
                    break;
                case AttrL4Proto:
                    o.Protocol = v[0];
                    haveProto = true;
                    break;
                case AttrPort:
                    ReadPorts(ref o, v);
                    havePorts = true;
                    break;
                case AttrTcpState: tcpState = v[0]; break;
                case AttrStatus: status = BinaryPrimitives.ReadUInt32BigEndian(v); break;
                case AttrTimeout: timeout = BinaryPrimitives.ReadUInt32BigEndian(v); break;
                case AttrMark: mark = BinaryPrimitives.ReadUInt32BigEndian(v); break;
                case AttrSnatIpv4:
                    snat = true;
                    snatAddr = IpAddress.FromV4(v);
                    family |= 4;
                    break;
                case AttrDnatIpv4:
                    dnat = true;
                    dnatAddr = IpAddress.FromV4(v);
                    family |= 4;
                    break;
                case AttrSnatIpv6:
                    snat = true;
                    snatAddr = IpAddress.FromV6(v);
                    family |= 2;
                    break;
                case AttrDnatIpv6:
                    dnat = true;
                    dnatAddr = IpAddress.FromV6(v);
                    family |= 2;
                    break;
                case AttrSpatPort:
                    spat = true;
                    spatPort = BinaryPrimitives.ReadUInt16LittleEndian(v);
                    break;
                case AttrDpatPort:
                    dpat = true;
                    dpatPort = BinaryPrimitives.ReadUInt16LittleEndian(v);
                    break;
                case AttrIcmpType:
                    icmpType = v[0];
                    haveIcmpType = true;
                    break;
                case AttrIcmpCode: icmpCode = v[0]; break;
                case AttrIcmpId: icmpId = BinaryPrimitives.ReadUInt16LittleEndian(v); break;
                case AttrTcpWscaleOrig: wsOrig = v[0]; break;
                case AttrTcpWscaleRepl: wsRepl = v[0]; break;
                case AttrHelperName: helper = ReadHelper(v); break;
                case AttrZone: zone = BinaryPrimitives.ReadUInt16BigEndian(v); break;
                case AttrSctpState: sctpState = v[0]; break;
                case AttrSctpVtagOrig: vtagOrig = BinaryPrimitives.ReadUInt32BigEndian(v); break;
                case AttrSctpVtagRepl: vtagRepl = BinaryPrimitives.ReadUInt32BigEndian(v); break;
                case AttrMasterIpv4 or AttrMasterIpv6:
                    ReadAddresses(ref master, v, attr == AttrMasterIpv6);
                    haveMaster = true;
                    break;
                case AttrMasterL4Proto:
                    master.Protocol = v[0];
                    haveMasterProto = true;
                    break;
                case AttrMasterPort:
                    ReadPorts(ref master, v);
                    break;
                default:
                    // NAT_SEQ_ADJ, DCCP state, LABELS, SYNPROXY: valid, not kept by ctfw.
                    break;
            }
            int step = (len + 3) & ~3;
            if (step >= rest.Length)
                break;
            rest = rest[step..];
        }

        if (!haveAddress)
        {
            error = SyncError.MissingAddress;
            return SyncParse.Malformed;
        }
        if (!haveProto)
        {
            error = SyncError.MissingProtocol;
            return SyncParse.Malformed;
        }
        if ((family & 4) != 0 && o.IpVersion != 4 || (family & 2) != 0 && o.IpVersion != 6)
        {
            error = SyncError.FamilyMismatch;
            return SyncParse.Malformed;
        }
        bool ports = ConnTuple.HasPorts(o.Protocol);
        bool icmp = o.Protocol is IpProto.Icmp or IpProto.Icmpv6;
        if (ports && !havePorts || icmp && !haveIcmpType)
        {
            error = SyncError.MissingPorts;
            return SyncParse.Malformed;
        }
        if (!ports)
        {
            o.SrcId = icmp ? icmpId : (ushort)0;
            o.DstId = icmp ? (ushort)((icmpType << 8) | icmpCode) : (ushort)0;
        }
        if (o.Protocol == IpProto.Tcp ? tcpState >= (byte)TcpState.Max : tcpState != 0)
        {
            error = SyncError.BadTcpState;
            return SyncParse.Malformed;
        }
        o.Zone = zone;
        // conntrackd takes each MASTER_* attribute alone; a master is only of use whole and of the entry's family.
        haveMaster &= haveMasterProto && master.IpVersion == o.IpVersion;
        master.Zone = zone;
        if (!o.TryInvert(out ConnTuple r))
        {
            error = SyncError.NotInvertible;
            return SyncParse.Unsupported;
        }
        if (snat)
            r.Dst = snatAddr;
        if (dnat)
            r.Src = dnatAddr;
        if (spat && ports)
            r.DstId = spatPort;
        if (dpat && ports)
            r.SrcId = dpatPort;

        c = new KernelConnection
        {
            Original = o,
            Reply = r,
            Status = (CtStatus)status & KernelStatus.Defined,
            TimeoutSeconds = timeout,
            Mark = mark,
            TcpState = (TcpState)tcpState,
            WindowScaleOriginal = wsOrig,
            WindowScaleReply = wsRepl,
            Helper = helper,
            Master = haveMaster ? master : null,
            SctpState = o.Protocol == IpProto.Sctp ? (SctpState)sctpState : SctpState.None,
            SctpVtagOriginal = o.Protocol == IpProto.Sctp ? vtagOrig : 0,
            SctpVtagReply = o.Protocol == IpProto.Sctp ? vtagRepl : 0,
        };
        return SyncParse.Ok;
    }

    /// <summary>The counter name of a refusal reason (same as <see cref="SyncWire.Reason"/>).</summary>
    public static string Reason(SyncError error) => SyncWire.Reason(error);

    /// <summary>Header checks shared with the session: complete header, length = span, version 1.</summary>
    public static SyncError CheckHeader(ReadOnlySpan<byte> message)
    {
        if (message.Length < SyncWire.HeaderSize)
            return SyncError.Truncated;
        if (SyncWire.LengthOf(message) != message.Length)
            return SyncError.BadLength;
        if (SyncWire.VersionOf(message) != SyncWire.Version)
            return SyncError.BadVersion;
        return SyncError.None;
    }

    /// <summary>An IPV4/IPV6 (or MASTER_IPV4/IPV6) attribute: source then destination address.</summary>
    private static void ReadAddresses(ref ConnTuple t, ReadOnlySpan<byte> v, bool v6)
    {
        t.Src = v6 ? IpAddress.FromV6(v) : IpAddress.FromV4(v);
        t.Dst = v6 ? IpAddress.FromV6(v[16..]) : IpAddress.FromV4(v[4..]);
        t.IpVersion = (byte)(v6 ? 6 : 4);
    }

    /// <summary>A PORT (or MASTER_PORT) attribute: source then destination port.</summary>
    private static void ReadPorts(ref ConnTuple t, ReadOnlySpan<byte> v)
    {
        t.SrcId = BinaryPrimitives.ReadUInt16BigEndian(v);
        t.DstId = BinaryPrimitives.ReadUInt16BigEndian(v[2..]);
    }

    private static string? ReadHelper(ReadOnlySpan<byte> v)
    {
        int end = v.IndexOf((byte)0);
        if (end >= 0)
            v = v[..end];
        if (v.IsEmpty)
            return null;
        foreach (string known in s_knownHelpers)
        {
            if (known.Length == v.Length && Matches(known, v))
                return known;
        }
        Span<char> chars = stackalloc char[v.Length];
        for (int i = 0; i < v.Length; i++)
            chars[i] = v[i] is >= 0x21 and <= 0x7E ? (char)v[i] : '?';
        return new string(chars);
    }

    private static bool Matches(string s, ReadOnlySpan<byte> v)
    {
        for (int i = 0; i < v.Length; i++)
        {
            if (s[i] != v[i])
                return false;
        }
        return true;
    }

    /// <summary>Appends TLVs after the header; remembers an overflow instead of failing at each call.</summary>
    private ref struct TlvWriter(Span<byte> dst, int start)
    {
        private readonly Span<byte> _dst = dst;

        public int Length { get; private set; } = start;

        public bool Overflow { get; private set; }

        /// <summary>Reserves an attribute (zero padding included) and returns its payload, or empty on overflow.</summary>
        public Span<byte> Put(int attr, int payload)
        {
            int len = 4 + payload;
            int padded = (len + 3) & ~3;
            if (Overflow || Length + padded > _dst.Length)
            {
                Overflow = true;
                return default;
            }
            Span<byte> a = _dst.Slice(Length, padded);
            BinaryPrimitives.WriteUInt16BigEndian(a, (ushort)len);
            BinaryPrimitives.WriteUInt16BigEndian(a[2..], (ushort)attr);
            a[len..].Clear();
            Length += padded;
            return a.Slice(4, payload);
        }

        public void U8(int attr, byte value)
        {
            Span<byte> p = Put(attr, 1);
            if (!p.IsEmpty)
                p[0] = value;
        }

        public void U16(int attr, ushort value)
        {
            Span<byte> p = Put(attr, 2);
            if (!p.IsEmpty)
                BinaryPrimitives.WriteUInt16BigEndian(p, value);
        }

        public void U16HostOrder(int attr, ushort value)
        {
            Span<byte> p = Put(attr, 2);
            if (!p.IsEmpty)
                BinaryPrimitives.WriteUInt16LittleEndian(p, value);
        }

        public void U32(int attr, uint value)
        {
            Span<byte> p = Put(attr, 4);
            if (!p.IsEmpty)
                BinaryPrimitives.WriteUInt32BigEndian(p, value);
        }
    }
}
