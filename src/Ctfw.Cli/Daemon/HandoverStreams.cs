using System.Buffers.Binary;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The state's framing inside the hand-over connection: chunks of `[u32 little-endian length][bytes]`,
/// ended by a zero-length chunk, so the reader knows where the state ends without the writer knowing
/// its size in advance (the table is written while it is walked, never copied whole).
/// </summary>
internal sealed class ChunkedWriteStream(Stream inner, int chunkBytes = 1 << 16) : Stream
{
    private readonly byte[] _buffer = new byte[4 + chunkBytes];
    private int _filled;
    private bool _completed;

    public long Written { get; private set; }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_completed;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => Written; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        while (!data.IsEmpty)
        {
            int n = Math.Min(data.Length, _buffer.Length - 4 - _filled);
            data[..n].CopyTo(_buffer.AsSpan(4 + _filled));
            _filled += n;
            data = data[n..];
            Written += n;
            if (_filled == _buffer.Length - 4)
                FlushChunk();
        }
    }

    /// <summary>Writes what is buffered and the end marker.</summary>
    public void Complete()
    {
        if (_completed)
            return;
        FlushChunk();
        Span<byte> end = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(end, 0);
        inner.Write(end);
        inner.Flush();
        _completed = true;
    }

    public override void Flush()
    {
        FlushChunk();
        inner.Flush();
    }

    private void FlushChunk()
    {
        if (_filled == 0)
            return;
        BinaryPrimitives.WriteUInt32LittleEndian(_buffer, (uint)_filled);
        inner.Write(_buffer, 0, 4 + _filled);
        _filled = 0;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>Reads what <see cref="ChunkedWriteStream"/> wrote; end of stream at the zero-length chunk.</summary>
internal sealed class ChunkedReadStream(Stream inner, int maxChunkBytes = 1 << 20) : Stream
{
    private int _left;
    private bool _ended;

    public long ReadBytes { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => ReadBytes; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (_ended || destination.IsEmpty)
            return 0;
        if (_left == 0)
        {
            Span<byte> header = stackalloc byte[4];
            inner.ReadExactly(header);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(header);
            if (length == 0)
            {
                _ended = true;
                return 0;
            }
            if (length > (uint)maxChunkBytes)
                throw new InvalidDataException($"a state chunk of {length} bytes (at most {maxChunkBytes})");
            _left = (int)length;
        }
        int n = inner.Read(destination[..Math.Min(destination.Length, _left)]);
        if (n == 0)
            throw new EndOfStreamException($"the connection ended inside a state chunk ({_left} bytes missing)");
        _left -= n;
        ReadBytes += n;
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
