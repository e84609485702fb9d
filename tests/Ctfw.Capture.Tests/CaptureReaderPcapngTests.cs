using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

public class CaptureReaderPcapngTests
{
    [Theory]
    [InlineData(16)]
    [InlineData(24)]
    [InlineData(4096)]
    [InlineData(65536)]
    public void Read_SectionsInterfacesAndBlockKinds_DeliversEveryField(int segmentSize)
    {
        var (file, expected) = SampleCaptures.RichPcapng();

        var (records, error) = Read(file.ToArray(), segmentSize);

        Assert.Null(error);
        Assert.Equal(expected, records, RecEquality.Instance);
    }

    [Theory]
    [InlineData(null, 1_700_000_000_123_456UL, 1_700_000_000_123_456_000L)]        // default: µs
    [InlineData((byte)6, 1_700_000_000_123_456UL, 1_700_000_000_123_456_000L)]
    [InlineData((byte)9, 1_700_000_000_123_456_789UL, 1_700_000_000_123_456_789L)]
    [InlineData((byte)0, 1_700_000_000UL, 1_700_000_000_000_000_000L)]                // seconds
    [InlineData((byte)12, 12_345_678_901_234UL, 12_345_678_901L)]                    // ps: sub-ns dropped
    [InlineData((byte)0x80, 3UL, 3_000_000_000L)]                                    // 2^0 s
    [InlineData((byte)(0x80 | 10), 1025UL, 1_000_976_562L)]                          // 1025/1024 s, rounded down
    [InlineData((byte)(0x80 | 30), (1_700_000_000UL << 30) + (1UL << 28), 1_700_000_000_250_000_000L)]
    [InlineData((byte)(0x80 | 64), ulong.MaxValue, 999_999_999L)]                     // just under 1 s
    [InlineData((byte)100, ulong.MaxValue, 0L)]                                      // absurdly fine: 0, no throw
    public void Read_IfTsresol_ConvertsTicksToNanoseconds(byte? tsresol, ulong ticks, long expected)
    {
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw, tsresol: tsresol).Enhanced(0, ticks, [0x45]);

        var (records, error) = Read(file.ToArray());

        Assert.Null(error);
        Assert.Equal(expected, Assert.Single(records).Timestamp);
    }

    [Theory]
    [InlineData(100L)]
    [InlineData(-1_000L)]
    public void Read_IfTsoffset_AddsSecondsToEveryTimestamp(long offsetSeconds)
    {
        var file = new PcapngBuilder().Section(true).Interface(LinkTypes.Raw, tsresol: 9, tsoffset: offsetSeconds)
            .Enhanced(0, 1_700_000_000_000_000_123, [0x45]);

        var (records, _) = Read(file.ToArray());

        Assert.Equal((1_700_000_000 + offsetSeconds) * 1_000_000_000 + 123, Assert.Single(records).Timestamp);
    }

    [Theory]
    [InlineData(0u, 5u, 5, 5)]        // padding after the data is not data
    [InlineData(64u, 100u, 64, 64)]   // cut by the snaplen
    [InlineData(32u, 100u, 64, 32)]   // a writer that ignored its own snaplen: the snaplen wins
    [InlineData(0u, 100u, 60, 60)]    // no snaplen: whatever the block holds
    public void Read_SimplePacketBlock_CapturedLengthIsOriginalCutBySnaplenAndBlock(uint snapLength, uint original, int stored, int expected)
    {
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Ethernet, snapLength).Simple(original, Frame(stored, 1));

        var (records, error) = Read(file.ToArray());

        Assert.Null(error);
        Rec r = Assert.Single(records);
        Assert.Equal((expected, (long)original), (r.CapturedLength, r.OriginalLength));
        Assert.Equal(Frame(stored, 1)[..expected], r.Frame);
    }

    [Fact]
    public void Read_SectionWithoutPackets_EndsCleanlyWithoutRecords()
    {
        var (records, error) = Read(new PcapngBuilder().Section(true).Interface(1).ToArray());

        Assert.Empty(records);
        Assert.Null(error);
    }
}
