using System.Buffers.Binary;

namespace Ctfw.Capture;

/// <summary>Outcome of looking for the IP packet inside a link-layer frame.</summary>
public enum LinkResult
{
    /// <summary>The frame carries an IPv4 or IPv6 packet.</summary>
    Ip,
    /// <summary>A well-formed frame of something else (ARP, LLC, a third VLAN tag, ...): skip it.</summary>
    NotIp,
    /// <summary>The frame ends inside its link-layer header, or carries no payload.</summary>
    Truncated,
    /// <summary>The link type is not one <see cref="LinkLayer"/> decodes.</summary>
    UnsupportedLinkType,
}

/// <summary>
/// Strips link-layer headers down to the IP packet. The packet runs to the end of the frame (for
/// NFLOG, to the end of its payload attribute): Ethernet padding stays, and the IP parser, which
/// reads the IP total length, ignores it.
/// </summary>
public static class LinkLayer
{
    private const ushort EtherTypeIpv4 = 0x0800;
    private const ushort EtherTypeIpv6 = 0x86DD;
    private const ushort EtherTypeVlan = 0x8100;      // 802.1Q
    private const ushort EtherTypeQinQ = 0x88A8;      // 802.1ad service tag
    private const ushort EtherTypeQinQOld = 0x9100;   // pre-802.1ad double tagging, still seen
    private const int MaxVlanTags = 2;
    private const int NfprotoIpv4 = 2;
    private const int NfprotoIpv6 = 10;
    private const int NfulaPacketHdr = 1;
    private const int NfulaPayload = 9;
    private const int NfulaPrefix = 10;

    /// <summary>Finds the IP packet in <paramref name="frame"/>; false means skip the frame, not damage.</summary>
    public static bool TryGetNetworkPacket(int linkType, ReadOnlySpan<byte> frame,
        out ReadOnlySpan<byte> ipPacket, out int l3Offset) =>
        GetNetworkPacket(linkType, frame, out ipPacket, out l3Offset) == LinkResult.Ip;

    /// <summary>Like <see cref="TryGetNetworkPacket"/>, saying why a frame has no IP packet.</summary>
    public static LinkResult GetNetworkPacket(int linkType, ReadOnlySpan<byte> frame,
        out ReadOnlySpan<byte> ipPacket, out int l3Offset)
    {
        int l3Length = -1;  // to the end of the frame
        LinkResult result = linkType switch
        {
            LinkTypes.Ethernet => Ethernet(frame, out l3Offset),
            LinkTypes.Raw or LinkTypes.RawBsd12 or LinkTypes.RawBsd14 or LinkTypes.Ipv4 or LinkTypes.Ipv6 =>
                At(0, LinkResult.Ip, out l3Offset),
            LinkTypes.LinuxSll => EtherTypeAt(frame, typeOffset: 14, headerLength: 16, out l3Offset),
            LinkTypes.LinuxSll2 => EtherTypeAt(frame, typeOffset: 0, headerLength: 20, out l3Offset),
            LinkTypes.Null or LinkTypes.Loop => AddressFamily(frame, out l3Offset),
            LinkTypes.Nflog => Nflog(frame, out l3Offset, out l3Length, out _),
            _ => At(0, LinkResult.UnsupportedLinkType, out l3Offset),
        };
        if (result == LinkResult.Ip && l3Offset >= frame.Length)
            result = LinkResult.Truncated;
        ipPacket = result != LinkResult.Ip ? default
            : l3Length < 0 ? frame[l3Offset..] : frame.Slice(l3Offset, l3Length);
        return result;
    }

    /// <summary>
    /// Decodes an NFLOG frame: the IP packet it logged and the rule's log prefix (without its NUL;
    /// empty if none). False means no IP payload; <paramref name="prefix"/> is still set if present.
    /// </summary>
    public static bool TryParseNflog(ReadOnlySpan<byte> frame, out ReadOnlySpan<byte> ipPacket, out ReadOnlySpan<byte> prefix)
    {
        bool ip = Nflog(frame, out int offset, out int length, out prefix) == LinkResult.Ip;
        ipPacket = ip ? frame.Slice(offset, length) : default;
        return ip;
    }

    private static LinkResult At(int offset, LinkResult result, out int l3Offset)
    {
        l3Offset = offset;
        return result;
    }

    private static LinkResult IpIf(ushort etherType, int offset, out int l3Offset) =>
        At(offset, etherType is EtherTypeIpv4 or EtherTypeIpv6 ? LinkResult.Ip : LinkResult.NotIp, out l3Offset);

    /*  Ethernet II, with each 802.1Q / 802.1ad tag inserting 4 bytes before the EtherType
       +----------------+----------------+-----------------------+----------------+
     0 | Destination(6) |   Source (6)   | [TPID(2) TCI(2)] x0..2 | EtherType (2)  |
       +----------------+----------------+-----------------------+----------------+
        An EtherType below 0x0600 is an 802.3 length (LLC follows): not IP.  */
    private static LinkResult Ethernet(ReadOnlySpan<byte> frame, out int l3Offset)
    {
        int offset = 12;
        for (int tags = 0; ; tags++)
        {
            if (frame.Length < offset + 2)
                return At(0, LinkResult.Truncated, out l3Offset);
            ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
            if (etherType is not (EtherTypeVlan or EtherTypeQinQ or EtherTypeQinQOld))
                return IpIf(etherType, offset + 2, out l3Offset);
            if (tags == MaxVlanTags)
                return At(0, LinkResult.NotIp, out l3Offset);
            offset += 4;
        }
    }

    /*  Linux cooked capture v1 (SLL, 16 bytes)        v2 (SLL2, 20 bytes)
       +----------------+----------------+          +----------------+----------------+
     0 |  Packet type   |  ARPHRD type   |          | Protocol type  |    Reserved    |
     4 | Address length |                |          |        Interface index          |
       +----------------+  Address (8)   |          +----------------+-------+--------+
     8 |                                 |          |  ARPHRD type   |Pkttype|Addrlen |
       |                +----------------+          +----------------+-------+--------+
    12 |                | Protocol type  |          |           Address (8)           |
       +----------------+----------------+          +---------------------------------+  */
    private static LinkResult EtherTypeAt(ReadOnlySpan<byte> frame, int typeOffset, int headerLength, out int l3Offset) =>
        frame.Length < headerLength
            ? At(0, LinkResult.Truncated, out l3Offset)
            : IpIf(BinaryPrimitives.ReadUInt16BigEndian(frame[typeOffset..]), headerLength, out l3Offset);

    /*  NULL (0) / LOOP (108): a 4-byte address family, host order for NULL and network order for
        LOOP by definition, but writers get it wrong either way, so both orders are accepted. AF_INET
        is 2 everywhere; AF_INET6 differs per OS.  */
    private static LinkResult AddressFamily(ReadOnlySpan<byte> frame, out int l3Offset)
    {
        if (frame.Length < 4)
            return At(0, LinkResult.Truncated, out l3Offset);
        uint family = BinaryPrimitives.ReadUInt32LittleEndian(frame);
        if (family > 0xFFFF)
            family = BinaryPrimitives.ReverseEndianness(family);
        bool ip = family is 2        // AF_INET
            or 10                    // Linux AF_INET6
            or 23                    // Windows
            or 24                    // NetBSD, OpenBSD, BSD/OS
            or 28                    // FreeBSD, DragonFly
            or 30;                   // Darwin
        return At(4, ip ? LinkResult.Ip : LinkResult.NotIp, out l3Offset);
    }

    /*  NFLOG (LINKTYPE_NFLOG, tcpdump.org/linktypes/LINKTYPE_NFLOG.html)
       +---------------+---------------+-------------------------------+
     0 |    Family     |    Version    |     Resource ID (big endian)  |
       +---------------+---------------+-------------------------------+
        then TLVs, each padded to 32 bits, length and type in the capturing host's byte order
       +-------------------------------+-------------------------------+
     0 |   Length (incl. these 4)      |             Type              |
       +-------------------------------+-------------------------------+
     4 /                             Value                             /
       Type 1 is nfulnl_msg_packet_hdr (big-endian hw_protocol first), 9 the packet from its network
       header, 10 the log prefix with its NUL.  */
    private static LinkResult Nflog(ReadOnlySpan<byte> frame, out int payloadOffset, out int payloadLength,
        out ReadOnlySpan<byte> prefix)
    {
        payloadOffset = 0;
        payloadLength = -1;
        prefix = default;
        if (frame.Length < 4)
            return LinkResult.Truncated;

        ushort hwProtocol = 0;
        bool? bigEndian = null;
        for (int offset = 4; frame.Length - offset >= 4;)
        {
            ReadOnlySpan<byte> tlv = frame[offset..];
            ushort little = BinaryPrimitives.ReadUInt16LittleEndian(tlv);
            ushort big = BinaryPrimitives.ReadUInt16BigEndian(tlv);
            // The file does not record the host's byte order; the first TLV's length gives it away.
            bigEndian ??= !Fits(little, tlv.Length) && Fits(big, tlv.Length);
            int length = bigEndian.Value ? big : little;
            int type = bigEndian.Value ? BinaryPrimitives.ReadUInt16BigEndian(tlv[2..]) : BinaryPrimitives.ReadUInt16LittleEndian(tlv[2..]);
            if (length < 4)
                return LinkResult.Truncated;
            if (length > tlv.Length)
            {
                // A snaplen cuts the payload, the last TLV: keep what was captured, as for any link type.
                if (type != NfulaPayload)
                    return LinkResult.Truncated;
                length = tlv.Length;
            }

            ReadOnlySpan<byte> value = tlv[4..length];
            switch (type)
            {
                case NfulaPacketHdr when value.Length >= 2:
                    hwProtocol = BinaryPrimitives.ReadUInt16BigEndian(value);
                    break;
                case NfulaPayload:
                    payloadOffset = offset + 4;
                    payloadLength = value.Length;
                    break;
                case NfulaPrefix:
                    int end = value.IndexOf((byte)0);
                    prefix = end < 0 ? value : value[..end];
                    break;
            }
            offset += (length + 3) & ~3;
        }

        if (frame[0] is not (NfprotoIpv4 or NfprotoIpv6) && hwProtocol is not (EtherTypeIpv4 or EtherTypeIpv6))
            return LinkResult.NotIp;
        return payloadLength > 0 ? LinkResult.Ip : LinkResult.Truncated;
    }

    private static bool Fits(ushort length, int available) => length >= 4 && length <= available;
}
