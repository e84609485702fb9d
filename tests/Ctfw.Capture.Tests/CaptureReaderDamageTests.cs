using System.Buffers.Binary;
using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

public class CaptureReaderDamageTests
{
    private const uint TooLarge = CaptureReader.MaxRecordLength + 4;
    private const uint BlockTooLarge = CaptureReader.MaxBlockLength + 4;

    /// <summary>A little-endian section, one Ethernet interface and two good packets.</summary>
    private static PcapngBuilder TwoGoodPackets(bool bigEndian = false) =>
        new PcapngBuilder().Section(bigEndian).Interface(LinkTypes.Ethernet)
            .Enhanced(0, 1, Frame(30, 1)).Enhanced(0, 2, Frame(31, 2));

    private static void AssertDamage(byte[] file, CaptureErrorKind kind, long offset, int recordsBefore)
    {
        foreach (int segmentSize in (int[])[16, 65536])
        {
            var (records, error) = Read(file, segmentSize);

            Assert.NotNull(error);
            Assert.Equal((kind, offset), (error.Kind, error.Offset));
            Assert.Equal(recordsBefore, records.Count);
            Assert.All(records, r => Assert.True(r.Offset < offset));
            Assert.Contains(offset.ToString(), error.ToString());
        }
    }

    private static byte[] Patch32(byte[] file, int position, uint value, bool bigEndian = false)
    {
        byte[] copy = [.. file];
        if (bigEndian) BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(position), value);
        else BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(position), value);
        return copy;
    }

    [Fact]
    public void Read_EmptyStream_ReportsTruncatedAtZero() => AssertDamage([], CaptureErrorKind.Truncated, 0, 0);

    [Fact]
    public void Read_UnknownMagic_ReportsBadMagicAtZero() =>
        AssertDamage("GIF89a, not a capture"u8.ToArray(), CaptureErrorKind.BadMagic, 0, 0);

    [Fact]
    public void Read_PcapVersion3_ReportsUnsupportedVersionAtZero() =>
        AssertDamage(new PcapBuilder(major: 3).Record(1, 1, [1]).ToArray(), CaptureErrorKind.UnsupportedVersion, 0, 0);

    [Theory]
    [InlineData(1)]
    [InlineData(23)]
    public void Read_PcapFileHeaderCut_ReportsTruncatedAtZero(int length) =>
        AssertDamage(new PcapBuilder().ToArray()[..length], CaptureErrorKind.Truncated, 0, 0);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Read_PcapRecordOverSanityLimit_ReportsRecordTooLargeAfterEarlierRecords(bool bigEndian)
    {
        var file = new PcapBuilder(bigEndian).Record(1, 0, Frame(10, 1)).Record(2, 0, Frame(10, 2))
            .Record(3, 0, Frame(10, 3), capturedLength: TooLarge);

        AssertDamage(file.ToArray(), CaptureErrorKind.RecordTooLarge, file.RecordStarts[2], 2);
    }

    [Theory]
    [InlineData(1)]    // inside the record header
    [InlineData(15)]
    [InlineData(16)]   // header complete, no data
    [InlineData(25)]   // inside the data
    public void Read_PcapLastRecordCut_ReportsTruncatedAtItsStart(int keep)
    {
        var file = new PcapBuilder(nanosecond: true).Record(1, 0, Frame(10, 1)).Record(2, 0, Frame(10, 2));
        byte[] bytes = file.ToArray()[..(file.RecordStarts[1] + keep)];

        AssertDamage(bytes, CaptureErrorKind.Truncated, file.RecordStarts[1], 1);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Read_PcapngFirstSectionBadByteOrderMagic_ReportsBadMagicAtZero(bool bigEndian) =>
        AssertDamage(new PcapngBuilder().Section(bigEndian, byteOrderMagic: 0x1A2B3C4E).ToArray(), CaptureErrorKind.BadMagic, 0, 0);

    [Fact]
    public void Read_LaterSectionBadByteOrderMagic_DeliversEarlierSectionThenBadMagic()
    {
        var file = TwoGoodPackets().Section(true, byteOrderMagic: 0xDEADBEEF).Interface(1).Enhanced(0, 3, [1]);

        AssertDamage(file.ToArray(), CaptureErrorKind.BadMagic, file.Blocks[4].Start, 2);
    }

    [Fact]
    public void Read_PcapngVersion2Section_ReportsUnsupportedVersion()
    {
        var file = TwoGoodPackets().Section(false, major: 2).Interface(1).Enhanced(0, 3, [1]);

        AssertDamage(file.ToArray(), CaptureErrorKind.UnsupportedVersion, file.Blocks[4].Start, 2);
    }

    [Theory]
    [InlineData(false, 65u)]   // not a multiple of 4
    [InlineData(true, 66u)]
    [InlineData(false, 8u)]    // shorter than the framing itself
    [InlineData(true, 0u)]
    public void Read_BlockTotalLengthInvalid_ReportsBadBlockLength(bool bigEndian, uint length)
    {
        var file = TwoGoodPackets(bigEndian).Enhanced(0, 3, Frame(20, 3));
        var bad = file.Blocks[^1];
        Assert.Equal(64, bad.End - bad.Start);
        byte[] bytes = Patch32(file.ToArray(), bad.Start + 4, length, bigEndian);

        AssertDamage(bytes, CaptureErrorKind.BadBlockLength, bad.Start, 2);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Read_TrailingLengthDiffers_ReportsBlockLengthMismatch(bool bigEndian)
    {
        var file = TwoGoodPackets(bigEndian).Enhanced(0, 3, Frame(20, 3)).Enhanced(0, 4, Frame(20, 4));
        var bad = file.Blocks[^2];
        byte[] bytes = Patch32(file.ToArray(), bad.End - 4, (uint)(bad.End - bad.Start + 4), bigEndian);

        AssertDamage(bytes, CaptureErrorKind.BlockLengthMismatch, bad.Start, 2);
    }

    [Fact]
    public void Read_BlockOverSanityLimit_ReportsRecordTooLarge()
    {
        var file = TwoGoodPackets().Enhanced(0, 3, Frame(20, 3));

        AssertDamage(Patch32(file.ToArray(), file.Blocks[^1].Start + 4, BlockTooLarge), CaptureErrorKind.RecordTooLarge, file.Blocks[^1].Start, 2);
    }

    [Theory]
    [InlineData(4)]     // inside the block header
    [InlineData(12)]
    [InlineData(40)]    // inside the packet data
    [InlineData(-1)]    // all but the last byte of the trailing length
    public void Read_LastBlockCut_ReportsTruncatedAtItsStart(int keep)
    {
        var file = TwoGoodPackets().Enhanced(0, 3, Frame(60, 3));
        var last = file.Blocks[^1];
        byte[] bytes = file.ToArray()[..(keep > 0 ? last.Start + keep : last.End + keep)];

        AssertDamage(bytes, CaptureErrorKind.Truncated, last.Start, 2);
    }

    [Fact]
    public void Read_PacketOnUndescribedInterface_ReportsUnknownInterface()
    {
        var file = TwoGoodPackets().Enhanced(1, 3, Frame(20, 3));

        AssertDamage(file.ToArray(), CaptureErrorKind.UnknownInterface, file.Blocks[^1].Start, 2);
    }

    [Fact]
    public void Read_PacketOnInterfaceOfEarlierSection_ReportsUnknownInterface()
    {
        var file = TwoGoodPackets().Interface(LinkTypes.Raw).Enhanced(1, 3, [0x45])
            .Section(true).Interface(LinkTypes.Raw).Enhanced(0, 4, [0x45]).Enhanced(1, 5, [0x45]);

        AssertDamage(file.ToArray(), CaptureErrorKind.UnknownInterface, file.Blocks[^1].Start, 4);
    }

    [Fact]
    public void Read_SimplePacketBeforeAnyInterface_ReportsUnknownInterface()
    {
        var file = new PcapngBuilder().Section(false).Simple(4, [1, 2, 3, 4]);

        AssertDamage(file.ToArray(), CaptureErrorKind.UnknownInterface, file.Blocks[^1].Start, 0);
    }

    [Fact]
    public void Read_ObsoletePacketOnUndescribedInterface_ReportsUnknownInterface()
    {
        var file = TwoGoodPackets().Obsolete(3, 3, [1]);

        AssertDamage(file.ToArray(), CaptureErrorKind.UnknownInterface, file.Blocks[^1].Start, 2);
    }

    [Fact]
    public void Read_CapturedLengthBeyondBlock_ReportsMalformedBlock()
    {
        var file = TwoGoodPackets().Enhanced(0, 3, Frame(8, 3), capturedLength: 200);

        AssertDamage(file.ToArray(), CaptureErrorKind.MalformedBlock, file.Blocks[^1].Start, 2);
    }

    [Theory]
    [InlineData(1u, 4)]    // IDB body shorter than link type + snaplen
    [InlineData(6u, 16)]   // EPB body shorter than its fixed fields
    [InlineData(2u, 16)]   // PB likewise
    [InlineData(3u, 0)]    // SPB without its original length
    [InlineData(0x0A0D0D0Au, 4)]  // SHB with only its byte-order magic
    public void Read_BlockTooShortForItsType_ReportsMalformedBlock(uint type, int bodyLength)
    {
        byte[] body = new byte[bodyLength];
        if (type == 0x0A0D0D0A)
            BinaryPrimitives.WriteUInt32LittleEndian(body, 0x1A2B3C4D);
        var file = TwoGoodPackets().Block(type, body);

        AssertDamage(file.ToArray(), CaptureErrorKind.MalformedBlock, file.Blocks[^1].Start, 2);
    }

    [Fact]
    public void Read_TsresolOptionOfWrongSize_ReportsMalformedBlock()
    {
        var file = TwoGoodPackets().Interface(LinkTypes.Raw, tsresol: 9, tsresolLength: 2).Enhanced(1, 3, [0x45]);

        AssertDamage(file.ToArray(), CaptureErrorKind.MalformedBlock, file.Blocks[^2].Start, 2);
    }

    [Fact]
    public void Read_InterfaceOptionOverrunningBlock_ReportsMalformedBlock()
    {
        // LinkType, reserved, snaplen, then an option claiming 6 bytes where 4 remain.
        var file = TwoGoodPackets().Block(1, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 6, 0, 1, 2, 3, 4]);

        AssertDamage(file.ToArray(), CaptureErrorKind.MalformedBlock, file.Blocks[^1].Start, 2);
    }
}
