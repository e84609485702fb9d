using System.Buffers;
using System.Buffers.Binary;

namespace Ctfw.Capture;

// pcapng (draft-ietf-opsawg-pcapng). Each Section Header Block sets the byte order, and restarts
// the interface numbering, for the blocks up to the next one.
public sealed partial class CaptureReader
{
    private const uint BlockTypeShb = 0x0A0D0D0A;  // a palindrome: readable before the byte order is known
    private const uint BlockTypeIdb = 1;
    private const uint BlockTypePb = 2;            // obsolete Packet Block
    private const uint BlockTypeSpb = 3;
    private const uint BlockTypeEpb = 6;
    private const uint ByteOrderMagic = 0x1A2B3C4D;
    private const int MinBlockLength = 12;
    private const ushort OptEndOfOpt = 0;
    private const ushort OptIfTsresol = 9;
    private const ushort OptIfTsoffset = 14;

    private Interface[] _interfaces = new Interface[4];
    private int _interfaceCount;

    /*  Every block
        0                   1                   2                   3
        0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
       +---------------------------------------------------------------+
     0 |                          Block Type                           |
       +---------------------------------------------------------------+
     4 |                      Block Total Length                       |
       +---------------------------------------------------------------+
     8 /                          Block Body                           /
       +---------------------------------------------------------------+
       |                      Block Total Length                       |
       +---------------------------------------------------------------+  */
    private Step ReadPcapngBlock(out CaptureRecord record)
    {
        record = default;
        if (_buffer.Length < MinBlockLength)
            return Need(MinBlockLength, "block header");

        ReadOnlySpan<byte> head = Peek(MinBlockLength);
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) == BlockTypeShb)
        {
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
            if (magic != ByteOrderMagic && magic != BinaryPrimitives.ReverseEndianness(ByteOrderMagic))
                return Fail(CaptureErrorKind.BadMagic, $"section header byte-order magic 0x{magic:X8}");
            _bigEndian = magic != ByteOrderMagic;
        }

        uint type = U32(head, 0);
        uint length = U32(head, 4);
        if (length < MinBlockLength || length % 4 != 0)
            return Fail(CaptureErrorKind.BadBlockLength, $"block type 0x{type:X} has total length {length}");
        if (length > MaxBlockLength)
            return Fail(CaptureErrorKind.RecordTooLarge,
                $"block type 0x{type:X} has total length {length}; libpcap reads blocks of at most {MaxBlockLength} bytes");
        if (_buffer.Length < length)
            return Need(length, "block");

        int total = (int)length;
        Span<byte> trailer = stackalloc byte[4];
        _buffer.Slice(total - 4, 4).CopyTo(trailer);
        if (U32(trailer, 0) != length)
            return Fail(CaptureErrorKind.BlockLengthMismatch,
                $"block type 0x{type:X} starts with total length {length} but ends with {U32(trailer, 0)}");

        // Name resolution, statistics, decryption secrets, custom blocks...: nothing replay needs.
        Step step = type switch
        {
            BlockTypeShb => ReadSectionHeader(Body(total)),
            BlockTypeIdb => ReadInterfaceDescription(Body(total)),
            BlockTypeEpb or BlockTypePb => ReadPacketBlock(type, Body(total), out record),
            BlockTypeSpb => ReadSimplePacketBlock(Body(total), out record),
            _ => Step.Continue,
        };
        if (step != Step.Stop)
            Consume(total);
        return step;
    }

    private ReadOnlySpan<byte> Body(int total) => Peek(total)[8..(total - 4)];

    private Step TooShort(string block, ReadOnlySpan<byte> body) =>
        Fail(CaptureErrorKind.MalformedBlock, $"{block} block body of {body.Length} bytes is too short");

    /*  Section Header Block body
       +---------------------------------------------------------------+
     0 |                      Byte-Order Magic                         |
       +-------------------------------+-------------------------------+
     4 |          Major Version        |         Minor Version         |
       +-------------------------------+-------------------------------+
     8 |                  Section Length (64 bits, may be -1)          |
       +---------------------------------------------------------------+
    16 /                      Options (variable)                       /  */
    private Step ReadSectionHeader(ReadOnlySpan<byte> body)
    {
        if (body.Length < 16)
            return TooShort("section header", body);
        ushort major = U16(body, 4);
        if (major != 1)
            return Fail(CaptureErrorKind.UnsupportedVersion, $"pcapng version {major}.{U16(body, 6)} (only 1.x exists)");
        _interfaceCount = 0;
        return Step.Continue;
    }

    /*  Interface Description Block body
       +-------------------------------+-------------------------------+
     0 |           LinkType            |           Reserved            |
       +-------------------------------+-------------------------------+
     4 |                            SnapLen                            |
       +---------------------------------------------------------------+
     8 /                      Options (variable)                       /

        Each option, the list ending at opt_endofopt or at the block's end
       +-------------------------------+-------------------------------+
     0 |          Option Code          |         Option Length         |
       +-------------------------------+-------------------------------+
     4 /                 Option Value, padded to 32 bits               /  */
    private Step ReadInterfaceDescription(ReadOnlySpan<byte> body)
    {
        if (body.Length < 8)
            return TooShort("interface description", body);

        var description = new Interface { LinkType = U16(body, 0), SnapLength = U32(body, 4) };
        description.SetResolution(6);  // if_tsresol default: microseconds
        for (ReadOnlySpan<byte> options = body[8..]; options.Length >= 4;)
        {
            ushort code = U16(options, 0);
            int length = U16(options, 2);
            if (code == OptEndOfOpt)
                break;
            if (4 + length > options.Length)
                return Fail(CaptureErrorKind.MalformedBlock, $"interface option {code} of {length} bytes overruns its block");

            ReadOnlySpan<byte> value = options.Slice(4, length);
            // Like libpcap, refuse a timestamp option of the wrong size rather than guess the clock.
            if (code == OptIfTsresol)
            {
                if (length != 1)
                    return Fail(CaptureErrorKind.MalformedBlock, $"if_tsresol option of {length} bytes");
                description.SetResolution(value[0]);
            }
            else if (code == OptIfTsoffset)
            {
                if (length != 8)
                    return Fail(CaptureErrorKind.MalformedBlock, $"if_tsoffset option of {length} bytes");
                long seconds = _bigEndian ? BinaryPrimitives.ReadInt64BigEndian(value) : BinaryPrimitives.ReadInt64LittleEndian(value);
                description.OffsetNs = seconds * 1_000_000_000;
            }
            options = options[Math.Min(options.Length, 4 + ((length + 3) & ~3))..];
        }

        if (_interfaceCount == _interfaces.Length)
            Array.Resize(ref _interfaces, 2 * _interfaces.Length);
        _interfaces[_interfaceCount++] = description;
        return Step.Continue;
    }

    /*  Enhanced Packet Block body              Obsolete Packet Block body
       +---------------------------------+      +----------------+----------------+
     0 |          Interface ID           |      |  Interface ID  |  Drops Count   |
       +---------------------------------+      +----------------+----------------+
     4 |        Timestamp (High)         |        then the same fields as the EPB
     8 |        Timestamp (Low)          |
    12 |     Captured Packet Length      |
    16 |     Original Packet Length      |
    20 /  Packet Data, padded to 32 bits /
       /       Options (variable)        /  */
    private Step ReadPacketBlock(uint type, ReadOnlySpan<byte> body, out CaptureRecord record)
    {
        record = default;
        if (body.Length < 20)
            return TooShort(type == BlockTypeEpb ? "enhanced packet" : "packet", body);

        uint interfaceId = type == BlockTypeEpb ? U32(body, 0) : U16(body, 0);
        if (interfaceId >= (uint)_interfaceCount)
            return Fail(CaptureErrorKind.UnknownInterface,
                $"packet on interface {interfaceId}, but the section describes {_interfaceCount}");

        ref readonly Interface description = ref _interfaces[interfaceId];
        // libpcap refuses a packet over its interface's snaplen ("invalid packet capture length");
        // over MAXIMUM_SNAPLEN it hands one over when the snaplen allows it and tcpdump skips it as an
        // invalid header: refused here either way.
        uint capturedLength = U32(body, 12);
        if (capturedLength > MaxRecordLength)
            return Fail(CaptureErrorKind.RecordTooLarge,
                $"captured length {capturedLength} is over {MaxRecordLength}, libpcap's MAXIMUM_SNAPLEN");
        if (capturedLength > EffectiveSnapLength(description.SnapLength))
            return Fail(CaptureErrorKind.RecordTooLarge,
                $"captured length {capturedLength} is over interface {interfaceId}'s snaplen of {description.SnapLength}; libpcap refuses it");
        if (capturedLength > body.Length - 20)
            return Fail(CaptureErrorKind.MalformedBlock,
                $"captured length {capturedLength} exceeds the {body.Length - 20} bytes the block holds");

        ulong ticks = (ulong)U32(body, 4) << 32 | U32(body, 8);
        record = new CaptureRecord(_index++, _offset, (int)interfaceId, description.LinkType,
            description.ToNanoseconds(ticks), U32(body, 16), body.Slice(20, (int)capturedLength));
        return Step.Record;
    }

    /*  Simple Packet Block body: no interface id (always the section's first), no timestamp (0, as in libpcap)
       +---------------------------------------------------------------+
     0 |                    Original Packet Length                     |
       +---------------------------------------------------------------+
     4 /                 Packet Data, padded to 32 bits                /  */
    private Step ReadSimplePacketBlock(ReadOnlySpan<byte> body, out CaptureRecord record)
    {
        record = default;
        if (body.Length < 4)
            return TooShort("simple packet", body);
        if (_interfaceCount == 0)
            return Fail(CaptureErrorKind.UnknownInterface, "simple packet block before any interface description");

        // The captured length is implicit: the original length cut by the snaplen (0 meaning
        // MAXIMUM_SNAPLEN, as in libpcap), never past the block (whose tail may be padding).
        ref readonly Interface description = ref _interfaces[0];
        uint originalLength = U32(body, 0);
        long capturedLength = Math.Min(Math.Min(originalLength, body.Length - 4), EffectiveSnapLength(description.SnapLength));

        record = new CaptureRecord(_index++, _offset, 0, description.LinkType, timestamp: 0, originalLength,
            body.Slice(4, (int)capturedLength));
        return Step.Record;
    }

    /// <summary>What the reader keeps of an Interface Description Block.</summary>
    private struct Interface
    {
        public int LinkType;
        public uint SnapLength;
        public long OffsetNs;

        // ns = ((ticks × _multiplier) >> _shift) / _divisor covers every if_tsresol, powers of 10 and of 2.
        private ulong _multiplier;
        private int _shift;
        private ulong _divisor;

        /// <summary>if_tsresol: clear high bit, 10^-value s per tick; set, 2^-(value &amp; 0x7F) s per tick.</summary>
        public void SetResolution(byte tsresol)
        {
            (_multiplier, _shift, _divisor) = tsresol switch
            {
                >= 0x80 => (1_000_000_000UL, tsresol & 0x7F, 1UL),
                <= 9 => (Pow10(9 - tsresol), 0, 1UL),
                <= 28 => (1UL, 0, Pow10(tsresol - 9)),  // 10^19 is the largest power of ten in a ulong
                _ => (0UL, 0, 1UL),                       // finer than 10^-28 s: every 64-bit tick count is 0 ns
            };
        }

        // Timestamps past 2262 wrap, as they must in a long of nanoseconds; damage must not throw.
        public readonly long ToNanoseconds(ulong ticks) => unchecked(_shift == 0 && _divisor == 1
            ? (long)(ticks * _multiplier) + OffsetNs
            : (long)(ulong)(((UInt128)ticks * _multiplier >> _shift) / _divisor) + OffsetNs);

        private static ulong Pow10(int exponent)
        {
            ulong value = 1;
            for (int i = 0; i < exponent; i++)
                value *= 10;
            return value;
        }
    }
}
