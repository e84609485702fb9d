using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

public class CaptureReaderPcapTests
{
    [Theory]
    [InlineData(false, false, 16)]
    [InlineData(false, true, 16)]
    [InlineData(true, false, 16)]
    [InlineData(true, true, 16)]
    [InlineData(false, false, 65536)]
    [InlineData(true, true, 65536)]
    public void Read_EitherByteOrderAndResolution_DeliversEveryField(bool bigEndian, bool nanosecond, int segmentSize)
    {
        byte[] a = Frame(60, 1), b = Frame(0, 2), c = Frame(1514, 3);
        var file = new PcapBuilder(bigEndian, nanosecond, linkType: 113)
            .Record(1_700_000_000, 999_999, a)
            .Record(0, 0, b)
            .Record(4_000_000_000, 5, c, originalLength: 9000);

        var (records, error) = Read(file.ToArray(), segmentSize);

        Assert.Null(error);
        long unit = nanosecond ? 1 : 1000;
        Assert.Equal(
            [
                new Rec(0, 24, 0, 113, 1_700_000_000_000_000_000 + 999_999 * unit, 60, 60, a),
                new Rec(1, 24 + 16 + 60, 0, 113, 0, 0, 0, b),
                new Rec(2, 24 + 16 + 60 + 16, 0, 113, 4_000_000_000_000_000_000 + 5 * unit, 1514, 9000, c),
            ],
            records, RecEquality.Instance);
    }

    [Fact]
    public void Read_HeaderOnly_EndsCleanlyWithoutRecords()
    {
        var (records, error) = Read(new PcapBuilder().ToArray());

        Assert.Empty(records);
        Assert.Null(error);
    }

    [Fact]
    public void Read_LinkTypeFieldWithFcsBits_ReportsLowSixteenBits()
    {
        var (records, _) = Read(new PcapBuilder(linkType: 0x1000_0001).Record(1, 1, Frame(20, 0)).ToArray());

        Assert.Equal(LinkTypes.Ethernet, Assert.Single(records).LinkType);
    }

    [Fact]
    public void Read_CapturedShorterThanOriginal_KeepsBothLengths()
    {
        var (records, error) = Read(new PcapBuilder().Record(1, 0, Frame(96, 9), originalLength: 1500).ToArray());

        Assert.Null(error);
        Rec r = Assert.Single(records);
        Assert.Equal(96, r.CapturedLength);
        Assert.Equal(1500, r.OriginalLength);
        Assert.Equal(Frame(96, 9), r.Frame);
    }

    [Fact]
    public void Read_StreamThrowsIOException_PropagatesAfterEarlierRecords()
    {
        byte[] file = new PcapBuilder().Record(1, 0, Frame(40, 1)).Record(2, 0, Frame(40, 2)).ToArray();
        using var reader = new CaptureReader(new FailingStream(file, failAt: file.Length - 10));

        Assert.True(reader.TryRead(out CaptureRecord first));
        Assert.Equal(0, first.Index);
        Assert.Throws<IOException>(() => reader.TryRead(out _));
    }

    /// <summary>Serves <c>failAt</c> bytes, then fails like a dying disk.</summary>
    private sealed class FailingStream(byte[] data, int failAt) : MemoryStream(data, 0, failAt)
    {
        public override int Read(Span<byte> buffer) =>
            base.Read(buffer) is var n and > 0 ? n : throw new IOException("disk gone");

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));
    }
}

/// <summary>Compares records including frame bytes (records hold arrays, which compare by reference).</summary>
internal sealed class RecEquality : IEqualityComparer<Rec>
{
    public static readonly RecEquality Instance = new();

    public bool Equals(Rec? x, Rec? y) =>
        x is not null && y is not null && x with { Frame = Array.Empty<byte>() } == y with { Frame = Array.Empty<byte>() } && x.Frame.AsSpan().SequenceEqual(y.Frame);

    public int GetHashCode(Rec obj) => obj.Index.GetHashCode();
}
