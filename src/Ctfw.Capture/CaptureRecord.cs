namespace Ctfw.Capture;

/// <summary>
/// One packet record of a capture. A view, not a copy: <see cref="Frame"/> is valid only until the
/// next <see cref="CaptureReader.TryRead"/> or <see cref="CaptureReader.Dispose"/>.
/// </summary>
public readonly ref struct CaptureRecord
{
    internal CaptureRecord(long index, long offset, int interfaceId, int linkType, long timestamp,
        long originalLength, ReadOnlySpan<byte> frame)
    {
        Index = index;
        Offset = offset;
        InterfaceId = interfaceId;
        LinkType = linkType;
        TimestampNanoseconds = timestamp;
        OriginalLength = originalLength;
        Frame = frame;
    }

    /// <summary>0-based position among the records of the file (all sections, all interfaces).</summary>
    public long Index { get; }

    /// <summary>File offset of the record header (pcap) or packet block (pcapng).</summary>
    public long Offset { get; }

    /// <summary>pcapng interface id within its section; 0 for pcap.</summary>
    public int InterfaceId { get; }

    /// <summary>LINKTYPE_* of the record's interface; see <see cref="LinkTypes"/>.</summary>
    public int LinkType { get; }

    /// <summary>Nanoseconds since the Unix epoch, interface resolution and offset applied.</summary>
    public long TimestampNanoseconds { get; }

    /// <summary>Length of the packet on the wire; larger than <see cref="CapturedLength"/> when a snaplen cut it.</summary>
    public long OriginalLength { get; }

    public int CapturedLength => Frame.Length;

    /// <summary>The captured bytes, starting at the link-layer header of <see cref="LinkType"/>.</summary>
    public ReadOnlySpan<byte> Frame { get; }
}
