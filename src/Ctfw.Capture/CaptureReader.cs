using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace Ctfw.Capture;

/// <summary>
/// Streams the packet records of a pcap or pcapng capture, of any size, in flat memory.
/// </summary>
/// <remarks>
/// Bytes arrive through a <see cref="PipeReader"/>. A record is handed out as a span over the pipe's
/// own segment; only a record that straddles two segments is copied, into one reused buffer. The
/// pipe is advanced lazily, on the read after the one that returned a record, which is what keeps
/// that span valid until then.
/// Damage never throws: reading stops, <see cref="Error"/> says where and why, and every record
/// before the damage has been delivered. Exceptions of the underlying stream do propagate.
/// </remarks>
public sealed partial class CaptureReader : IDisposable
{
    /// <summary>
    /// Most captured bytes of one packet: libpcap's MAXIMUM_SNAPLEN (pcap-int.h), what tcpdump
    /// captures by default and the most libpcap reads for every link type ctfw understands. A pcap
    /// record or pcapng packet claiming more is refused where its header is, before any of it is
    /// buffered; a pcap file's own smaller snaplen cuts a longer record, as libpcap does.
    /// </summary>
    public const int MaxRecordLength = 262144;

    /// <summary>
    /// Longest pcapng block: libpcap's INITIAL_MAX_BLOCKSIZE (sf-pcapng.c, "pcapng block size N >
    /// maximum 16777216"), which it raises only for link types ctfw does not read. Checked on the
    /// block header, before the block is buffered.
    /// </summary>
    public const int MaxBlockLength = 16 * 1024 * 1024;

    // Large enough that few records straddle segments, small enough to stay out of the LOH.
    private const int PipeSegmentSize = 64 * 1024;

    private enum Format { Unknown, Pcap, Pcapng, Ended }

    private enum Step { Record, Continue, NeedMore, Stop }

    private readonly PipeReader _pipe;
    private ReadOnlySequence<byte> _buffer;  // unconsumed part of the last pipe read
    private bool _holdingRead;               // a pipe read is outstanding: AdvanceTo is owed before the next
    private bool _streamEnded;
    private long _offset;                    // file offset of _buffer.Start
    private long _index;
    private byte[] _scratch = [];
    private Format _format;
    private bool _bigEndian;
    private long _needed;                    // bytes the unit at _offset needs, for the truncation message
    private string _neededFor = "file header";

    public CaptureReader(Stream stream, bool leaveOpen = false)
        : this(PipeReader.Create(stream, new StreamPipeReaderOptions(
            bufferSize: PipeSegmentSize, minimumReadSize: PipeSegmentSize / 4, leaveOpen: leaveOpen)))
    {
    }

    /// <summary>Tests pass pipes with tiny segments so that every straddling path runs.</summary>
    internal CaptureReader(PipeReader pipe) => _pipe = pipe;

    /// <summary>Opens a capture file for one sequential pass.</summary>
    public static CaptureReader Open(string path) =>
        // bufferSize 0: the pipe already buffers, a second copy in FileStream would only cost.
        new(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan));

    /// <summary>Why reading stopped early; null while reading and after a clean end of file.</summary>
    public CaptureError? Error { get; private set; }

    /// <summary>
    /// Reads the next record. Returns false at the end of the capture or at damage (see <see cref="Error"/>).
    /// Blocks the calling thread while the stream has no data: replay consumes records one by one on
    /// one thread, and a synchronously completing stream takes no allocation on this path.
    /// </summary>
    public bool TryRead(out CaptureRecord record)
    {
        while (true)
        {
            Step step = _format switch
            {
                Format.Pcap => ReadPcapRecord(out record),
                Format.Pcapng => ReadPcapngBlock(out record),
                Format.Unknown => ReadFileHeader(out record),
                _ => Stopped(out record),
            };
            switch (step)
            {
                case Step.Record:
                    return true;
                case Step.Continue:
                    continue;
                case Step.NeedMore when !_streamEnded:
                    Fill();
                    continue;
                case Step.NeedMore when _buffer.IsEmpty && _format != Format.Unknown:
                    _format = Format.Ended;
                    return false;
                case Step.NeedMore:
                    Fail(CaptureErrorKind.Truncated,
                        $"file ends inside the {_neededFor}: {_needed} bytes needed, {_buffer.Length} present");
                    return false;
                default:
                    return false;
            }
        }
    }

    public void Dispose()
    {
        _format = Format.Ended;
        _pipe.Complete();
    }

    private static Step Stopped(out CaptureRecord record)
    {
        record = default;
        return Step.Stop;
    }

    private Step ReadFileHeader(out CaptureRecord record)
    {
        record = default;
        if (_buffer.Length < 4)
            return Need(4, "file header");

        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(Peek(4));
        if (magic == BlockTypeShb)
        {
            _format = Format.Pcapng;
            return Step.Continue;
        }
        return ReadPcapHeader(magic);
    }

    private void Fill()
    {
        if (_holdingRead)
            _pipe.AdvanceTo(_buffer.Start, _buffer.End);

        ValueTask<ReadResult> pending = _pipe.ReadAsync();
        ReadResult result = pending.IsCompleted ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
        _buffer = result.Buffer;
        _holdingRead = true;
        _streamEnded = result.IsCompleted;
    }

    private Step Need(long length, string what)
    {
        _needed = length;
        _neededFor = what;
        return Step.NeedMore;
    }

    private Step Fail(CaptureErrorKind kind, string message)
    {
        Error = new CaptureError(kind, _offset, message);
        _format = Format.Ended;
        return Step.Stop;
    }

    private void Consume(int length)
    {
        _buffer = _buffer.Slice(length);
        _offset += length;
    }

    /// <summary>First <paramref name="length"/> buffered bytes as one span; the caller checked they are buffered.</summary>
    private ReadOnlySpan<byte> Peek(int length)
    {
        ReadOnlySpan<byte> first = _buffer.FirstSpan;
        if (first.Length >= length)
            return first[..length];

        if (_scratch.Length < length)
            _scratch = new byte[Math.Max(length, Math.Min(2 * _scratch.Length, MaxBlockLength))];
        _buffer.Slice(0, length).CopyTo(_scratch);
        return _scratch.AsSpan(0, length);
    }

    /// <summary>
    /// A header's snaplen as libpcap's pcapint_adjust_snapshot takes it (0 or over INT_MAX: the
    /// maximum), never above <see cref="MaxRecordLength"/>, which no packet is allowed to pass anyway.
    /// </summary>
    private static int EffectiveSnapLength(uint snapLength) =>
        snapLength is 0 or > MaxRecordLength ? MaxRecordLength : (int)snapLength;

    private ushort U16(ReadOnlySpan<byte> span, int offset) => _bigEndian
        ? BinaryPrimitives.ReadUInt16BigEndian(span[offset..])
        : BinaryPrimitives.ReadUInt16LittleEndian(span[offset..]);

    private uint U32(ReadOnlySpan<byte> span, int offset) => _bigEndian
        ? BinaryPrimitives.ReadUInt32BigEndian(span[offset..])
        : BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);
}
