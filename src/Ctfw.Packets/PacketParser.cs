namespace Ctfw.Packets;

/// <summary>
/// Parses one IP packet (starting at the network header) into a <see cref="ParsedPacket"/>, doing
/// what the kernel does before and while building the tuple (kernel-conntrack.md §2 steps 2-4,
/// §4.2 steps 1-2, §7, §8). Checksums are separate (<see cref="Checksums.VerifyTransport"/>) because
/// the kernel checks them only at PRE_ROUTING.
/// </summary>
public static class PacketParser
{
    /// <summary>
    /// Returns <see cref="InvalidReason.None"/> on success, otherwise the reason the packet cannot be
    /// tracked; fields read before the failure are filled in. Never throws, never allocates.
    /// Bytes beyond the IP length (link padding) are ignored; fewer bytes than the IP length (a
    /// header-only capture) are fine as long as the headers the kernel reads are present.
    /// </summary>
    public static InvalidReason Parse(ReadOnlySpan<byte> packet, out ParsedPacket parsed)
    {
        parsed = default;
        if (packet.IsEmpty)
            return InvalidReason.Truncated;
        InvalidReason reason = (packet[0] >> 4) switch
        {
            4 => ParseIpv4(ref packet, ref parsed),
            6 => ParseIpv6(ref packet, ref parsed),
            _ => InvalidReason.BadIpVersion,
        };
        return reason != InvalidReason.None ? reason : ParseTransport(packet, ref parsed);
    }

    private static InvalidReason ParseIpv4(ref ReadOnlySpan<byte> packet, ref ParsedPacket p)
    {
        if (!Ipv4Header.TryRead(packet, out Ipv4Header ip))
            return InvalidReason.Truncated;
        p.IpVersion = 4;
        p.Protocol = ip.Protocol;
        p.Src = ip.Src;
        p.Dst = ip.Dst;
        p.Ttl = ip.Ttl;
        int headerLength = ip.HeaderLength;
        if (headerLength < Ipv4Header.MinLength || headerLength > packet.Length)
            return InvalidReason.BadIpv4HeaderLength;
        int total = ip.TotalLength;
        if (total < headerLength)
            return InvalidReason.BadIpv4TotalLength;

        packet = packet[..Math.Min(packet.Length, total)];
        p.L3HeaderLength = headerLength;
        p.IpTotalLength = total;
        p.L4Length = total - headerLength;
        p.CapturedLength = packet.Length;
        if (ip.FragmentOffset != 0)
            return InvalidReason.NonFirstFragment;
        p.IsFirstFragment = ip.MoreFragments;
        return InvalidReason.None;
    }

    private static InvalidReason ParseIpv6(ref ReadOnlySpan<byte> packet, ref ParsedPacket p)
    {
        if (!Ipv6Header.TryRead(packet, out Ipv6Header ip))
            return InvalidReason.Truncated;
        p.IpVersion = 6;
        p.Protocol = ip.NextHeader;
        p.Src = ip.Src;
        p.Dst = ip.Dst;
        p.Ttl = ip.HopLimit;
        int payload = ip.PayloadLength;
        if (payload == 0)
            return InvalidReason.BadIpv6PayloadLength; // jumbogram (RFC 2675): not supported

        int total = Ipv6Header.Length + payload;
        packet = packet[..Math.Min(packet.Length, total)];
        p.IpTotalLength = total;
        p.CapturedLength = packet.Length;

        byte next = ip.NextHeader;
        int offset = Ipv6Header.Length;
        InvalidReason reason = Ipv6Header.SkipExtensionHeaders(packet, total, ref next, ref offset, out p.IsFirstFragment);
        p.Protocol = next;
        p.L3HeaderLength = offset;
        if (reason != InvalidReason.None)
            return reason;
        // The last header's length field may still point past the packet or the capture.
        if (offset > total)
            return InvalidReason.BadIpv6PayloadLength;
        if (offset > packet.Length)
            return InvalidReason.BadIpv6ExtensionHeader;
        p.L4Length = total - offset;
        return InvalidReason.None;
    }

    private static InvalidReason ParseTransport(ReadOnlySpan<byte> packet, ref ParsedPacket p)
    {
        ReadOnlySpan<byte> l4 = packet[p.L3HeaderLength..];
        switch (p.Protocol)
        {
            case IpProto.Tcp:
                return ParseTcp(l4, ref p);
            case IpProto.Udp:
                return ParseUdp(l4, ref p);
            case IpProto.Icmp:
            case IpProto.Icmpv6:
                return ParseIcmp(l4, ref p);
            case IpProto.UdpLite:
            case IpProto.Sctp:
                // Tracked generically here, but the kernel's tuple still carries their ports (same offsets as UDP).
                if (l4.Length < 4)
                    return InvalidReason.L4Truncated;
                ReadPorts(l4, ref p);
                return InvalidReason.None;
            default:
                return InvalidReason.None;
        }
    }

    private static InvalidReason ParseTcp(ReadOnlySpan<byte> l4, ref ParsedPacket p)
    {
        if (!TcpHeader.TryRead(l4, out TcpHeader tcp))
        {
            if (l4.Length >= 4)
                ReadPorts(l4, ref p);
            return InvalidReason.TcpHeaderTruncated;
        }
        p.SrcPort = tcp.SrcPort;
        p.DstPort = tcp.DstPort;
        p.Seq = tcp.Seq;
        p.AckSeq = tcp.Ack;
        p.Window = tcp.Window;
        p.TcpFlags = tcp.Flags;
        int headerLength = tcp.HeaderLength;
        p.TcpHeaderLength = (byte)headerLength;
        // Beyond the IP length is the kernel's "truncated packet"; beyond the capture we cannot read the options.
        if (headerLength < TcpHeader.MinLength || headerLength > p.L4Length || headerLength > l4.Length)
            return InvalidReason.TcpBadDataOffset;
        p.TcpPayloadLength = p.L4Length - headerLength;
        TcpHeader.ReadOptions(l4[TcpHeader.MinLength..headerLength], p.AckSeq, out p.TcpOptions);
        return InvalidReason.None;
    }

    private static InvalidReason ParseUdp(ReadOnlySpan<byte> l4, ref ParsedPacket p)
    {
        if (!UdpHeader.TryRead(l4, out UdpHeader udp))
        {
            if (l4.Length >= 4)
                ReadPorts(l4, ref p);
            return InvalidReason.UdpHeaderTruncated;
        }
        p.SrcPort = udp.SrcPort;
        p.DstPort = udp.DstPort;
        p.UdpLength = udp.DatagramLength;
        p.UdpChecksum = udp.Checksum;
        return p.UdpLength < UdpHeader.Length || p.UdpLength > p.L4Length ? InvalidReason.UdpBadLength : InvalidReason.None;
    }

    private static InvalidReason ParseIcmp(ReadOnlySpan<byte> l4, ref ParsedPacket p)
    {
        if (!IcmpHeader.TryRead(l4, out IcmpHeader icmp))
            return InvalidReason.IcmpHeaderTruncated;
        p.IcmpType = icmp.Type;
        p.IcmpCode = icmp.Code;
        p.IcmpId = icmp.Identifier;
        p.SrcPort = icmp.Identifier;
        p.DstPort = (ushort)(icmp.Type << 8 | icmp.Code);

        // ICMPv4 in IPv6 and ICMPv6 in IPv4 are read but never treated as errors: the kernel runs
        // neither error handler for them and the tracker rejects them (IcmpWrongFamily).
        if (p.IsV6 ? p.Protocol != IpProto.Icmpv6 : p.Protocol != IpProto.Icmp)
            return InvalidReason.None;

        if (p.IsV6 ? IcmpHeader.IsIcmpv6Error(icmp.Type) : IcmpHeader.IsIcmpv4Error(icmp.Type))
            return ParseInner(l4[IcmpHeader.Length..], p.IsV6, ref p.Inner) ? InvalidReason.None : InvalidReason.IcmpErrorBadInner;

        if (p.IsV6 && icmp.Type == IcmpHeader.Ipv6RedirectType && IsRedirectWithHeader(l4, p))
        {
            const int innerOffset = IcmpHeader.Ipv6RedirectOptionsOffset + IcmpHeader.RedirectedHeaderDataOffset;
            ReadOnlySpan<byte> inner = l4.Length > innerOffset ? l4[innerOffset..] : default;
            return ParseInner(inner, v6: true, ref p.Inner) ? InvalidReason.None : InvalidReason.IcmpErrorBadInner;
        }
        return InvalidReason.None;
    }

    /// <summary>
    /// The redirect reaches the kernel's inner lookup only if code 0, hop limit 255, a link-local
    /// source and a first option that is a non-empty Redirected Header (§8.2 step 3). Anything else is
    /// the tracker's to reject (Icmpv6RedirectInvalid), so we leave <see cref="ParsedPacket.Inner"/> empty.
    /// </summary>
    private static bool IsRedirectWithHeader(ReadOnlySpan<byte> l4, in ParsedPacket p) =>
        p.IcmpCode == 0
        && p.Ttl == 255
        && (p.Src.Hi & 0xFFC0_0000_0000_0000) == 0xFE80_0000_0000_0000
        && l4.Length >= IcmpHeader.Ipv6RedirectOptionsOffset + 2
        && l4[IcmpHeader.Ipv6RedirectOptionsOffset] == IcmpHeader.RedirectedHeaderOption
        && l4[IcmpHeader.Ipv6RedirectOptionsOffset + 1] != 0;

    /// <summary>
    /// The packet quoted in an ICMP error, as the kernel's <c>nf_ct_get_tuplepr</c> reads it: the IP
    /// header of the outer family (version nibble and inner length are not checked, only what was
    /// captured), first fragment only, then the L4 ids.
    /// </summary>
    private static bool ParseInner(ReadOnlySpan<byte> inner, bool v6, ref InnerTuple t)
    {
        ReadOnlySpan<byte> l4;
        if (v6)
        {
            if (!Ipv6Header.TryRead(inner, out Ipv6Header ip))
                return false;
            byte next = ip.NextHeader;
            int offset = Ipv6Header.Length;
            if (Ipv6Header.SkipExtensionHeaders(inner, inner.Length, ref next, ref offset, out _) != InvalidReason.None
                || offset > inner.Length)
                return false;
            t.Protocol = next;
            t.Src = ip.Src;
            t.Dst = ip.Dst;
            l4 = inner[offset..];
        }
        else
        {
            if (!Ipv4Header.TryRead(inner, out Ipv4Header ip))
                return false;
            int headerLength = ip.HeaderLength;
            if (headerLength < Ipv4Header.MinLength || headerLength > inner.Length || ip.FragmentOffset != 0)
                return false;
            t.Protocol = ip.Protocol;
            t.Src = ip.Src;
            t.Dst = ip.Dst;
            l4 = inner[headerLength..];
        }

        switch (t.Protocol)
        {
            case IpProto.Tcp:
            case IpProto.Udp:
            case IpProto.UdpLite:
            case IpProto.Sctp:
                if (l4.Length < 4)
                    return false;
                t.SrcId = (ushort)(l4[0] << 8 | l4[1]);
                t.DstId = (ushort)(l4[2] << 8 | l4[3]);
                break;
            case IpProto.Icmp:
            case IpProto.Icmpv6:
                if (!IcmpHeader.TryRead(l4, out IcmpHeader icmp))
                    return false;
                t.SrcId = icmp.Identifier;
                t.DstId = (ushort)(icmp.Type << 8 | icmp.Code);
                break;
        }
        t.Present = true;
        return true;
    }

    private static void ReadPorts(ReadOnlySpan<byte> l4, ref ParsedPacket p)
    {
        p.SrcPort = (ushort)(l4[0] << 8 | l4[1]);
        p.DstPort = (ushort)(l4[2] << 8 | l4[3]);
    }
}
