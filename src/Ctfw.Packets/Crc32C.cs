using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;

namespace Ctfw.Packets;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): SSE4.2's crc32 instruction, else a table.
/// The state file's checksum and SCTP's (RFC 9260 appendix A, stored little-endian in the common header).
/// </summary>
public static class Crc32C
{
    private static readonly uint[] s_table = BuildTable();

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }

    /// <summary>Continues <paramref name="crc"/> (0 to start; the result of a previous call to go on) over <paramref name="data"/>.</summary>
    public static uint Compute(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        if (Sse42.X64.IsSupported)
        {
            ulong c64 = c;
            while (data.Length >= 8)
            {
                c64 = Sse42.X64.Crc32(c64, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }
            c = (uint)c64;
            foreach (byte x in data)
                c = Sse42.Crc32(c, x);
            return ~c;
        }
        foreach (byte x in data)
            c = s_table[(byte)(c ^ x)] ^ (c >> 8);
        return ~c;
    }
}
