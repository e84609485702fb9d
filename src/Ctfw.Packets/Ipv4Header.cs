using System.Buffers.Binary;

namespace Ctfw.Packets;

//  RFC 791 §3.1
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |Version|  IHL  |Type of Service|          Total Length         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |         Identification        |Flags|      Fragment Offset    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Time to Live |    Protocol   |         Header Checksum       |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                       Source Address                          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Destination Address                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Options                    |    Padding    |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary>Reader over the fixed 20 bytes of an IPv4 header. Validation is the caller's job.</summary>
public readonly ref struct Ipv4Header
{
    public const int MinLength = 20;
    private const int VersionIhlOffset = 0;
    private const int TotalLengthOffset = 2;
    private const int FlagsFragmentOffset = 6;
    private const int TtlOffset = 8;
    private const int ProtocolOffset = 9;
    private const int SrcOffset = 12;
    private const int DstOffset = 16;
    private const ushort MoreFragmentsBit = 0x2000;
    private const ushort FragmentOffsetMask = 0x1FFF;

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv4Header(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public static bool TryRead(ReadOnlySpan<byte> packet, out Ipv4Header header)
    {
        header = packet.Length >= MinLength ? new Ipv4Header(packet) : default;
        return packet.Length >= MinLength;
    }

    public int Version => _bytes[VersionIhlOffset] >> 4;
    /// <summary>IHL × 4, unvalidated (may be below 20).</summary>
    public int HeaderLength => (_bytes[VersionIhlOffset] & 0xF) * 4;
    public int TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[TotalLengthOffset..]);
    /// <summary>Fragment offset in 8-byte units.</summary>
    public int FragmentOffset => BinaryPrimitives.ReadUInt16BigEndian(_bytes[FlagsFragmentOffset..]) & FragmentOffsetMask;
    public bool MoreFragments => (BinaryPrimitives.ReadUInt16BigEndian(_bytes[FlagsFragmentOffset..]) & MoreFragmentsBit) != 0;
    public byte Ttl => _bytes[TtlOffset];
    public byte Protocol => _bytes[ProtocolOffset];
    public IpAddress Src => IpAddress.FromV4(_bytes.Slice(SrcOffset, 4));
    public IpAddress Dst => IpAddress.FromV4(_bytes.Slice(DstOffset, 4));
}
