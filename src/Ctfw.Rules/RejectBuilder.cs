using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Rules;

/// <summary>
/// Builds the packet a REJECT rule answers with, as the kernel's nf_reject_ipv4.c / nf_reject_ipv6.c
/// and icmp_send / icmp6_send do, into a caller buffer. Returns 0 — no answer — where the kernel
/// sends none: non-first fragments, a bad transport checksum (when verified), TCP RST in answer to
/// a RST, ICMP errors in answer to ICMP errors (and to unknown ICMPv4 types, which the kernel
/// treats as errors), broadcast or multicast destinations, sources that do not name one host.
/// Not modelled: ICMP rate limiting (net.ipv4.icmp_ratelimit), link-layer broadcast (pkt_type),
/// directed subnet broadcasts (need the routing table) and the checksum quirk for protocols other
/// than TCP/UDP/ICMP/ICMPv6 (not verified here).
/// </summary>
public static class RejectBuilder
{
    /// <summary>Enough for any reply: ICMPv6 errors are cut to the IPv6 minimum MTU, 1280 bytes.</summary>
    public const int MaxReplyLength = 1280;
    /// <summary>sysctl ip_default_ttl / hop_limit defaults; the kernel takes the route's value.</summary>
    public const byte DefaultTtl = 64;

    /// <summary>
    /// Writes the answer to the packet in <paramref name="facts"/> (its <see cref="PacketFacts.Bytes"/>
    /// must hold the packet) and returns its length, or 0 when no answer is sent.
    /// </summary>
    /// <param name="destination">At least <see cref="MaxReplyLength"/> bytes (shorter throws <see cref="ArgumentException"/> when the reply does not fit).</param>
    /// <param name="with">The verdict's kind; <see cref="RejectWith.Default"/> is the port-unreachable of the packet's family.</param>
    /// <param name="icmpSource">
    /// Source of an ICMP answer. The kernel answers from the rejected packet's destination when it is a
    /// local address (INPUT) and from its own address on the route back otherwise (FORWARD): pass that
    /// address for forwarded packets. TCP resets always come from the rejected packet's destination.
    /// </param>
    /// <param name="verifyChecksum">
    /// Check the rejected packet's transport checksum first, as nf_ip_checksum does for packets whose
    /// checksum the NIC did not vouch for; pass false for locally generated packets (checksum offload).
    /// </param>
    public static int Build(Span<byte> destination, RejectWith with, in PacketFacts facts, IpAddress? icmpSource = null, bool verifyChecksum = true)
    {
        ref readonly ParsedPacket p = ref facts.Packet;
        if (p.IpVersion is not (4 or 6) || facts.IsNonFirstFragment || p.L3HeaderLength <= 0 || p.IpTotalLength <= 0)
            return 0;
        bool v6 = p.IsV6;
        if (with == RejectWith.Default)
            with = v6 ? RejectWith.Icmp6PortUnreachable : RejectWith.IcmpPortUnreachable;
        if ((with.Family() & (v6 ? RuleFamily.IPv6 : RuleFamily.IPv4)) == 0)
            return 0;
        ReadOnlySpan<byte> packet = facts.Bytes.Length > p.IpTotalLength ? facts.Bytes[..p.IpTotalLength] : facts.Bytes;
        if (packet.Length < p.L3HeaderLength)
            return 0;
        return with == RejectWith.TcpReset
            ? TcpReset(destination, packet, p, verifyChecksum)
            : Unreachable(destination, with, packet, p, icmpSource, verifyChecksum);
    }

    /// <summary>nf_send_reset / nf_send_reset6 with nf_reject_ip(6)_tcphdr_put.</summary>
    private static int TcpReset(Span<byte> destination, ReadOnlySpan<byte> packet, in ParsedPacket p, bool verifyChecksum)
    {
        if (p.Protocol != IpProto.Tcp || packet.Length < p.L3HeaderLength + TcpHeader.MinLength)
            return 0;
        TcpFlags flags = (TcpFlags)packet[p.L3HeaderLength + 13];
        if ((flags & TcpFlags.Rst) != 0)
            return 0; // no RST for a RST
        if (verifyChecksum && Checksums.VerifyTransport(packet, p) == ChecksumResult.Invalid)
            return 0;
        if (p.IsV6 ? !IsV6Unicast(p.Src) || !IsV6Unicast(p.Dst) : IsV4BroadcastOrMulticast(p.Dst))
            return 0;

        ReadOnlySpan<byte> th = packet[p.L3HeaderLength..];
        int doff = (th[12] >> 4) * 4;
        var spec = new TcpSpec
        {
            V6 = p.IsV6,
            Src = p.Dst,
            Dst = p.Src,
            SrcPort = BinaryPrimitives.ReadUInt16BigEndian(th[2..]),
            DstPort = BinaryPrimitives.ReadUInt16BigEndian(th),
            Window = 0,
            Ttl = DefaultTtl,
        };
        if ((flags & TcpFlags.Ack) != 0)
        {
            spec.Seq = BinaryPrimitives.ReadUInt32BigEndian(th[8..]);
            spec.Flags = TcpFlags.Rst;
        }
        else
        {
            // Acknowledge everything the segment occupied: payload (from the IP length) plus SYN and FIN.
            uint segmentLength = unchecked((uint)(p.IpTotalLength - p.L3HeaderLength - doff))
                + ((flags & TcpFlags.Syn) != 0 ? 1u : 0u) + ((flags & TcpFlags.Fin) != 0 ? 1u : 0u);
            spec.Ack = unchecked(BinaryPrimitives.ReadUInt32BigEndian(th[4..]) + segmentLength);
            spec.Flags = TcpFlags.Rst | TcpFlags.Ack;
        }
        int length = PacketBuilder.Tcp(destination, spec);
        if (!p.IsV6)
        {
            destination[6] = 0x40; // nf_reject_iphdr_put: frag_off = IP_DF
            PacketBuilder.WriteIpv4HeaderChecksum(destination);
        }
        return length;
    }

    /// <summary>nf_send_unreach / nf_send_unreach6 → icmp_send / icmp6_send (destination unreachable).</summary>
    private static int Unreachable(Span<byte> destination, RejectWith with, ReadOnlySpan<byte> packet, in ParsedPacket p,
        IpAddress? icmpSource, bool verifyChecksum)
    {
        int l4Available = packet.Length - p.L3HeaderLength;
        if (p.IsV6)
        {
            if (IsV6Multicast(p.Dst) || p.Src == default || IsV6Multicast(p.Src))
                return 0;
            // is_ineligible: never answer an ICMPv6 error (type < 128) or an ICMPv6 packet without a readable type.
            if (p.Protocol == IpProto.Icmpv6 && (l4Available < 1 || (packet[p.L3HeaderLength] & 0x80) == 0))
                return 0;
        }
        else
        {
            if (IsV4BroadcastOrMulticast(p.Dst) || !IsV4SingleHost(p.Src))
                return 0;
            if (p.Protocol == IpProto.Icmp && (l4Available < 1 || IsIcmpv4ErrorForIcmpSend(packet[p.L3HeaderLength])))
                return 0;
        }
        if (verifyChecksum && ChecksumIsBad(packet, p))
            return 0;

        byte code = with switch
        {
            RejectWith.IcmpNetUnreachable => 0,
            RejectWith.IcmpHostUnreachable => 1,
            RejectWith.IcmpProtoUnreachable => 2,
            RejectWith.IcmpPortUnreachable => 3,
            RejectWith.IcmpNetProhibited => 9,
            RejectWith.IcmpHostProhibited => 10,
            RejectWith.IcmpAdminProhibited => 13,
            RejectWith.Icmp6NoRoute => 0,
            RejectWith.Icmp6AdmProhibited => 1,
            RejectWith.Icmp6AddrUnreachable => 3,
            RejectWith.Icmp6PortUnreachable => 4,
            RejectWith.Icmp6PolicyFail => 5,
            RejectWith.Icmp6RejectRoute => 6,
            _ => 0,
        };
        IpAddress source = icmpSource ?? p.Dst;
        if (p.IsV6)
            return PacketBuilder.IcmpError(destination, v6: true, source, p.Src, 1, code, packet, ttl: DefaultTtl);

        int length = PacketBuilder.IcmpError(destination, v6: false, source, p.Src, 3, code, packet, ttl: DefaultTtl);
        // __icmp_send: errors go out with the offender's TOS bits and precedence "internetwork control".
        destination[1] = (byte)((packet[1] & 0x1E) | 0xC0);
        PacketBuilder.WriteIpv4HeaderChecksum(destination);
        return length;
    }

    /// <summary>nf_reject_verify_csum + nf_ip(6)_checksum for the protocols whose checksum we can verify.</summary>
    private static bool ChecksumIsBad(ReadOnlySpan<byte> packet, in ParsedPacket p) => p.Protocol switch
    {
        IpProto.Tcp or IpProto.Udp or IpProto.Icmp or IpProto.Icmpv6 => Checksums.VerifyTransport(packet, p) == ChecksumResult.Invalid,
        _ => false,
    };

    /// <summary>icmp_pointers[type].error, with types above NR_ICMP_TYPES (18) treated as errors as the kernel does.</summary>
    private static bool IsIcmpv4ErrorForIcmpSend(byte type) => type is not (0 or 8 or 13 or 14 or 15 or 16 or 17 or 18);

    private static bool IsV4BroadcastOrMulticast(IpAddress a) => a.V4 == 0xFFFF_FFFF || (a.V4 >> 28) == 0xE;

    /// <summary>RFC 1122 §3.2.2: no ICMP error to a source that is zero, broadcast, multicast or class E.</summary>
    private static bool IsV4SingleHost(IpAddress a) => a.V4 != 0 && (a.V4 >> 28) < 0xE;

    private static bool IsV6Multicast(IpAddress a) => (a.Hi >> 56) == 0xFF;

    private static bool IsV6Unicast(IpAddress a) => a != default && !IsV6Multicast(a);
}
