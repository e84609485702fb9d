using System.Buffers.Binary;

namespace Ctfw.Packets;

//  RFC 9293 §3.1
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |          Source Port          |       Destination Port        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                        Sequence Number                        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                    Acknowledgment Number                      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |  Data |       |C|E|U|A|P|R|S|F|                               |
//  | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//  |       |       |R|E|G|K|H|T|N|N|                               |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           Checksum            |         Urgent Pointer        |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                           [Options]                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary>Reader over the fixed 20 bytes of a TCP header, plus the kernel's option walk.</summary>
public readonly ref struct TcpHeader
{
    public const int MinLength = 20;
    private const int SrcPortOffset = 0;
    private const int DstPortOffset = 2;
    private const int SeqOffset = 4;
    private const int AckOffset = 8;
    private const int DataOffsetOffset = 12;
    private const int FlagsOffset = 13;
    private const int WindowOffset = 14;
    private const int ChecksumOffset = 16;

    private const byte OptEol = 0;
    private const byte OptNop = 1;
    private const byte OptMss = 2;
    private const byte OptWindowScale = 3;
    private const byte OptSackPermitted = 4;
    private const byte OptSack = 5;
    private const byte OptTimestamp = 8;
    private const int MaxWindowScale = 14;
    private const int SackBase = 2;
    private const int SackPerBlock = 8;
    /// <summary>NOP, NOP, TS kind 8, len 10 as one big-endian word: the kernel's tcp_sack fast path.</summary>
    private const uint TimestampAlignedPrefix = 0x0101_080A;
    private const int TimestampAlignedLength = 12;

    private readonly ReadOnlySpan<byte> _bytes;

    private TcpHeader(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    public static bool TryRead(ReadOnlySpan<byte> segment, out TcpHeader header)
    {
        header = segment.Length >= MinLength ? new TcpHeader(segment) : default;
        return segment.Length >= MinLength;
    }

    public ushort SrcPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[SrcPortOffset..]);
    public ushort DstPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[DstPortOffset..]);
    public uint Seq => BinaryPrimitives.ReadUInt32BigEndian(_bytes[SeqOffset..]);
    public uint Ack => BinaryPrimitives.ReadUInt32BigEndian(_bytes[AckOffset..]);
    /// <summary>doff × 4, unvalidated (may be below 20).</summary>
    public int HeaderLength => (_bytes[DataOffsetOffset] >> 4) * 4;
    public TcpFlags Flags => (TcpFlags)_bytes[FlagsOffset];
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_bytes[WindowOffset..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[ChecksumOffset..]);

    /// <summary>
    /// One pass over the option area that yields both the kernel's <c>tcp_options</c> result (window
    /// scale, SACK-permitted) and its <c>tcp_sack</c> result (kernel-conntrack.md §4.9), plus MSS and
    /// timestamps as the TCP stack reads them (exact lengths only).
    /// </summary>
    public static void ReadOptions(ReadOnlySpan<byte> options, uint ack, out TcpOptions result)
    {
        result = default;
        result.SackLatest = ack;
        // tcp_sack skips a bare aligned timestamp without looking further; tcp_options still walks it.
        bool sackDone = options.Length == TimestampAlignedLength
            && BinaryPrimitives.ReadUInt32BigEndian(options) == TimestampAlignedPrefix;

        int i = 0;
        while (i < options.Length)
        {
            byte kind = options[i];
            if (kind == OptEol)
                return;
            if (kind == OptNop)
            {
                i++;
                continue;
            }
            int remaining = options.Length - i;
            if (remaining < 2)
            {
                result.Malformed = true;
                return;
            }
            int size = options[i + 1];
            if (size < 2 || size > remaining)
            {
                result.Malformed = true;
                return;
            }
            ReadOnlySpan<byte> body = options.Slice(i + 2, size - 2);
            switch (kind)
            {
                case OptMss when size == 4:
                    result.Mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;
                case OptWindowScale when size == 3:
                    result.HasWindowScale = true;
                    result.WindowScale = Math.Min(body[0], (byte)MaxWindowScale);
                    break;
                case OptSackPermitted when size == 2:
                    result.SackPermitted = true;
                    break;
                case OptTimestamp when size == 10:
                    result.HasTimestamp = true;
                    result.TsVal = BinaryPrimitives.ReadUInt32BigEndian(body);
                    result.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
                    break;
                case OptSack when !sackDone && size >= SackBase + SackPerBlock && (size - SackBase) % SackPerBlock == 0:
                    // Only the first well-formed SACK option counts; ill-sized ones are walked past.
                    sackDone = true;
                    result.SackBlockCount = (byte)((size - SackBase) / SackPerBlock);
                    for (int b = 0; b < body.Length; b += SackPerBlock)
                    {
                        uint rightEdge = BinaryPrimitives.ReadUInt32BigEndian(body[(b + 4)..]);
                        if (unchecked((int)(result.SackLatest - rightEdge)) < 0) // after(rightEdge, latest)
                            result.SackLatest = rightEdge;
                    }
                    break;
            }
            i += size;
        }
    }
}
