using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Ctfw.Packets;

public enum ChecksumResult : byte
{
    Valid,
    Invalid,
    /// <summary>The transport segment is not fully captured (or the protocol has no checksum we know).</summary>
    NotVerifiable,
}

/// <summary>
/// RFC 1071 Internet checksum. The one's-complement sum is byte-order independent (RFC 1071 §2(B)),
/// so we add 64-bit words in native order with end-around carry and swap once at the end; every
/// chunk starts at an even offset, which is all the independence needs.
/// </summary>
public static class Checksums
{
    /// <summary>
    /// Verifies the TCP, UDP, ICMP or ICMPv6 checksum of a packet <see cref="PacketParser"/> accepted,
    /// as the kernel's <c>nf_checksum</c> does: over <see cref="ParsedPacket.L4Length"/> bytes (the IP
    /// header's length, not the UDP length field), with the family's pseudo-header except for ICMPv4.
    /// </summary>
    public static ChecksumResult VerifyTransport(ReadOnlySpan<byte> packet, in ParsedPacket p)
    {
        int end = p.L3HeaderLength + p.L4Length;
        if (p.L4Length <= 0 || end > packet.Length || p.CapturedLength < end)
            return ChecksumResult.NotVerifiable;
        ReadOnlySpan<byte> l4 = packet.Slice(p.L3HeaderLength, p.L4Length);

        ulong acc;
        switch (p.Protocol)
        {
            case IpProto.Tcp when l4.Length >= 20:
            case IpProto.Icmpv6 when l4.Length >= 8:
                acc = PseudoHeader(packet, p.IsV6, p.Protocol, l4.Length);
                break;
            case IpProto.Udp when l4.Length >= 8:
                // Zero means "no checksum"; the kernel accepts it for IPv6 too (kernel-conntrack.md §7).
                if (BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) == 0)
                    return ChecksumResult.Valid;
                acc = PseudoHeader(packet, p.IsV6, p.Protocol, l4.Length);
                break;
            case IpProto.Icmp when l4.Length >= 8:
                acc = 0;
                break;
            case IpProto.Sctp when l4.Length >= 12:
                return SctpCrcOk(l4) ? ChecksumResult.Valid : ChecksumResult.Invalid;
            default:
                return ChecksumResult.NotVerifiable;
        }
        return Fold(Accumulate(l4, acc)) == 0xFFFF ? ChecksumResult.Valid : ChecksumResult.Invalid;
    }

    /// <summary>
    /// UDP-Lite's checksum as Linux conntrack checks it (udplite_error): the datagram's full length
    /// and the first <paramref name="coverage"/> bytes, under a pseudo-header with protocol 17, not the
    /// 136 of RFC 3828 §3.1 — udplite_error hands IPPROTO_UDP to nf_checksum_partial. Measured on 6.18
    /// (udplite_new_reply): a datagram checksummed as the RFC says is INVALID ("bad checksum"), the
    /// same datagram checksummed with 17 passes.
    /// </summary>
    public static ChecksumResult VerifyUdpLite(ReadOnlySpan<byte> packet, in ParsedPacket p, int coverage)
    {
        const byte kernelPseudoProtocol = IpProto.Udp;
        int end = p.L3HeaderLength + p.L4Length;
        if (p.L4Length < 8 || end > packet.Length || p.CapturedLength < end || coverage > p.L4Length)
            return ChecksumResult.NotVerifiable;
        ulong acc = PseudoHeader(packet, p.IsV6, kernelPseudoProtocol, p.L4Length);
        return Fold(Accumulate(packet.Slice(p.L3HeaderLength, coverage), acc)) == 0xFFFF ? ChecksumResult.Valid : ChecksumResult.Invalid;
    }

    /// <summary>SCTP's CRC32c over the whole packet with its checksum field taken as zero (RFC 9260 §6.8).</summary>
    private static bool SctpCrcOk(ReadOnlySpan<byte> sctp)
    {
        ReadOnlySpan<byte> zero = [0, 0, 0, 0];
        uint crc = Crc32C.Compute(0, sctp[..8]);
        crc = Crc32C.Compute(crc, zero);
        crc = Crc32C.Compute(crc, sctp[12..]);
        return crc == BinaryPrimitives.ReadUInt32LittleEndian(sctp[8..]);
    }

    /// <summary>The value to store in a checksum field (already complemented), big-endian numeric.</summary>
    public static ushort InternetChecksum(ReadOnlySpan<byte> data) => (ushort)~Fold(Accumulate(data, 0));

    /// <summary>Sum of the IPv4/IPv6 pseudo-header, read from the packet's own address fields.</summary>
    internal static ulong PseudoHeader(ReadOnlySpan<byte> packet, bool v6, byte protocol, int l4Length)
    {
        // Addresses are summed straight from the packet; protocol and length are added as the
        // big-endian 16-bit words they would be in memory, converted to the native domain.
        ulong acc = v6 ? Accumulate(packet.Slice(8, 32), 0) : Accumulate(packet.Slice(12, 8), 0);
        Span<byte> tail = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(tail, (uint)l4Length);
        BinaryPrimitives.WriteUInt32BigEndian(tail[4..], protocol);
        return Add(acc, MemoryMarshal.Read<ulong>(tail));
    }

    /// <summary>Adds <paramref name="data"/> to a native-order one's-complement accumulator, 8 bytes at a time.</summary>
    internal static ulong Accumulate(ReadOnlySpan<byte> data, ulong acc)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        int n = data.Length;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            acc = Add(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
            acc = Add(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 8)));
            acc = Add(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 16)));
            acc = Add(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i + 24)));
        }
        for (; i + 8 <= n; i += 8)
            acc = Add(acc, Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref p, i)));
        if (i < n)
        {
            // Zero-pad the tail in memory order: an odd last byte becomes the high byte of a
            // big-endian word padded with zero, exactly as RFC 1071 prescribes.
            ulong last = 0;
            data[i..].CopyTo(MemoryMarshal.AsBytes(new Span<ulong>(ref last)));
            acc = Add(acc, last);
        }
        return acc;
    }

    /// <summary>Folds a native-order accumulator to the 16-bit one's-complement sum, big-endian numeric.</summary>
    internal static ushort Fold(ulong acc)
    {
        acc = (acc >> 32) + (acc & 0xFFFF_FFFF);
        acc = (acc >> 32) + (acc & 0xFFFF_FFFF);
        acc = (acc >> 16) + (acc & 0xFFFF);
        acc = (acc >> 16) + (acc & 0xFFFF);
        acc = (acc >> 16) + (acc & 0xFFFF);
        ushort folded = (ushort)acc;
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(folded) : folded;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Add(ulong acc, ulong value)
    {
        ulong sum = acc + value;
        return sum + (sum < value ? 1UL : 0UL); // end-around carry
    }
}
