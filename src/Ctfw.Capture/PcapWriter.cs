using System.Buffers.Binary;

namespace Ctfw.Capture;

/// <summary>Timestamp unit of a classic pcap file, fixed by its magic number.</summary>
public enum PcapTimestampResolution
{
    Microsecond,
    Nanosecond,
}

/// <summary>
/// Writes a classic little-endian pcap file record by record, e.g. the kernel-recording harness's
/// recordings (<see cref="LinkTypes.Raw"/>). Buffering is the stream's business.
/// </summary>
public sealed class PcapWriter : IDisposable
{
    /// <summary>libpcap's MAXIMUM_SNAPLEN, what tcpdump writes by default.</summary>
    public const int DefaultSnapLength = 262144;

    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly bool _nanosecond;
    private readonly int _snapLength;

    /// <summary>Writes the file header at once, so that even a recording with no packets is a valid file.</summary>
    public PcapWriter(Stream stream, int linkType,
        PcapTimestampResolution resolution = PcapTimestampResolution.Nanosecond,
        int snapLength = DefaultSnapLength, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegative(linkType);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(linkType, ushort.MaxValue);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(snapLength);
        _stream = stream;
        _leaveOpen = leaveOpen;
        _nanosecond = resolution == PcapTimestampResolution.Nanosecond;
        _snapLength = Math.Min(snapLength, CaptureReader.MaxRecordLength);

        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, _nanosecond ? 0xA1B23C4D : 0xA1B2C3D4);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteUInt64LittleEndian(header[8..], 0);  // thiszone, sigfigs: always 0
        BinaryPrimitives.WriteInt32LittleEndian(header[16..], snapLength);
        BinaryPrimitives.WriteInt32LittleEndian(header[20..], linkType);
        _stream.Write(header);
    }

    /// <summary>
    /// Appends one record. <paramref name="originalLength"/> defaults to the frame's length; a larger
    /// value records a frame cut by a snaplen. Microsecond files drop the sub-microsecond digits.
    /// </summary>
    public void Write(long timestampNanoseconds, ReadOnlySpan<byte> frame, long? originalLength = null)
    {
        // pcap keeps unsigned 32-bit seconds: 1970 to 2106.
        ArgumentOutOfRangeException.ThrowIfNegative(timestampNanoseconds);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(timestampNanoseconds / 1_000_000_000, uint.MaxValue);
        // Longer frames would be cut (to the snaplen) or refused (over MAXIMUM_SNAPLEN) by every reader.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(frame.Length, _snapLength, nameof(frame));
        long original = originalLength ?? frame.Length;
        ArgumentOutOfRangeException.ThrowIfLessThan(original, frame.Length, nameof(originalLength));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(original, uint.MaxValue, nameof(originalLength));

        long fraction = timestampNanoseconds % 1_000_000_000;
        Span<byte> header = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)(timestampNanoseconds / 1_000_000_000));
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], (uint)(_nanosecond ? fraction : fraction / 1000));
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], frame.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], (uint)original);
        _stream.Write(header);
        _stream.Write(frame);
    }

    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Flush();
        if (!_leaveOpen)
            _stream.Dispose();
    }
}
