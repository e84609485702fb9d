using static Ctfw.Capture.Tests.CaptureReading;

namespace Ctfw.Capture.Tests;

/// <summary>
/// Record and block sizes bounded as libpcap bounds them (the oracle: tcpdump 4.99.3 with libpcap
/// 1.10.3 reading the same crafted files), and a claimed size never buffered before it is checked.
/// </summary>
public class CaptureReaderLimitTests
{
    /// <summary>libpcap's MAXIMUM_SNAPLEN (pcap-int.h).</summary>
    private const int MaximumSnaplen = 262144;
    /// <summary>libpcap's INITIAL_MAX_BLOCKSIZE (sf-pcapng.c), the cap for every link type ctfw reads.</summary>
    private const int MaxBlock = 16 * 1024 * 1024;

    /// <summary>
    /// <paramref name="prefix"/>, then <paramref name="zeros"/> zero bytes: a file as big as a header
    /// claims, served synchronously (on the reading thread, where allocations are counted) and without
    /// holding it anywhere.
    /// </summary>
    private sealed class ClaimedSizeStream(byte[] prefix, long zeros) : Stream
    {
        public long Served { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            int n = 0;
            if (Served < prefix.Length)
            {
                n = (int)Math.Min(buffer.Length, prefix.Length - Served);
                prefix.AsSpan((int)Served, n).CopyTo(buffer);
            }
            int z = (int)Math.Min(buffer.Length - n, prefix.Length + zeros - Served - n);
            buffer.Slice(n, z).Clear();
            Served += n + z;
            return n + z;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            new(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer, offset, count));

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Reads with the public constructor (64 KiB pipe segments); the bytes this thread allocated meanwhile.</summary>
    private static (int Records, CaptureError? Error, long Allocated) ReadCounting(ClaimedSizeStream stream)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        int records = 0;
        using (var reader = new CaptureReader(stream))
        {
            while (reader.TryRead(out _))
                records++;
            return (records, reader.Error, GC.GetAllocatedBytesForCurrentThread() - before);
        }
    }

    [Fact]
    public void Read_PcapRecordClaiming256MiB_StopsAtItsHeaderWithoutBufferingIt()
    {
        // Before: accepted, buffered whole (600 MB to replay it). libpcap: "invalid packet capture
        // length 268435456, bigger than snaplen of 262144".
        var file = new PcapBuilder(linkType: LinkTypes.Raw, snapLength: MaximumSnaplen).Record(1, 0, Frame(40, 1));
        int claim = file.Length;
        byte[] prefix = [.. file.ToArray(), .. new PcapBuilder().Record(2, 0, [], capturedLength: 256u << 20, originalLength: 256u << 20).ToArray()[24..]];
        var stream = new ClaimedSizeStream(prefix, 256L << 20);

        var (records, error, allocated) = ReadCounting(stream);

        Assert.Equal(1, records);
        Assert.NotNull(error);
        Assert.Equal((CaptureErrorKind.RecordTooLarge, (long)claim), (error.Kind, error.Offset));
        Assert.Equal($"offset {claim}: record claims 268435456 captured bytes; libpcap reads at most 262144 (MAXIMUM_SNAPLEN)", error.ToString());
        Assert.True(allocated < 4L << 20, $"{allocated} bytes allocated");
        Assert.True(stream.Served < 1L << 20, $"{stream.Served} bytes read");
    }

    [Theory]
    [InlineData(16)]
    [InlineData(65536)]
    public void Read_PcapRecordOneOverMaximumSnaplen_RecordTooLargeAfterEarlierRecords(int segmentSize)
    {
        var file = new PcapBuilder(snapLength: MaximumSnaplen).Record(1, 0, Frame(10, 1))
            .Record(2, 0, Frame(MaximumSnaplen + 1, 2)).Record(3, 0, Frame(10, 3));

        var (records, error) = Read(file.ToArray(), segmentSize);

        Assert.Single(records);
        Assert.NotNull(error);
        Assert.Equal((CaptureErrorKind.RecordTooLarge, (long)file.RecordStarts[1]), (error.Kind, error.Offset));
        Assert.Contains("record claims 262145 captured bytes; libpcap reads at most 262144", error.Message);
    }

    [Fact]
    public void Read_PcapRecordOfMaximumSnaplen_IsDelivered()
    {
        var file = new PcapBuilder(snapLength: MaximumSnaplen).Record(1, 0, Frame(MaximumSnaplen, 1)).Record(2, 0, Frame(10, 2));

        var (records, error) = Read(file.ToArray(), 65536);

        Assert.Null(error);
        Assert.Equal([MaximumSnaplen, 10], records.Select(r => r.CapturedLength));
        Assert.Equal(Frame(MaximumSnaplen, 1), records[0].Frame);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(65536)]
    public void Read_PcapRecordOverTheFilesSnaplen_CutToTheSnaplenAsLibpcapDoes(int segmentSize)
    {
        // sf-pcap.c salvages such a record: reads snaplen bytes, discards the rest, reports caplen = snaplen.
        byte[] big = Frame(150, 1), next = Frame(28, 2);
        var file = new PcapBuilder(linkType: LinkTypes.Raw, snapLength: 100).Record(1, 0, big, originalLength: 1500).Record(2, 0, next);

        var (records, error) = Read(file.ToArray(), segmentSize);

        Assert.Null(error);
        Assert.Equal(2, records.Count);
        Assert.Equal((100, 1500L), (records[0].CapturedLength, records[0].OriginalLength));
        Assert.Equal(big[..100], records[0].Frame);
        Assert.Equal(file.RecordStarts[1], records[1].Offset);
        Assert.Equal(next, records[1].Frame);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(0x80000000u)]
    public void Read_PcapSnaplenZeroOrOverIntMax_MeansMaximumSnaplen(uint snapLength)
    {
        // pcapint_adjust_snapshot: a bogus snaplen falls back to the link type's maximum.
        var file = new PcapBuilder(snapLength: snapLength).Record(1, 0, Frame(70000, 1)).Record(2, 0, Frame(MaximumSnaplen + 1, 2));

        var (records, error) = Read(file.ToArray(), 65536);

        Assert.Equal(70000, Assert.Single(records).CapturedLength);
        Assert.Equal(CaptureErrorKind.RecordTooLarge, error?.Kind);
    }

    [Fact]
    public void Read_PcapngBlockClaiming64MiB_StopsAtItsHeaderWithoutBufferingIt()
    {
        // Before: under the old 256 MiB cap, so buffered whole. libpcap: "pcapng block size 67108864 > maximum 16777216".
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw).Enhanced(0, 1, Frame(40, 1));
        int claim = file.Length;
        byte[] prefix = [.. file.ToArray(), 0xAD, 0x0B, 0, 0, 0, 0, 0, 4];  // type 0xBAD, total length 64 MiB (little-endian)
        var stream = new ClaimedSizeStream(prefix, 64L << 20);

        var (records, error, allocated) = ReadCounting(stream);

        Assert.Equal(1, records);
        Assert.NotNull(error);
        Assert.Equal((CaptureErrorKind.RecordTooLarge, (long)claim), (error.Kind, error.Offset));
        Assert.Equal($"offset {claim}: block type 0xBAD has total length 67108864; libpcap reads blocks of at most 16777216 bytes", error.ToString());
        Assert.True(allocated < 4L << 20, $"{allocated} bytes allocated");
        Assert.True(stream.Served < 1L << 20, $"{stream.Served} bytes read");
    }

    [Fact]
    public void Read_PcapngBlockOfLibpcapsMaximum_IsSkippedAndReadingGoesOn()
    {
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw).Enhanced(0, 1, Frame(40, 1))
            .Block(0xBAD, new byte[MaxBlock - 12]).Enhanced(0, 2, Frame(40, 2));
        Assert.Equal(MaxBlock, file.Blocks[3].End - file.Blocks[3].Start);

        var (records, error) = Read(file.ToArray(), 65536);

        Assert.Null(error);
        Assert.Equal(2, records.Count);
    }

    [Fact]
    public void Read_PcapngBlockOneWordOverLibpcapsMaximum_RecordTooLarge()
    {
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw).Enhanced(0, 1, Frame(40, 1));
        byte[] prefix = [.. file.ToArray(), 0xAD, 0x0B, 0, 0, 4, 0, 0, 1];  // total length 16 MiB + 4

        var (records, error, _) = ReadCounting(new ClaimedSizeStream(prefix, MaxBlock));

        Assert.Equal(1, records);
        Assert.Equal(CaptureErrorKind.RecordTooLarge, error?.Kind);
        Assert.Contains("total length 16777220; libpcap reads blocks of at most 16777216 bytes", error!.Message);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(65536)]
    public void Read_EnhancedPacketOverItsInterfacesSnaplen_RefusedAsLibpcapDoes(int segmentSize)
    {
        // libpcap: "invalid packet capture length 150, bigger than snaplen of 100".
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw, snapLength: 100)
            .Enhanced(0, 1, Frame(28, 1)).Enhanced(0, 2, Frame(150, 2)).Enhanced(0, 3, Frame(28, 3));

        var (records, error) = Read(file.ToArray(), segmentSize);

        Assert.Single(records);
        Assert.NotNull(error);
        Assert.Equal((CaptureErrorKind.RecordTooLarge, (long)file.Blocks[3].Start), (error.Kind, error.Offset));
        Assert.Contains("captured length 150 is over interface 0's snaplen of 100", error.Message);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1_000_000u)]
    public void Read_EnhancedPacketOverMaximumSnaplen_RefusedWhateverTheInterfaceSays(uint snapLength)
    {
        // libpcap hands such a packet over when the IDB's snaplen allows it, and tcpdump then skips it
        // ("[Invalid header: caplen(262145) > 262144 ...]"); ctfw is not more permissive than either.
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw, snapLength: snapLength)
            .Enhanced(0, 1, Frame(28, 1)).Enhanced(0, 2, Frame(MaximumSnaplen + 1, 2));

        var (records, error) = Read(file.ToArray(), 65536);

        Assert.Single(records);
        Assert.Equal(CaptureErrorKind.RecordTooLarge, error?.Kind);
        Assert.Contains("captured length 262145 is over 262144, libpcap's MAXIMUM_SNAPLEN", error!.Message);
    }

    [Fact]
    public void Read_SimplePacketWithoutSnaplen_CutAtMaximumSnaplenAsLibpcapDoes()
    {
        // An SPB's captured length is its original length cut by the snaplen, and snaplen 0 means the maximum.
        var file = new PcapngBuilder().Section(false).Interface(LinkTypes.Raw).Simple(300_000, Frame(300_000, 1));

        var (records, error) = Read(file.ToArray(), 65536);

        Assert.Null(error);
        Rec r = Assert.Single(records);
        Assert.Equal((MaximumSnaplen, 300_000L), (r.CapturedLength, r.OriginalLength));
    }
}
