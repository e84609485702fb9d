using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

public class PcapWriterTests
{
    [Theory]
    [InlineData(PcapTimestampResolution.Nanosecond, 1_700_000_000_123_456_789L)]
    [InlineData(PcapTimestampResolution.Microsecond, 1_700_000_000_123_456_000L)]  // sub-µs digits dropped
    public void Write_ThenRead_RoundTripsEveryRecord(PcapTimestampResolution resolution, long expectedFirst)
    {
        byte[] a = Frame(40, 1), b = Frame(1500, 2), c = Frame(0, 3);
        var stream = new MemoryStream();
        using (var writer = new PcapWriter(stream, LinkTypes.Raw, resolution, leaveOpen: true))
        {
            writer.Write(1_700_000_000_123_456_789, a);
            writer.Write(1_700_000_001_000_000_000, b, originalLength: 9000);
            writer.Write(0, c);
        }

        var (records, error) = Read(stream.ToArray(), segmentSize: 64);

        Assert.Null(error);
        Assert.Equal(
            [
                new Rec(0, 24, 0, LinkTypes.Raw, expectedFirst, 40, 40, a),
                new Rec(1, 24 + 16 + 40, 0, LinkTypes.Raw, 1_700_000_001_000_000_000, 1500, 9000, b),
                new Rec(2, 24 + 16 + 40 + 16 + 1500, 0, LinkTypes.Raw, 0, 0, 0, c),
            ],
            records, RecEquality.Instance);
    }

    [Theory]
    [InlineData(PcapTimestampResolution.Microsecond, new byte[] { 0xD4, 0xC3, 0xB2, 0xA1 })]
    [InlineData(PcapTimestampResolution.Nanosecond, new byte[] { 0x4D, 0x3C, 0xB2, 0xA1 })]
    public void Constructor_Always_WritesLittleEndianHeaderOfThatResolution(PcapTimestampResolution resolution, byte[] magic)
    {
        var stream = new MemoryStream();
        using (new PcapWriter(stream, LinkTypes.Ethernet, resolution, snapLength: 1514, leaveOpen: true))
        {
        }

        Assert.Equal([.. magic, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xEA, 0x05, 0, 0, 1, 0, 0, 0], stream.ToArray());
    }

    [Fact]
    public void Open_RecordingOnDisk_ReadsBackThroughFileStream()
    {
        string path = Path.GetTempFileName();
        try
        {
            using (var writer = new PcapWriter(File.Create(path), LinkTypes.Raw))
            {
                for (int i = 0; i < 5000; i++)
                    writer.Write(i * 1_000_000L, Frame(20 + i % 300, (byte)i));
            }

            using var reader = CaptureReader.Open(path);
            int count = 0;
            while (reader.TryRead(out CaptureRecord record))
            {
                Assert.Equal(count * 1_000_000L, record.TimestampNanoseconds);
                Assert.Equal(Frame(20 + count % 300, (byte)count), record.Frame.ToArray());
                count++;
            }
            Assert.Null(reader.Error);
            Assert.Equal(5000, count);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Write_InvalidArguments_Throws()
    {
        using var writer = new PcapWriter(new MemoryStream(), LinkTypes.Raw);

        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Write(-1, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Write((uint.MaxValue + 1L) * 1_000_000_000, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => writer.Write(0, [1, 2], originalLength: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PcapWriter(new MemoryStream(), 70000));
    }

    [Fact]
    public void Write_FrameOverTheSnaplenOrMaximumSnaplen_Throws()
    {
        // A reader would cut the first (libpcap salvages to the snaplen) and refuse the second.
        using var small = new PcapWriter(new MemoryStream(), LinkTypes.Raw, snapLength: 100);
        small.Write(0, new byte[100]);
        Assert.Throws<ArgumentOutOfRangeException>(() => small.Write(0, new byte[101]));

        using var huge = new PcapWriter(new MemoryStream(), LinkTypes.Raw, snapLength: int.MaxValue);
        huge.Write(0, new byte[CaptureReader.MaxRecordLength]);
        Assert.Throws<ArgumentOutOfRangeException>(() => huge.Write(0, new byte[CaptureReader.MaxRecordLength + 1]));
    }
}
