using System.Buffers.Binary;

namespace Ctfw.Capture.Tests;

/// <summary>Appends integers in a chosen byte order; the test-side, independent writer of capture files.</summary>
internal sealed class ByteWriter
{
    private readonly List<byte> _bytes = [];

    public bool BigEndian { get; set; }

    public int Length => _bytes.Count;

    public ByteWriter U8(byte value)
    {
        _bytes.Add(value);
        return this;
    }

    public ByteWriter U16(ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        if (BigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, value); else BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        return Bytes(b);
    }

    public ByteWriter U32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (BigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, value); else BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Bytes(b);
    }

    public ByteWriter U64(ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        if (BigEndian) BinaryPrimitives.WriteUInt64BigEndian(b, value); else BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return Bytes(b);
    }

    public ByteWriter Bytes(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
            _bytes.Add(b);
        return this;
    }

    public ByteWriter Pad4()
    {
        while (_bytes.Count % 4 != 0)
            _bytes.Add(0);
        return this;
    }

    public void Patch32(int position, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (BigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, value); else BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        for (int i = 0; i < 4; i++)
            _bytes[position + i] = b[i];
    }

    public byte[] ToArray() => [.. _bytes];
}

/// <summary>Builds a classic pcap file in memory and remembers where each record starts.</summary>
internal sealed class PcapBuilder
{
    private readonly ByteWriter _w;

    public PcapBuilder(bool bigEndian = false, bool nanosecond = false, int linkType = 1, ushort major = 2, uint magic = 0,
        uint snapLength = 65535)
    {
        _w = new ByteWriter { BigEndian = bigEndian };
        _w.U32(magic != 0 ? magic : nanosecond ? 0xA1B23C4D : 0xA1B2C3D4).U16(major).U16(4).U32(0).U32(0).U32(snapLength).U32((uint)linkType);
    }

    public List<int> RecordStarts { get; } = [];

    public int Length => _w.Length;

    public PcapBuilder Record(uint seconds, uint fraction, byte[] frame, uint? originalLength = null, uint? capturedLength = null)
    {
        RecordStarts.Add(_w.Length);
        _w.U32(seconds).U32(fraction).U32(capturedLength ?? (uint)frame.Length).U32(originalLength ?? (uint)frame.Length).Bytes(frame);
        return this;
    }

    public byte[] ToArray() => _w.ToArray();
}

/// <summary>Builds a pcapng file in memory and remembers every block's extent.</summary>
internal sealed class PcapngBuilder
{
    private readonly ByteWriter _w = new();

    public sealed record BlockInfo(int Start, int End, bool IsPacket);

    public List<BlockInfo> Blocks { get; } = [];

    public int Length => _w.Length;

    /// <summary>Section Header Block, with a shb_userappl option so that readers must skip options.</summary>
    public PcapngBuilder Section(bool bigEndian, ushort major = 1, uint byteOrderMagic = 0x1A2B3C4D)
    {
        _w.BigEndian = bigEndian;
        return Block(0x0A0D0D0A, false, w =>
        {
            w.U32(byteOrderMagic).U16(major).U16(0).U64(ulong.MaxValue);
            w.U16(4).U16(5).Bytes("ctfw\0"u8).Pad4();
            w.U16(0).U16(0);
        });
    }

    public PcapngBuilder Interface(ushort linkType, uint snapLength = 0, byte? tsresol = null, long? tsoffset = null,
        int tsresolLength = 1) =>
        Block(1, false, w =>
        {
            w.U16(linkType).U16(0).U32(snapLength);
            w.U16(2).U16(4).Bytes("eth0"u8);  // if_name, to be skipped
            if (tsresol is { } r)
            {
                w.U16(9).U16((ushort)tsresolLength).U8(r);
                for (int i = 1; i < tsresolLength; i++)
                    w.U8(0);
                w.Pad4();
            }
            if (tsoffset is { } o)
                w.U16(14).U16(8).U64((ulong)o);
            w.U16(0).U16(0);
        });

    public PcapngBuilder Enhanced(uint interfaceId, ulong ticks, byte[] data, uint? originalLength = null,
        uint? capturedLength = null) =>
        Block(6, true, w =>
        {
            w.U32(interfaceId).U32((uint)(ticks >> 32)).U32((uint)ticks)
                .U32(capturedLength ?? (uint)data.Length).U32(originalLength ?? (uint)data.Length).Bytes(data).Pad4();
            w.U16(1).U16(3).Bytes("hi!"u8).Pad4();  // opt_comment, to be skipped
            w.U16(0).U16(0);
        });

    public PcapngBuilder Obsolete(ushort interfaceId, ulong ticks, byte[] data, uint? originalLength = null) =>
        // A non-zero drops count, so that reading the 16-bit interface id as 32 bits shows.
        Block(2, true, w => w.U16(interfaceId).U16(3).U32((uint)(ticks >> 32)).U32((uint)ticks)
            .U32((uint)data.Length).U32(originalLength ?? (uint)data.Length).Bytes(data).Pad4());

    public PcapngBuilder Simple(uint originalLength, byte[] data) =>
        Block(3, true, w => w.U32(originalLength).Bytes(data).Pad4());

    public PcapngBuilder Block(uint type, byte[] body) => Block(type, false, w => w.Bytes(body).Pad4());

    private PcapngBuilder Block(uint type, bool isPacket, Action<ByteWriter> body)
    {
        int start = _w.Length;
        _w.U32(type).U32(0);
        body(_w);
        _w.Pad4();
        uint total = (uint)(_w.Length + 4 - start);
        _w.U32(total);
        _w.Patch32(start + 4, total);
        Blocks.Add(new BlockInfo(start, _w.Length, isPacket));
        return this;
    }

    public byte[] ToArray() => _w.ToArray();
}
