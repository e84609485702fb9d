using System.Buffers.Binary;
using System.Globalization;


namespace Ctfw.Packets;

/// <summary>
/// An IPv4 or IPv6 address held as two big-endian 64-bit halves, so that comparisons and hashing
/// are two integer operations. IPv4 addresses occupy the top 32 bits of <see cref="Hi"/>; the
/// family is carried alongside (in the tuple), not inside the value.
/// </summary>
public readonly record struct IpAddress(ulong Hi, ulong Lo)
{
    public static IpAddress FromV4(ReadOnlySpan<byte> fourBytes) =>
        new((ulong)BinaryPrimitives.ReadUInt32BigEndian(fourBytes) << 32, 0);

    public static IpAddress FromV4(uint hostOrder) => new((ulong)hostOrder << 32, 0);

    public static IpAddress FromV6(ReadOnlySpan<byte> sixteenBytes) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(sixteenBytes), BinaryPrimitives.ReadUInt64BigEndian(sixteenBytes[8..]));

    public uint V4 => (uint)(Hi >> 32);

    public void WriteV6(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, Hi);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Lo);
    }

    /// <summary>Formats as dotted quad (v4) or RFC 5952 text (v6). Not for the packet path.</summary>
    public string Format(bool isV6)
    {
        if (!isV6)
        {
            uint v = V4;
            return string.Create(CultureInfo.InvariantCulture, $"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}");
        }
        Span<byte> b = stackalloc byte[16];
        WriteV6(b);
        return new System.Net.IPAddress(b).ToString();
    }

    public static bool TryParse(string text, out IpAddress address, out bool isV6)
    {
        address = default;
        isV6 = false;
        if (!System.Net.IPAddress.TryParse(text, out System.Net.IPAddress? ip))
            return false;
        Span<byte> b = stackalloc byte[16];
        if (!ip.TryWriteBytes(b, out int written))
            return false;
        isV6 = written == 16;
        address = isV6 ? FromV6(b) : FromV4(b);
        return true;
    }

    public override string ToString() => (Lo == 0 && (Hi & 0xFFFF_FFFF) == 0) ? Format(false) : Format(true);
}
