using System.Buffers.Binary;

namespace Ctfw.Packets;

//  RFC 792 (echo layout) / RFC 4443 §2.1; the same 8 bytes for ICMP and ICMPv6
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     Type      |     Code      |          Checksum             |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           Identifier          |        Sequence Number        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |     Errors: as much of the offending packet as fits ...
//
//  ICMPv6 Redirect (RFC 4861 §4.5): 4 reserved bytes after the checksum, then Target Address (16)
//  and Destination Address (16), then options. Redirected Header option (§4.6.3):
//  |     Type 4    |    Length     |            Reserved           |
//  |                           Reserved                            |
//  |                       IP header + data ...

/// <summary>Reader over the 8-byte ICMP/ICMPv6 header, plus which types carry an embedded packet.</summary>
public readonly ref struct IcmpHeader
{
    public const int Length = 8;
    private const int TypeOffset = 0;
    private const int CodeOffset = 1;
    private const int ChecksumOffset = 2;
    private const int IdentifierOffset = 4;
    private const int SequenceOffset = 6;

    public const byte Ipv6RedirectType = 137;
    /// <summary>Offset of the first option in an ICMPv6 Redirect.</summary>
    public const int Ipv6RedirectOptionsOffset = 40;
    public const byte RedirectedHeaderOption = 4;
    /// <summary>Redirected Header option: type, length, 6 reserved bytes, then the packet.</summary>
    public const int RedirectedHeaderDataOffset = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private IcmpHeader(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public static bool TryRead(ReadOnlySpan<byte> message, out IcmpHeader header)
    {
        header = message.Length >= Length ? new IcmpHeader(message) : default;
        return message.Length >= Length;
    }

    public byte Type => _bytes[TypeOffset];
    public byte Code => _bytes[CodeOffset];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);
    /// <summary>Bytes 4-5: the echo identifier, read for every type as the kernel's pkt_to_tuple does.</summary>
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_bytes[IdentifierOffset..]);
    public ushort Sequence => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SequenceOffset..]);

    /// <summary>ICMPv4 types the kernel treats as errors: unreachable, source quench, redirect, time exceeded, parameter problem.</summary>
    public static bool IsIcmpv4Error(byte type) => type is 3 or 4 or 5 or 11 or 12;

    /// <summary>ICMPv6 error messages are exactly the types below 128 (RFC 4443 §2.1).</summary>
    public static bool IsIcmpv6Error(byte type) => type < 128;
}
