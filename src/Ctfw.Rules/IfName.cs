using System.Buffers.Binary;
using System.Text;

namespace Ctfw.Rules;

/// <summary>
/// An interface name as the kernel holds it: <c>char[IFNAMSIZ]</c>, NUL-padded, at most 15 bytes.
/// Held as two 64-bit words so that `-i`/`-o` matching is the kernel's <c>ifname_compare_aligned</c>:
/// two XORs under a mask, no string compare. Resolve names once (per ifindex) and pass them in
/// <see cref="PacketFacts"/>; a default value is "no interface" (the kernel's empty name).
/// </summary>
public readonly record struct IfName(ulong Hi, ulong Lo)
{
    /// <summary>IFNAMSIZ − 1.</summary>
    public const int MaxLength = 15;

    public static IfName None => default;

    public bool IsNone => Hi == 0 && Lo == 0;

    /// <summary>Builds from ASCII/UTF-8 text; false if longer than 15 bytes or containing NUL.</summary>
    public static bool TryCreate(ReadOnlySpan<char> name, out IfName result)
    {
        result = default;
        Span<byte> bytes = stackalloc byte[16];
        bytes.Clear();
        if (Encoding.UTF8.GetByteCount(name) > MaxLength || name.Contains('\0'))
            return false;
        Encoding.UTF8.GetBytes(name, bytes);
        result = new IfName(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]));
        return true;
    }

    /// <summary>As <see cref="TryCreate"/>; throws <see cref="ArgumentException"/> for names the kernel cannot have.</summary>
    public static IfName Create(string name) =>
        TryCreate(name, out IfName result) ? result : throw new ArgumentException($"Not an interface name: '{name}'.", nameof(name));

    /// <summary>Writes the name's bytes (without NULs) to <paramref name="destination"/>; returns their count.</summary>
    public int CopyTo(Span<byte> destination)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, Hi);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], Lo);
        int n = bytes.IndexOf((byte)0);
        if (n < 0)
            n = 16;
        bytes[..n].CopyTo(destination);
        return n;
    }

    /// <summary>The kernel's masked compare: the bytes under <paramref name="mask"/> are equal.</summary>
    internal bool MatchesUnder(IfName pattern, IfName mask) =>
        (((Hi ^ pattern.Hi) & mask.Hi) | ((Lo ^ pattern.Lo) & mask.Lo)) == 0;

    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[16];
        return Encoding.UTF8.GetString(bytes[..CopyTo(bytes)]);
    }
}
