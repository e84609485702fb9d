using System.Buffers.Binary;

namespace Ctfw.Packets;

//  RFC 8200 §3
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version| Traffic Class |           Flow Label                  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Payload Length        |  Next Header  |   Hop Limit   |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                                                               |
//  +                         Source Address (128)                  +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                                                               |
//  +                      Destination Address (128)                +
//  |                                                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
//  Extension headers (RFC 8200 §4, RFC 4302 §2) all start with Next Header, Hdr Ext Len:
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Next Header  |  Hdr Ext Len  |  (hop-by-hop/routing/dest-opts: (len+1)×8 bytes;
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   AH: (len+2)×4 bytes; fragment: always 8 bytes)
//  Fragment header:
//  |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//  |                         Identification                        |

/// <summary>Reader over the fixed 40-byte IPv6 header, plus the kernel's extension-header walk.</summary>
public readonly ref struct Ipv6Header
{
    public const int Length = 40;
    private const int PayloadLengthOffset = 4;
    private const int NextHeaderOffset = 6;
    private const int HopLimitOffset = 7;
    private const int SrcOffset = 8;
    private const int DstOffset = 24;
    private const int FragmentOffsetField = 2;

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv6Header(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public static bool TryRead(ReadOnlySpan<byte> packet, out Ipv6Header header)
    {
        header = packet.Length >= Length ? new Ipv6Header(packet) : default;
        return packet.Length >= Length;
    }

    public int Version => _bytes[0] >> 4;
    public int PayloadLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[PayloadLengthOffset..]);
    public byte NextHeader => _bytes[NextHeaderOffset];
    public byte HopLimit => _bytes[HopLimitOffset];
    public IpAddress Src => IpAddress.FromV6(_bytes.Slice(SrcOffset, 16));
    public IpAddress Dst => IpAddress.FromV6(_bytes.Slice(DstOffset, 16));

    /// <summary>
    /// Skips extension headers as the kernel's <c>ipv6_skip_exthdr</c> does (hop-by-hop, routing,
    /// fragment, destination options, AH; no-next-header fails). <paramref name="packet"/> is the
    /// captured bytes and <paramref name="ipEnd"/> the end of the packet per the IPv6 payload length.
    /// A header running past <paramref name="ipEnd"/> is a lie in the packet (BadIpv6PayloadLength);
    /// one running past the capture is merely unreadable (BadIpv6ExtensionHeader).
    /// </summary>
    internal static InvalidReason SkipExtensionHeaders(ReadOnlySpan<byte> packet, int ipEnd,
        ref byte nextHeader, ref int offset, out bool isFirstFragment)
    {
        isFirstFragment = false;
        while (true)
        {
            int headerLength;
            switch (nextHeader)
            {
                case IpProto.HopByHop:
                case IpProto.Ipv6Route:
                case IpProto.Ipv6DestOpts:
                case IpProto.Ah:
                case IpProto.Ipv6Frag:
                    break;
                case IpProto.Ipv6NoNext:
                    return InvalidReason.BadIpv6ExtensionHeader; // no L4 to track: ipv6_skip_exthdr fails
                default:
                    return InvalidReason.None;
            }
            if (offset + 2 > ipEnd)
                return InvalidReason.BadIpv6PayloadLength;
            if (offset + 2 > packet.Length)
                return InvalidReason.BadIpv6ExtensionHeader;

            if (nextHeader == IpProto.Ipv6Frag)
            {
                // The kernel reads only the offset word before deciding, so 4 bytes suffice to say "non-first".
                if (offset + 4 > ipEnd)
                    return InvalidReason.BadIpv6PayloadLength;
                if (offset + 4 > packet.Length)
                    return InvalidReason.BadIpv6ExtensionHeader;
                ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(packet[(offset + FragmentOffsetField)..]);
                if ((fragment & ~0x7) != 0)
                    return InvalidReason.NonFirstFragment;
                isFirstFragment = (fragment & 1) != 0;
                headerLength = 8;
            }
            else if (nextHeader == IpProto.Ah)
            {
                headerLength = (packet[offset + 1] + 2) * 4;
            }
            else
            {
                headerLength = (packet[offset + 1] + 1) * 8;
            }
            nextHeader = packet[offset];
            offset += headerLength;
        }
    }
}
