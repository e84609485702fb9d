using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Capture;

/// <summary>
/// The IP datagram a capture record carries, as the kernel's IP layer would have had it: link-layer
/// padding after the datagram (short Ethernet frames are padded to 60 bytes) sliced off, and whether
/// every byte of the datagram was captured, which decides whether its checksum can be verified.
/// A view into <see cref="CaptureRecord.Frame"/>, valid as long as the record is.
/// </summary>
public readonly ref struct CapturedDatagram
{
    private CapturedDatagram(ReadOnlySpan<byte> packet, bool whole, bool pending, bool verify)
    {
        Packet = packet;
        IsWhole = whole;
        ChecksumPending = pending;
        VerifyChecksum = verify;
    }

    /// <summary>From the IP header to the end of the datagram or of the captured bytes, whichever comes first.</summary>
    public ReadOnlySpan<byte> Packet { get; }

    /// <summary>
    /// Every byte of the datagram its IP header announces (IPv4 total length, IPv6 40 + payload
    /// length) was captured. A record the snap length cut only in padding or the FCS is whole.
    /// </summary>
    public bool IsWhole { get; }

    /// <summary>
    /// The TCP or UDP checksum field holds the folded pseudo-header sum and the datagram does not
    /// verify: the seed Linux leaves for the NIC (CHECKSUM_PARTIAL), so the packet was captured on
    /// its way out of a host that offloads checksums, or forwarded from one (a veth peer). The
    /// kernel skips verification of such packets; a random corruption lands on this value once in
    /// 65 536.
    /// </summary>
    public bool ChecksumPending { get; }

    /// <summary>Whether the tracker should verify this packet's checksum under the policy it was read with.</summary>
    public bool VerifyChecksum { get; }

    /// <summary>
    /// Finds the IP datagram in <paramref name="record"/> (see <see cref="LinkLayer.GetNetworkPacket"/>)
    /// and decides about its checksum under <paramref name="policy"/>. Anything but
    /// <see cref="LinkResult.Ip"/> means skip the record. Never throws, never allocates.
    /// </summary>
    public static LinkResult Get(in CaptureRecord record, ChecksumPolicy policy, out CapturedDatagram datagram) =>
        Get(record.LinkType, record.Frame, policy, out datagram);

    /// <inheritdoc cref="Get(in CaptureRecord, ChecksumPolicy, out CapturedDatagram)"/>
    public static LinkResult Get(int linkType, ReadOnlySpan<byte> frame, ChecksumPolicy policy, out CapturedDatagram datagram)
    {
        LinkResult link = LinkLayer.GetNetworkPacket(linkType, frame, out ReadOnlySpan<byte> ip, out _);
        if (link != LinkResult.Ip)
        {
            datagram = default;
            return link;
        }

        bool whole = TrimToDatagram(ref ip);
        bool pending = whole && policy == ChecksumPolicy.Auto && IsChecksumPending(ip);
        bool verify = whole && policy != ChecksumPolicy.Off && !pending;
        datagram = new CapturedDatagram(ip, whole, pending, verify);
        return link;
    }

    /// <summary>
    /// Cuts <paramref name="ip"/> at the end of the datagram its header announces; true if all of it
    /// is present. A header too short or too odd to announce a length (the parser will say why)
    /// is left as it is and counts as not whole.
    /// </summary>
    internal static bool TrimToDatagram(ref ReadOnlySpan<byte> ip)
    {
        int length;
        switch (ip[0] >> 4)
        {
            case 4 when ip.Length >= Ipv4Header.MinLength:
                length = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
                if (length < (ip[0] & 0x0F) * 4)
                    return false;
                break;
            case 6 when ip.Length >= Ipv6Header.Length:
                int payload = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
                if (payload == 0)
                    return false;  // jumbogram or TSO super-packet: no length in the header
                length = Ipv6Header.Length + payload;
                break;
            default:
                return false;
        }
        if (ip.Length < length)
            return false;
        ip = ip[..length];
        return true;
    }

    /// <summary>
    /// True if <paramref name="ip"/>, a whole datagram, is TCP or UDP with a checksum that does not
    /// verify but equals the offload seed: Linux stores ~csum_tcpudp_magic(src, dst, len, proto, 0),
    /// the folded pseudo-header sum, and lets the NIC finish it.
    /// </summary>
    internal static bool IsChecksumPending(ReadOnlySpan<byte> ip)
    {
        if (PacketParser.Parse(ip, out ParsedPacket p) != InvalidReason.None || p.L4Length != ip.Length - p.L3HeaderLength)
            return false;
        int field = p.Protocol switch
        {
            IpProto.Tcp => 16,
            IpProto.Udp => 6,
            _ => -1,
        };
        if (field < 0 || p.L4Length < field + 2 || Checksums.VerifyTransport(ip, p) != ChecksumResult.Invalid)
            return false;

        Span<byte> pseudo = stackalloc byte[40];
        int length;
        if (p.IsV6)
        {
            // Source, destination, upper-layer length (32 bits), 3 zero bytes, next header.
            ip.Slice(8, 32).CopyTo(pseudo);
            pseudo[32..].Clear();
            BinaryPrimitives.WriteUInt32BigEndian(pseudo[32..], (uint)p.L4Length);
            pseudo[39] = p.Protocol;
            length = 40;
        }
        else
        {
            // Source, destination, zero, protocol, TCP/UDP length.
            ip.Slice(12, 8).CopyTo(pseudo);
            pseudo[8] = 0;
            pseudo[9] = p.Protocol;
            BinaryPrimitives.WriteUInt16BigEndian(pseudo[10..], (ushort)p.L4Length);
            length = 12;
        }
        // InternetChecksum is the complement of the folded sum; the seed is the folded sum itself.
        ushort seed = (ushort)~Checksums.InternetChecksum(pseudo[..length]);
        ushort stored = BinaryPrimitives.ReadUInt16BigEndian(ip[(p.L3HeaderLength + field)..]);
        return stored == seed;
    }
}
