namespace Ctfw.Capture;

/// <summary>What made a capture file unreadable past <see cref="CaptureError.Offset"/>.</summary>
public enum CaptureErrorKind
{
    /// <summary>Neither a pcap magic nor a pcapng Section Header Block, or a bad pcapng byte-order magic.</summary>
    BadMagic = 1,
    /// <summary>pcap major version other than 2, or pcapng major version other than 1.</summary>
    UnsupportedVersion,
    /// <summary>pcapng block total length below 12 or not a multiple of 4.</summary>
    BadBlockLength,
    /// <summary>pcapng trailing block total length differs from the leading one.</summary>
    BlockLengthMismatch,
    /// <summary>
    /// Refused as libpcap refuses it: a packet over <see cref="CaptureReader.MaxRecordLength"/> or over
    /// its pcapng interface's snaplen, or a pcapng block over <see cref="CaptureReader.MaxBlockLength"/>.
    /// </summary>
    RecordTooLarge,
    /// <summary>The file ends inside a header, record or block.</summary>
    Truncated,
    /// <summary>A packet block names an interface its section has not described.</summary>
    UnknownInterface,
    /// <summary>A block's contents contradict its own length (captured length, options, minimum size).</summary>
    MalformedBlock,
}

/// <summary>
/// Damage that stopped a <see cref="CaptureReader"/>. Every record that starts before
/// <see cref="Offset"/> was delivered; nothing at or after it was.
/// </summary>
public sealed class CaptureError(CaptureErrorKind kind, long offset, string message)
{
    public CaptureErrorKind Kind { get; } = kind;

    /// <summary>File offset of the first byte of the header, record or block that could not be read.</summary>
    public long Offset { get; } = offset;

    public string Message { get; } = message;

    public override string ToString() => $"offset {Offset}: {Message}";
}
