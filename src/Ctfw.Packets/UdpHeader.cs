using System.Buffers.Binary;

namespace Ctfw.Packets;

//  RFC 768
//   0      7 8     15 16    23 24    31
//  +--------+--------+--------+--------+
//  |     Source      |   Destination   |
//  |      Port       |      Port       |
//  +--------+--------+--------+--------+
//  |                 |                 |
//  |     Length      |    Checksum     |
//  +--------+--------+--------+--------+

/// <summary>Reader over an 8-byte UDP header.</summary>
public readonly ref struct UdpHeader
{
    public const int Length = 8;
    private const int SrcPortOffset = 0;
    private const int DstPortOffset = 2;
    private const int LengthOffset = 4;
    private const int ChecksumOffset = 6;

    private readonly ReadOnlySpan<byte> _bytes;

    private UdpHeader(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public static bool TryRead(ReadOnlySpan<byte> datagram, out UdpHeader header)
    {
        header = datagram.Length >= Length ? new UdpHeader(datagram) : default;
        return datagram.Length >= Length;
    }

    public ushort SrcPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SrcPortOffset..]);
    public ushort DstPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[DstPortOffset..]);
    /// <summary>The datagram length field (header included), unvalidated.</summary>
    public ushort DatagramLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[LengthOffset..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);
}
