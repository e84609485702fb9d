using System.Buffers.Binary;
using System.Diagnostics;
using Xunit.Abstractions;

namespace Ctfw.Capture.Tests;

[CollectionDefinition(nameof(MemoryMeasurement), DisableParallelization = true)]
public sealed class MemoryMeasurement;

/// <summary>Runs alone, so that the process-wide heap figure is this test's own.</summary>
[Collection(nameof(MemoryMeasurement))]
public class CaptureReaderStreamingTests(ITestOutputHelper output)
{
    private const long WarmUpRecords = 1000;

    [Fact]
    public void Read_TwoGigabytesFromNonSeekableStream_MemoryStaysFlat()
    {
        var stream = new SyntheticPcapStream(targetBytes: 2_200_000_000);
        Assert.True(stream.Length > int.MaxValue);  // past every 32-bit offset
        using var reader = new CaptureReader(stream);

        var clock = Stopwatch.StartNew();
        long count = 0, allocatedBefore = 0, heapBefore = 0, heapMax = 0;
        while (reader.TryRead(out CaptureRecord record))
        {
            // Plain comparisons: xUnit's Assert.Equal allocates, which would drown the measurement.
            if (record.Index != count
                || record.TimestampNanoseconds != SyntheticPcapStream.Timestamp(count)
                || record.CapturedLength != SyntheticPcapStream.FrameLength
                || BinaryPrimitives.ReadInt64LittleEndian(record.Frame) != count
                || record.Frame[^1] != SyntheticPcapStream.LastFrameByte)
                Assert.Fail($"record {count} differs from what the stream synthesized");

            // Pipe segments, the straddle buffer and the JIT are in place after the warm-up;
            // from then on nothing may grow with the size of the file.
            if (++count == WarmUpRecords)
            {
                allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
                heapBefore = heapMax = GC.GetTotalMemory(forceFullCollection: true);
            }
            else if (count % 65536 == 0)
            {
                heapMax = Math.Max(heapMax, GC.GetTotalMemory(forceFullCollection: false));
            }
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        output.WriteLine($"{count} records, {stream.Length} bytes in {clock.ElapsedMilliseconds} ms; " +
            $"after warm-up {allocated} bytes allocated, heap grew by at most {heapMax - heapBefore} bytes");

        Assert.Null(reader.Error);
        Assert.Equal(stream.RecordCount, count);
        Assert.InRange(allocated, 0, 64 * 1024);
        Assert.InRange(heapMax - heapBefore, 0, 16 * 1024 * 1024);
    }

    /// <summary>
    /// A pcap of about <c>targetBytes</c>, synthesized as it is read, one record template at a time:
    /// the file never exists. Forward-only, like a pipe from tcpdump.
    /// </summary>
    private sealed class SyntheticPcapStream : Stream
    {
        public const int FrameLength = 1501;  // odd, so records meet pipe segment edges at every alignment
        public const byte LastFrameByte = 0xA5;
        private const int RecordLength = 16 + FrameLength;
        private const uint BaseSeconds = 1_700_000_000;

        private readonly byte[] _header = new PcapBuilder(linkType: LinkTypes.Raw).ToArray();
        private readonly byte[] _record = new byte[RecordLength];
        private long _prepared = -1;
        private long _position;

        public SyntheticPcapStream(long targetBytes)
        {
            RecordCount = (targetBytes - _header.Length) / RecordLength;
            Length = _header.Length + RecordCount * RecordLength;
            BinaryPrimitives.WriteInt32LittleEndian(_record.AsSpan(8), FrameLength);
            BinaryPrimitives.WriteInt32LittleEndian(_record.AsSpan(12), FrameLength);
            for (int i = 24; i < RecordLength; i++)
                _record[i] = (byte)(i * 31);
            _record[^1] = LastFrameByte;
        }

        public long RecordCount { get; }

        public override long Length { get; }

        /// <summary>Record k is stamped k microseconds after the base.</summary>
        public static long Timestamp(long k) => BaseSeconds * 1_000_000_000L + k * 1000;

        public override int Read(Span<byte> buffer)
        {
            int written = 0;
            while (written < buffer.Length && _position < Length)
            {
                ReadOnlySpan<byte> source;
                if (_position < _header.Length)
                {
                    source = _header.AsSpan((int)_position);
                }
                else
                {
                    long k = Math.DivRem(_position - _header.Length, RecordLength, out long within);
                    if (k != _prepared)
                        Prepare(k);
                    source = _record.AsSpan((int)within);
                }
                int n = Math.Min(source.Length, buffer.Length - written);
                source[..n].CopyTo(buffer[written..]);
                written += n;
                _position += n;
            }
            return written;
        }

        private void Prepare(long k)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_record, (uint)(BaseSeconds + k / 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(_record.AsSpan(4), (uint)(k % 1_000_000));
            BinaryPrimitives.WriteInt64LittleEndian(_record.AsSpan(16), k);
            _prepared = k;
        }

        // Completes synchronously, as a pipe or page-cached file mostly does: no Task per read.
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
