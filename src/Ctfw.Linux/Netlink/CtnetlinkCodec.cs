using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Linux.Netlink;

//  One conntrack entry on the wire (IPCTNL_MSG_CT_NEW: a dump answer, or a create request), spec §13.3:
//
//  nlmsghdr (16) | nfgenmsg (4: family AF_INET/AF_INET6, version 0, res_id 0) | attributes:
//    CTA_TUPLE_ORIG  (nested) ─┬─ CTA_TUPLE_IP    (nested) ── CTA_IP_V4_SRC/DST (4) | CTA_IP_V6_SRC/DST (16)
//    CTA_TUPLE_REPLY (nested)  ├─ CTA_TUPLE_PROTO (nested) ── CTA_PROTO_NUM (u8), SRC/DST_PORT (be16) |
//                              │                              ICMP[V6]_ID (be16), ICMP[V6]_TYPE (u8), ICMP[V6]_CODE (u8)
//                              └─ CTA_TUPLE_ZONE (be16, a directional zone only)
//    CTA_ZONE (be16) · CTA_STATUS (be32) · CTA_TIMEOUT (be32 s) · CTA_MARK (be32)
//    CTA_PROTOINFO (nested) ─┬─ CTA_PROTOINFO_TCP (nested) ── STATE (u8), WSCALE_ORIGINAL/REPLY (u8),
//                            │                                FLAGS_ORIGINAL/REPLY ({u8 flags, u8 mask})
//                            └─ CTA_PROTOINFO_SCTP (nested) ── STATE (u8), VTAG_ORIGINAL/REPLY (be32)
//    CTA_HELP (nested) ── CTA_HELP_NAME (NUL-terminated string)
//    CTA_TUPLE_MASTER (nested, as a tuple): an expected entry's master's ORIGINAL tuple
//    … counters, timestamps, id, use, labels, secctx, seqadj, synproxy, unknown ids: skipped
//  Every attribute is a 4-byte nlattr header (host order) and its payload, padded to 4 bytes.

/// <summary>
/// Encodes ctnetlink requests and decodes ctnetlink entries, as pure functions over bytes (no socket,
/// no clock): what <see cref="CtnetlinkSocket"/> sends and reads, testable without privileges. Decoding
/// never throws: a message that cannot be read is refused with a reason.
/// </summary>
public static class CtnetlinkCodec
{
    /// <summary>No create message is longer (the longest, an IPv6 TCP entry with a zone, a mark, a 15-character helper name and a master, takes 352 bytes).</summary>
    public const int MaxCreateSize = 384;

    /// <summary>CTA_HELP_NAME's limit (NF_CT_HELPER_NAME_LEN, NUL included): a longer name is not sent.</summary>
    private const int MaxHelperName = 16;

    /// <summary>Length of the dump and flush requests (headers only).</summary>
    public const int RequestSize = NetlinkWriter.NfHeaderSize;

    /// <summary>IPCTNL_MSG_CT_GET with NLM_F_DUMP for every family (AF_UNSPEC), no filter. Returns its length.</summary>
    public static int WriteDumpRequest(Span<byte> destination, uint sequence)
    {
        int end = NetlinkWriter.WriteNfHeader(destination, Ctnetlink.MsgGet, NlMsgHdr.FlagRequest | Ctnetlink.FlagDump, sequence, Ctnetlink.AfUnspec, 0);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    /// <summary>IPCTNL_MSG_CT_DELETE without a tuple (every entry of the namespace), acknowledged. Returns its length.</summary>
    public static int WriteFlushRequest(Span<byte> destination, uint sequence)
    {
        int end = NetlinkWriter.WriteNfHeader(destination, Ctnetlink.MsgDelete, NlMsgHdr.FlagRequest | NlMsgHdr.FlagAck, sequence, Ctnetlink.AfUnspec, 0);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    /// <summary>
    /// IPCTNL_MSG_CT_NEW with NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK for one connection:
    /// both tuples, CTA_ZONE, CTA_STATUS (CONFIRMED plus SEEN_REPLY, ASSURED, FIXED_TIMEOUT: the only
    /// bits a create accepts, see <see cref="Ctnetlink.CreatableStatus"/>), CTA_TIMEOUT, CTA_MARK when
    /// set, and for TCP CTA_PROTOINFO_TCP with the state, both window scales and the portable flags
    /// under their own mask. Returns the length, or 0 with <paramref name="refusal"/> when the kernel
    /// could not take the entry (it would answer EINVAL or create something else).
    /// </summary>
    /// <summary>IPCTNL_MSG_CT_DELETE of the entry holding <paramref name="connection"/>'s original tuple (either direction), acknowledged.</summary>
    public static int WriteDelete(Span<byte> destination, uint sequence, in KernelConnection connection)
    {
        if (destination.Length < MaxCreateSize)
            throw new ArgumentException($"a delete needs a buffer of {MaxCreateSize} bytes", nameof(destination));
        ConnTuple o = connection.Original;
        byte family = o.IsV6 ? Ctnetlink.AfInet6 : Ctnetlink.AfInet;
        int end = NetlinkWriter.WriteNfHeader(destination, Ctnetlink.MsgDelete, NlMsgHdr.FlagRequest | NlMsgHdr.FlagAck, sequence, family, 0);
        end = WriteTuple(destination, end, Ctnetlink.TupleOrig, o);
        if (o.Zone != 0)
            end = WriteUInt16BigEndian(destination, end, Ctnetlink.Zone, o.Zone);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    public static int WriteCreate(Span<byte> destination, uint sequence, in KernelConnection connection, out string? refusal)
    {
        if (destination.Length < MaxCreateSize)
            throw new ArgumentException($"a create needs a buffer of {MaxCreateSize} bytes", nameof(destination));
        refusal = CheckCreatable(connection);
        if (refusal != null)
            return 0;
        ConnTuple o = connection.Original;
        byte family = o.IsV6 ? Ctnetlink.AfInet6 : Ctnetlink.AfInet;
        const ushort Flags = NlMsgHdr.FlagRequest | NlMsgHdr.FlagAck | Ctnetlink.FlagCreate | Ctnetlink.FlagExclusive;
        int end = NetlinkWriter.WriteNfHeader(destination, Ctnetlink.MsgNew, Flags, sequence, family, 0);
        end = WriteTuple(destination, end, Ctnetlink.TupleOrig, o);
        end = WriteTuple(destination, end, Ctnetlink.TupleReply, connection.Reply);
        if (o.Zone != 0)
            end = WriteUInt16BigEndian(destination, end, Ctnetlink.Zone, o.Zone);
        uint status = ((uint)connection.Status & Ctnetlink.CreatableStatus) | Ctnetlink.StatusConfirmed;
        end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Ctnetlink.Status, status);
        end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Ctnetlink.Timeout, connection.TimeoutSeconds);
        if (connection.Mark != 0)
            end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Ctnetlink.Mark, connection.Mark);
        if (o.Protocol == IpProto.Tcp)
        {
            int info = end;
            end = BeginNest(destination, end, Ctnetlink.ProtoInfo);
            int tcp = end;
            end = BeginNest(destination, end, Ctnetlink.ProtoInfoTcp);
            end = WriteByte(destination, end, Ctnetlink.TcpState, (byte)connection.TcpState);
            // The kernel takes the scales only when both flag bytes have WINDOW_SCALE (nlattr_to_tcp), as
            // its own tracker scales only when both SYNs carried the option.
            end = WriteByte(destination, end, Ctnetlink.TcpWscaleOriginal, connection.WindowScaleOriginal);
            end = WriteByte(destination, end, Ctnetlink.TcpWscaleReply, connection.WindowScaleReply);
            end = WriteTcpFlags(destination, end, Ctnetlink.TcpFlagsOriginal, connection.TcpFlagsOriginal);
            end = WriteTcpFlags(destination, end, Ctnetlink.TcpFlagsReply, connection.TcpFlagsReply);
            EndNest(destination, tcp, end);
            EndNest(destination, info, end);
        }
        else if (o.Protocol == IpProto.Sctp)
        {
            // nlattr_to_sctp wants all three or answers EINVAL.
            int info = end;
            end = BeginNest(destination, end, Ctnetlink.ProtoInfo);
            int sctp = end;
            end = BeginNest(destination, end, Ctnetlink.ProtoInfoSctp);
            end = WriteByte(destination, end, Ctnetlink.SctpState, (byte)connection.SctpState);
            end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Ctnetlink.SctpVtagOriginal, connection.SctpVtagOriginal);
            end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Ctnetlink.SctpVtagReply, connection.SctpVtagReply);
            EndNest(destination, sctp, end);
            EndNest(destination, info, end);
        }
        if (connection.Helper is { } helper)
        {
            // The kernel attaches the helper by name (loading nf_conntrack_NAME if it can), or refuses with EOPNOTSUPP.
            int help = end;
            end = BeginNest(destination, end, Ctnetlink.Help);
            int p = NetlinkWriter.WriteAttributeHeader(destination, end, Ctnetlink.HelpName, helper.Length + 1);
            for (int i = 0; i < helper.Length; i++)
                destination[p + i] = (byte)helper[i];
            destination[p + helper.Length] = 0;
            end = NetlinkWriter.Pad(destination, p + helper.Length + 1);
            EndNest(destination, help, end);
        }
        // The master must be in the kernel's table already (ENOENT otherwise); the kernel sets EXPECTED itself.
        if (connection.Master is { } master)
            end = WriteTuple(destination, end, Ctnetlink.TupleMaster, master);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    /// <summary>Why the kernel would refuse (or misread) a create of <paramref name="c"/>; null when it can take it.</summary>
    private static string? CheckCreatable(in KernelConnection c)
    {
        ConnTuple o = c.Original, r = c.Reply;
        if (o.IpVersion is not (4 or 6))
            return $"IP version {o.IpVersion}";
        if (r.IpVersion != o.IpVersion || r.Protocol != o.Protocol)
            return "ORIGINAL and REPLY tuples of different families or protocols";
        if (o.Zone != r.Zone)
            return "directional zones are not exported";
        if (c.TimeoutSeconds == 0)
            return "no time left";
        if ((o.Protocol == IpProto.Icmp && o.IsV6) || (o.Protocol == IpProto.Icmpv6 && !o.IsV6))
            return "ICMP tuple of the other IP version";
        if (o.Protocol == IpProto.Tcp)
        {
            if (c.TcpState is TcpState.None || (byte)c.TcpState > Ctnetlink.MaxTcpState)
                return $"TCP state {(byte)c.TcpState}";
            if (c.WindowScaleOriginal > Ctnetlink.MaxWindowScale || c.WindowScaleReply > Ctnetlink.MaxWindowScale)
                return $"TCP window scale {c.WindowScaleOriginal}/{c.WindowScaleReply} above {Ctnetlink.MaxWindowScale}";
        }
        if (o.Protocol == IpProto.Sctp && (c.SctpState is SctpState.None || (byte)c.SctpState > Ctnetlink.MaxSctpState))
            return $"SCTP state {(byte)c.SctpState}";
        if (c.Helper is { } helper && (helper.Length is 0 or >= MaxHelperName || !System.Text.Ascii.IsValid(helper) || helper.Contains('\0')))
            return $"helper name '{helper}'";
        if (c.Master is { } master && (master.IpVersion != o.IpVersion || master.Zone != o.Zone))
            return "master of another family or zone";
        return null;
    }

    /// <summary>
    /// Decodes one entry message (nlmsghdr included) as a dump sends it, or as <see cref="WriteCreate"/>
    /// wrote it. Unknown attributes are skipped. False with <paramref name="reason"/> when the message
    /// cannot be read: cut short, an attribute that runs past its parent, a missing or short mandatory
    /// attribute (both tuples and the status), a family other than IPv4/IPv6.
    /// </summary>
    public static bool TryParseConnection(ReadOnlySpan<byte> message, out KernelConnection connection, out string? reason)
    {
        connection = default;
        if (message.Length < NetlinkWriter.NfHeaderSize)
        {
            reason = "message shorter than its headers";
            return false;
        }
        NlMsgHdr header = MemoryMarshal.Read<NlMsgHdr>(message);
        if (header.Length < NetlinkWriter.NfHeaderSize || header.Length > (uint)message.Length)
        {
            reason = "message length does not fit the bytes";
            return false;
        }
        byte family = message[NlMsgHdr.Size + NfGenMsg.FamilyOffset];
        byte version = family switch { Ctnetlink.AfInet => 4, Ctnetlink.AfInet6 => 6, _ => 0 };
        if (version == 0)
        {
            reason = $"family {family}";
            return false;
        }

        ConnTuple orig = default, reply = default;
        bool haveOrig = false, haveReply = false, haveStatus = false;
        int origZone = -1, replyZone = -1, zone = 0;
        uint status = 0, timeout = 0, mark = 0;
        var tcp = new TcpInfo();
        string? helper = null;
        ConnTuple master = default;
        bool haveMaster = false;
        int masterZone = -1;
        var attributes = new NetlinkAttributeReader(message[NetlinkWriter.NfHeaderSize..(int)header.Length]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            switch (type)
            {
                case Ctnetlink.TupleOrig:
                    if (!TryParseTuple(value, version, out orig, out origZone, out reason))
                    {
                        reason = "CTA_TUPLE_ORIG: " + reason;
                        return false;
                    }
                    haveOrig = true;
                    break;
                case Ctnetlink.TupleReply:
                    if (!TryParseTuple(value, version, out reply, out replyZone, out reason))
                    {
                        reason = "CTA_TUPLE_REPLY: " + reason;
                        return false;
                    }
                    haveReply = true;
                    break;
                case Ctnetlink.Status:
                    if (!TryUInt32(value, "CTA_STATUS", out status, out reason))
                        return false;
                    haveStatus = true;
                    break;
                case Ctnetlink.Timeout:
                    if (!TryUInt32(value, "CTA_TIMEOUT", out timeout, out reason))
                        return false;
                    break;
                case Ctnetlink.Mark:
                    if (!TryUInt32(value, "CTA_MARK", out mark, out reason))
                        return false;
                    break;
                case Ctnetlink.Zone:
                    if (value.Length < 2)
                    {
                        reason = "CTA_ZONE shorter than 2 bytes";
                        return false;
                    }
                    zone = BinaryPrimitives.ReadUInt16BigEndian(value);
                    break;
                case Ctnetlink.ProtoInfo:
                    if (!TryParseProtoInfo(value, ref tcp, out reason))
                        return false;
                    break;
                case Ctnetlink.Help:
                    helper = ParseHelper(value);
                    break;
                case Ctnetlink.TupleMaster:
                    if (!TryParseTuple(value, version, out master, out masterZone, out reason))
                    {
                        reason = "CTA_TUPLE_MASTER: " + reason;
                        return false;
                    }
                    haveMaster = true;
                    break;
            }
        }
        if (attributes.Malformed)
        {
            reason = "an attribute runs past the message";
            return false;
        }
        if (!haveOrig || !haveReply || !haveStatus)
        {
            reason = !haveOrig ? "no CTA_TUPLE_ORIG" : !haveReply ? "no CTA_TUPLE_REPLY" : "no CTA_STATUS";
            return false;
        }
        if (orig.Protocol != reply.Protocol)
        {
            reason = "ORIGINAL and REPLY tuples of different protocols";
            return false;
        }
        // A zone for both directions comes as CTA_ZONE; a directional one inside its tuple only.
        orig.Zone = (ushort)(origZone >= 0 ? origZone : zone);
        reply.Zone = (ushort)(replyZone >= 0 ? replyZone : zone);
        bool isTcp = orig.Protocol == IpProto.Tcp;
        bool isSctp = orig.Protocol == IpProto.Sctp;
        // The kernel dumps the master without a zone: it is the entry's.
        if (haveMaster)
            master.Zone = (ushort)(masterZone >= 0 ? masterZone : zone);
        connection = new KernelConnection
        {
            Original = orig,
            Reply = reply,
            Status = (CtStatus)status,
            TimeoutSeconds = timeout,
            Mark = mark,
            TcpState = isTcp ? (TcpState)tcp.State : TcpState.None,
            WindowScaleOriginal = isTcp ? tcp.ScaleOriginal : (byte)0,
            WindowScaleReply = isTcp ? tcp.ScaleReply : (byte)0,
            TcpFlagsOriginal = isTcp ? tcp.FlagsOriginal : (byte)0,
            TcpFlagsReply = isTcp ? tcp.FlagsReply : (byte)0,
            Helper = helper,
            Master = haveMaster ? master : null,
            SctpState = isSctp ? (SctpState)tcp.SctpState : SctpState.None,
            SctpVtagOriginal = isSctp ? tcp.VtagOriginal : 0,
            SctpVtagReply = isSctp ? tcp.VtagReply : 0,
        };
        reason = null;
        return true;
    }

    /// <summary>The error code of an NLMSG_ERROR message (0 = ACK); false when it is too short to carry one.</summary>
    public static bool TryReadError(ReadOnlySpan<byte> message, out Errno error)
    {
        error = Errno.None;
        if (message.Length < NlMsgHdr.Size + sizeof(int))
            return false;
        int code = MemoryMarshal.Read<int>(message[(NlMsgHdr.Size + NlMsgErr.ErrorOffset)..]);
        error = (Errno)(-code);
        return true;
    }

    /// <summary>CTA_PROTOINFO's fields: TCP's, and SCTP's state and verification tags.</summary>
    private struct TcpInfo
    {
        public byte State, ScaleOriginal, ScaleReply, FlagsOriginal, FlagsReply, SctpState;
        public uint VtagOriginal, VtagReply;
    }

    private static bool TryParseTuple(ReadOnlySpan<byte> nest, byte version, out ConnTuple tuple, out int zone, out string? reason)
    {
        tuple = default;
        tuple.IpVersion = version;
        zone = -1;
        bool haveSrc = false, haveDst = false, haveProto = false;
        int srcPort = -1, dstPort = -1, icmpId = -1, icmpType = -1, icmpCode = -1;
        int addressLength = version == 4 ? 4 : 16;
        var attributes = new NetlinkAttributeReader(nest);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == Ctnetlink.TupleIp)
            {
                var ip = new NetlinkAttributeReader(value);
                while (ip.TryRead(out ushort ipType, out ReadOnlySpan<byte> address))
                {
                    bool src = ipType == (version == 4 ? Ctnetlink.IpV4Src : Ctnetlink.IpV6Src);
                    bool dst = ipType == (version == 4 ? Ctnetlink.IpV4Dst : Ctnetlink.IpV6Dst);
                    if (!src && !dst)
                        continue;
                    if (address.Length < addressLength)
                    {
                        reason = $"IPv{version} address of {address.Length} bytes";
                        return false;
                    }
                    IpAddress a = version == 4 ? IpAddress.FromV4(address[..4]) : IpAddress.FromV6(address[..16]);
                    if (src)
                    {
                        tuple.Src = a;
                        haveSrc = true;
                    }
                    else
                    {
                        tuple.Dst = a;
                        haveDst = true;
                    }
                }
                if (ip.Malformed)
                {
                    reason = "CTA_TUPLE_IP runs past its nest";
                    return false;
                }
            }
            else if (type == Ctnetlink.TupleProto)
            {
                var proto = new NetlinkAttributeReader(value);
                while (proto.TryRead(out ushort protoType, out ReadOnlySpan<byte> field))
                {
                    switch (protoType)
                    {
                        case Ctnetlink.ProtoNum when field.Length >= 1:
                            tuple.Protocol = field[0];
                            haveProto = true;
                            break;
                        case Ctnetlink.ProtoSrcPort when field.Length >= 2:
                            srcPort = BinaryPrimitives.ReadUInt16BigEndian(field);
                            break;
                        case Ctnetlink.ProtoDstPort when field.Length >= 2:
                            dstPort = BinaryPrimitives.ReadUInt16BigEndian(field);
                            break;
                        case Ctnetlink.ProtoIcmpId or Ctnetlink.ProtoIcmpv6Id when field.Length >= 2:
                            if ((protoType == Ctnetlink.ProtoIcmpId) == (version == 4))
                                icmpId = BinaryPrimitives.ReadUInt16BigEndian(field);
                            break;
                        case Ctnetlink.ProtoIcmpType or Ctnetlink.ProtoIcmpv6Type when field.Length >= 1:
                            if ((protoType == Ctnetlink.ProtoIcmpType) == (version == 4))
                                icmpType = field[0];
                            break;
                        case Ctnetlink.ProtoIcmpCode or Ctnetlink.ProtoIcmpv6Code when field.Length >= 1:
                            if ((protoType == Ctnetlink.ProtoIcmpCode) == (version == 4))
                                icmpCode = field[0];
                            break;
                        case >= Ctnetlink.ProtoNum and <= Ctnetlink.ProtoIcmpv6Code:
                            reason = $"CTA_PROTO attribute {protoType} of {field.Length} bytes";
                            return false;
                    }
                }
                if (proto.Malformed)
                {
                    reason = "CTA_TUPLE_PROTO runs past its nest";
                    return false;
                }
            }
            else if (type == Ctnetlink.TupleZone)
            {
                if (value.Length < 2)
                {
                    reason = "CTA_TUPLE_ZONE shorter than 2 bytes";
                    return false;
                }
                zone = BinaryPrimitives.ReadUInt16BigEndian(value);
            }
        }
        if (attributes.Malformed)
        {
            reason = "an attribute runs past the tuple";
            return false;
        }
        if (!haveSrc || !haveDst)
        {
            reason = $"no IPv{version} source and destination";
            return false;
        }
        if (!haveProto)
        {
            reason = "no CTA_PROTO_NUM";
            return false;
        }
        bool icmp = tuple.Protocol == (version == 4 ? IpProto.Icmp : IpProto.Icmpv6);
        if (icmp)
        {
            if (icmpId < 0 || icmpType < 0 || icmpCode < 0)
            {
                reason = "ICMP tuple without id, type and code";
                return false;
            }
            tuple.SrcId = (ushort)icmpId;
            tuple.DstId = (ushort)((icmpType << 8) | icmpCode);
        }
        else if (srcPort >= 0 && dstPort >= 0)
        {
            // Ports, or GRE keys (the kernel's GRE tracker sends its keys as ports).
            tuple.SrcId = (ushort)srcPort;
            tuple.DstId = (ushort)dstPort;
        }
        else if (ConnTuple.HasPorts(tuple.Protocol))
        {
            reason = "port tuple without both ports";
            return false;
        }
        reason = null;
        return true;
    }

    private static bool TryParseProtoInfo(ReadOnlySpan<byte> nest, ref TcpInfo tcp, out string? reason)
    {
        var info = new NetlinkAttributeReader(nest);
        while (info.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == Ctnetlink.ProtoInfoSctp)
            {
                if (!TryParseSctp(value, ref tcp, out reason))
                    return false;
                continue;
            }
            if (type != Ctnetlink.ProtoInfoTcp)
                continue; // DCCP: not tracked here
            var fields = new NetlinkAttributeReader(value);
            while (fields.TryRead(out ushort field, out ReadOnlySpan<byte> v))
            {
                int need = field is Ctnetlink.TcpFlagsOriginal or Ctnetlink.TcpFlagsReply ? Ctnetlink.TcpFlagsSize : 1;
                if (field is >= Ctnetlink.TcpState and <= Ctnetlink.TcpFlagsReply && v.Length < need)
                {
                    reason = $"CTA_PROTOINFO_TCP attribute {field} of {v.Length} bytes";
                    return false;
                }
                switch (field)
                {
                    case Ctnetlink.TcpState:
                        tcp.State = v[0];
                        break;
                    case Ctnetlink.TcpWscaleOriginal:
                        tcp.ScaleOriginal = v[0];
                        break;
                    case Ctnetlink.TcpWscaleReply:
                        tcp.ScaleReply = v[0];
                        break;
                    case Ctnetlink.TcpFlagsOriginal:
                        tcp.FlagsOriginal = v[0];
                        break;
                    case Ctnetlink.TcpFlagsReply:
                        tcp.FlagsReply = v[0];
                        break;
                }
            }
            if (fields.Malformed)
            {
                reason = "CTA_PROTOINFO_TCP runs past its nest";
                return false;
            }
        }
        if (info.Malformed)
        {
            reason = "CTA_PROTOINFO runs past its nest";
            return false;
        }
        reason = null;
        return true;
    }

    private static bool TryParseSctp(ReadOnlySpan<byte> nest, ref TcpInfo info, out string? reason)
    {
        var fields = new NetlinkAttributeReader(nest);
        while (fields.TryRead(out ushort field, out ReadOnlySpan<byte> v))
        {
            int need = field == Ctnetlink.SctpState ? 1 : 4;
            if (field is >= Ctnetlink.SctpState and <= Ctnetlink.SctpVtagReply && v.Length < need)
            {
                reason = $"CTA_PROTOINFO_SCTP attribute {field} of {v.Length} bytes";
                return false;
            }
            switch (field)
            {
                case Ctnetlink.SctpState:
                    info.SctpState = v[0];
                    break;
                case Ctnetlink.SctpVtagOriginal:
                    info.VtagOriginal = BinaryPrimitives.ReadUInt32BigEndian(v);
                    break;
                case Ctnetlink.SctpVtagReply:
                    info.VtagReply = BinaryPrimitives.ReadUInt32BigEndian(v);
                    break;
            }
        }
        reason = fields.Malformed ? "CTA_PROTOINFO_SCTP runs past its nest" : null;
        return reason == null;
    }

    /// <summary>CTA_HELP_NAME up to its NUL; null when absent or empty (an empty name means "no helper").</summary>
    private static string? ParseHelper(ReadOnlySpan<byte> nest)
    {
        var help = new NetlinkAttributeReader(nest);
        while (help.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type != Ctnetlink.HelpName)
                continue;
            int nul = value.IndexOf((byte)0);
            ReadOnlySpan<byte> name = nul >= 0 ? value[..nul] : value;
            return name.IsEmpty ? null : System.Text.Encoding.ASCII.GetString(name);
        }
        return null;
    }

    private static bool TryUInt32(ReadOnlySpan<byte> value, string name, out uint result, out string? reason)
    {
        if (value.Length < 4)
        {
            result = 0;
            reason = $"{name} shorter than 4 bytes";
            return false;
        }
        result = BinaryPrimitives.ReadUInt32BigEndian(value);
        reason = null;
        return true;
    }

    private static int WriteTuple(Span<byte> d, int offset, ushort type, in ConnTuple t)
    {
        int tuple = offset;
        int end = BeginNest(d, offset, type);
        int ip = end;
        end = BeginNest(d, end, Ctnetlink.TupleIp);
        if (t.IsV6)
        {
            int p = NetlinkWriter.WriteAttributeHeader(d, end, Ctnetlink.IpV6Src, 16);
            t.Src.WriteV6(d[p..]);
            p = NetlinkWriter.WriteAttributeHeader(d, p + 16, Ctnetlink.IpV6Dst, 16);
            t.Dst.WriteV6(d[p..]);
            end = p + 16;
        }
        else
        {
            end = NetlinkWriter.WriteUInt32BigEndian(d, end, Ctnetlink.IpV4Src, t.Src.V4);
            end = NetlinkWriter.WriteUInt32BigEndian(d, end, Ctnetlink.IpV4Dst, t.Dst.V4);
        }
        EndNest(d, ip, end);
        int proto = end;
        end = BeginNest(d, end, Ctnetlink.TupleProto);
        end = WriteByte(d, end, Ctnetlink.ProtoNum, t.Protocol);
        if (t.Protocol is IpProto.Icmp or IpProto.Icmpv6)
        {
            bool v6 = t.Protocol == IpProto.Icmpv6;
            end = WriteUInt16BigEndian(d, end, v6 ? Ctnetlink.ProtoIcmpv6Id : Ctnetlink.ProtoIcmpId, t.SrcId);
            end = WriteByte(d, end, v6 ? Ctnetlink.ProtoIcmpv6Type : Ctnetlink.ProtoIcmpType, (byte)(t.DstId >> 8));
            end = WriteByte(d, end, v6 ? Ctnetlink.ProtoIcmpv6Code : Ctnetlink.ProtoIcmpCode, (byte)t.DstId);
        }
        else if (ConnTuple.HasPorts(t.Protocol) || t.SrcId != 0 || t.DstId != 0)
        {
            end = WriteUInt16BigEndian(d, end, Ctnetlink.ProtoSrcPort, t.SrcId);
            end = WriteUInt16BigEndian(d, end, Ctnetlink.ProtoDstPort, t.DstId);
        }
        EndNest(d, proto, end);
        EndNest(d, tuple, end);
        return end;
    }

    private static int BeginNest(Span<byte> d, int offset, ushort type) =>
        NetlinkWriter.WriteAttributeHeader(d, offset, (ushort)(type | NlAttr.FlagNested), 0);

    /// <summary>Patches the length of the nest that starts at <paramref name="start"/> and ends (aligned) at <paramref name="end"/>.</summary>
    private static void EndNest(Span<byte> d, int start, int end)
    {
        ushort length = (ushort)(end - start);
        MemoryMarshal.Write(d[(start + NlAttr.LengthOffset)..], in length);
    }

    private static int WriteByte(Span<byte> d, int offset, ushort type, byte value)
    {
        int p = NetlinkWriter.WriteAttributeHeader(d, offset, type, 1);
        d[p] = value;
        return NetlinkWriter.Pad(d, p + 1);
    }

    private static int WriteUInt16BigEndian(Span<byte> d, int offset, ushort type, ushort value)
    {
        int p = NetlinkWriter.WriteAttributeHeader(d, offset, type, 2);
        BinaryPrimitives.WriteUInt16BigEndian(d[p..], value);
        return NetlinkWriter.Pad(d, p + 2);
    }

    private static int WriteTcpFlags(Span<byte> d, int offset, ushort type, byte flags)
    {
        int p = NetlinkWriter.WriteAttributeHeader(d, offset, type, Ctnetlink.TcpFlagsSize);
        d[p] = (byte)(flags & KernelConnection.PortableTcpFlags);
        d[p + 1] = KernelConnection.PortableTcpFlags; // mask: the bits this create sets or clears
        return NetlinkWriter.Pad(d, p + Ctnetlink.TcpFlagsSize);
    }
}
