using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Ctfw.Packets;

/// <summary>Up to four SACK blocks inside <see cref="TcpSpec"/>, stored as (left, right) edge pairs.</summary>
[InlineArray(8)]
public struct SackEdges
{
    private uint _element0;
}

/// <summary>
/// Everything <see cref="PacketBuilder.Tcp(Span{byte}, in TcpSpec)"/> writes. Create with
/// <c>new TcpSpec { … }</c> so the defaults (TTL 64, no window scale) apply; <c>default</c> gives
/// TTL 0 and window scale 0.
/// </summary>
public struct TcpSpec
{
    public TcpSpec() { }

    public bool V6;
    public IpAddress Src;
    public IpAddress Dst;
    public ushort SrcPort;
    public ushort DstPort;
    public uint Seq;
    public uint Ack;
    public TcpFlags Flags;
    public ushort Window;
    public ushort UrgentPointer;
    public int PayloadLength;
    public byte PayloadFill;
    /// <summary>IPv4 TTL or IPv6 hop limit.</summary>
    public byte Ttl = PacketBuilder.DefaultTtl;

    /// <summary>Maximum segment size option; 0 = absent.</summary>
    public ushort Mss;
    /// <summary>Window scale shift; -1 = absent. Not capped here, so tests can send 15+.</summary>
    public sbyte WindowScale = -1;
    public bool SackPermitted;
    public bool Timestamp;
    public uint TsVal;
    public uint TsEcr;
    /// <summary>Number of SACK blocks (0..4) taken from <see cref="SackEdges"/> as (left, right) pairs.</summary>
    public byte SackBlockCount;
    public SackEdges SackEdges;
}

/// <summary>
/// Writes complete, checksum-correct IPv4/IPv6 packets into a caller buffer and returns their
/// length. Never allocates; throws <see cref="ArgumentException"/> only for caller errors (buffer
/// too small, packet over 65535 bytes, more than 40 bytes of TCP options), never for packet content.
/// Used by tests, benchmarks and replay fixtures, so it mirrors what Linux puts on the wire.
/// </summary>
public static class PacketBuilder
{
    public const byte DefaultTtl = 64;
    private const int Ipv4HeaderLength = 20;
    private const int Ipv6HeaderLength = 40;
    private const int MaxTcpOptions = 40;
    // RFC 1812 §4.3.2.3: quote as much as fits in 576 bytes; RFC 4443 §2.4(c): in the IPv6 minimum MTU.
    private const int Ipv4IcmpErrorMax = 576;
    private const int Ipv6IcmpErrorMax = 1280;

    public static int Tcp(Span<byte> buffer, in TcpSpec spec) =>
        Tcp(buffer, spec, spec.SackEdges[..(2 * Math.Min((int)spec.SackBlockCount, 4))]);

    /// <summary>As <see cref="Tcp(Span{byte}, in TcpSpec)"/> with SACK blocks given as (left, right) pairs; the spec's own blocks are ignored.</summary>
    public static int Tcp(Span<byte> buffer, in TcpSpec spec, ReadOnlySpan<uint> sackEdges)
    {
        if (sackEdges.Length % 2 != 0 || sackEdges.Length > 8)
            throw new ArgumentException("SACK edges come in (left, right) pairs, at most 4 blocks.", nameof(sackEdges));
        Span<byte> options = stackalloc byte[MaxTcpOptions + 8];
        int optionLength = WriteLinuxOptions(options, spec, sackEdges);
        if (optionLength > MaxTcpOptions)
            throw new ArgumentException("TCP options exceed 40 bytes.", nameof(spec));
        return TcpWithOptions(buffer, spec, options[..optionLength]);
    }

    /// <summary>
    /// A TCP segment carrying <paramref name="rawOptions"/> verbatim (padded with EOL to a 4-byte
    /// boundary) instead of the spec's options: for malformed-option and kernel-quirk tests.
    /// </summary>
    public static int TcpWithOptions(Span<byte> buffer, in TcpSpec spec, ReadOnlySpan<byte> rawOptions)
    {
        if (rawOptions.Length > MaxTcpOptions)
            throw new ArgumentException("TCP options exceed 40 bytes.", nameof(rawOptions));
        int tcpHeaderLength = 20 + ((rawOptions.Length + 3) & ~3);
        int l4Length = tcpHeaderLength + spec.PayloadLength;
        int h = WriteIpHeader(buffer, spec.V6, spec.Src, spec.Dst, IpProto.Tcp, l4Length, spec.Ttl);

        Span<byte> tcp = buffer.Slice(h, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, spec.SrcPort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], spec.DstPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], spec.Seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], spec.Ack);
        tcp[12] = (byte)(tcpHeaderLength / 4 << 4);
        tcp[13] = (byte)spec.Flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], spec.Window);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[18..], spec.UrgentPointer);
        rawOptions.CopyTo(tcp[20..]);
        tcp[(20 + rawOptions.Length)..tcpHeaderLength].Clear();
        tcp[tcpHeaderLength..].Fill(spec.PayloadFill);

        WriteTransportChecksum(buffer, spec.V6, h, l4Length, IpProto.Tcp, checksumOffset: 16);
        return h + l4Length;
    }

    public static int Udp(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, ushort sport, ushort dport,
        int payloadLength, byte payloadFill = 0, byte ttl = DefaultTtl)
    {
        int l4Length = 8 + payloadLength;
        int h = WriteIpHeader(buffer, v6, src, dst, IpProto.Udp, l4Length, ttl);
        Span<byte> udp = buffer.Slice(h, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0);
        udp[8..].Fill(payloadFill);
        WriteTransportChecksum(buffer, v6, h, l4Length, IpProto.Udp, checksumOffset: 6);
        return h + l4Length;
    }

    /// <summary>
    /// UDP-Lite datagram (RFC 3828, protocol 136): the UDP header with the checksum coverage in place of
    /// the length (<paramref name="coverage"/> 0 = the whole datagram), checksummed over the pseudo-header
    /// (protocol 136, the datagram's full length) and the covered bytes. <paramref name="pseudoHeaderProtocol"/>
    /// 17 builds the checksum the Linux conntrack verifies instead (see <see cref="Checksums.VerifyUdpLite"/>).
    /// </summary>
    public static int UdpLite(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, ushort sport, ushort dport,
        int payloadLength, ushort coverage = 0, byte payloadFill = 0, byte ttl = DefaultTtl, byte pseudoHeaderProtocol = IpProto.UdpLite)
    {
        int l4Length = 8 + payloadLength;
        int h = WriteIpHeader(buffer, v6, src, dst, IpProto.UdpLite, l4Length, ttl);
        Span<byte> udp = buffer.Slice(h, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], coverage);
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], 0);
        udp[8..].Fill(payloadFill);
        int covered = coverage == 0 ? l4Length : Math.Clamp((int)coverage, 0, l4Length);
        ulong acc = Checksums.PseudoHeader(buffer, v6, pseudoHeaderProtocol, l4Length);
        ushort sum = (ushort)~Checksums.Fold(Checksums.Accumulate(udp[..covered], acc));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], sum == 0 ? (ushort)0xFFFF : sum); // zero means "none", which UDP-Lite forbids
        return h + l4Length;
    }

    /// <summary>
    /// SCTP packet (RFC 9260 §3): the 12-byte common header with <paramref name="vtag"/>, then
    /// <paramref name="chunks"/> as given (see <see cref="SctpChunk"/>), then the CRC32c.
    /// </summary>
    /// <remarks>
    /// <code>
    ///  0                   1                   2                   3
    ///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// |     Source Port Number        |     Destination Port Number   |
    /// |                      Verification Tag                         |
    /// |                           Checksum                            |
    /// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    /// </code>
    /// </remarks>
    public static int Sctp(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, ushort sport, ushort dport,
        uint vtag, ReadOnlySpan<byte> chunks, byte ttl = DefaultTtl)
    {
        int l4Length = 12 + chunks.Length;
        int h = WriteIpHeader(buffer, v6, src, dst, IpProto.Sctp, l4Length, ttl);
        Span<byte> sctp = buffer.Slice(h, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(sctp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(sctp[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(sctp[4..], vtag);
        BinaryPrimitives.WriteUInt32LittleEndian(sctp[8..], 0);
        chunks.CopyTo(sctp[12..]);
        BinaryPrimitives.WriteUInt32LittleEndian(sctp[8..], Crc32C.Compute(0, sctp));
        return h + l4Length;
    }

    /// <summary>
    /// One SCTP chunk (type, flags, length, value) into <paramref name="buffer"/>, zero-padded to 4
    /// bytes; returns the bytes written (the length field holds the unpadded length).
    /// </summary>
    public static int SctpChunk(Span<byte> buffer, byte type, byte flags, ReadOnlySpan<byte> value)
    {
        int length = 4 + value.Length;
        int padded = (length + 3) & ~3;
        buffer[0] = type;
        buffer[1] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], (ushort)length);
        value.CopyTo(buffer[4..]);
        buffer[length..padded].Clear();
        return padded;
    }

    /// <summary>IPv4 ICMP message with the id/sequence layout of echo (RFC 792); other types reuse bytes 4-7.</summary>
    public static int Icmp(Span<byte> buffer, IpAddress src, IpAddress dst, byte type, byte code, ushort id, ushort seq,
        int payloadLength = 0, byte ttl = DefaultTtl) =>
        IcmpAnyFamily(buffer, v6: false, IpProto.Icmp, src, dst, type, code, id, seq, payloadLength, ttl);

    public static int Icmpv6(Span<byte> buffer, IpAddress src, IpAddress dst, byte type, byte code, ushort id, ushort seq,
        int payloadLength = 0, byte hopLimit = DefaultTtl) =>
        IcmpAnyFamily(buffer, v6: true, IpProto.Icmpv6, src, dst, type, code, id, seq, payloadLength, hopLimit);

    /// <summary>
    /// ICMP-style header under any family and protocol number, e.g. ICMPv4 inside IPv6 for wrong-family
    /// tests. The checksum includes the pseudo-header exactly when <paramref name="protocol"/> is 58.
    /// </summary>
    public static int IcmpAnyFamily(Span<byte> buffer, bool v6, byte protocol, IpAddress src, IpAddress dst,
        byte type, byte code, ushort id, ushort seq, int payloadLength, byte ttl = DefaultTtl)
    {
        int l4Length = 8 + payloadLength;
        int h = WriteIpHeader(buffer, v6, src, dst, protocol, l4Length, ttl);
        Span<byte> icmp = buffer.Slice(h, l4Length);
        icmp[0] = type;
        icmp[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], seq);
        icmp[8..].Clear();
        WriteTransportChecksum(buffer, v6, h, l4Length, protocol, checksumOffset: 2);
        return h + l4Length;
    }

    /// <summary>
    /// ICMP (v4) or ICMPv6 error quoting <paramref name="embeddedPacket"/>, truncated like a router
    /// would: to 576 bytes in total for IPv4, 1280 for IPv6. Pass a slice to quote less (routers
    /// quote at least the IP header and 8 bytes of L4). <paramref name="rest"/> fills bytes 4-7
    /// (unused, next-hop MTU, packet-too-big MTU or parameter-problem pointer).
    /// </summary>
    public static int IcmpError(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, byte type, byte code,
        ReadOnlySpan<byte> embeddedPacket, uint rest = 0, byte ttl = DefaultTtl)
    {
        int room = (v6 ? Ipv6IcmpErrorMax - Ipv6HeaderLength : Ipv4IcmpErrorMax - Ipv4HeaderLength) - 8;
        ReadOnlySpan<byte> quote = embeddedPacket[..Math.Min(embeddedPacket.Length, room)];
        int l4Length = 8 + quote.Length;
        byte protocol = v6 ? IpProto.Icmpv6 : IpProto.Icmp;
        int h = WriteIpHeader(buffer, v6, src, dst, protocol, l4Length, ttl);
        Span<byte> icmp = buffer.Slice(h, l4Length);
        icmp[0] = type;
        icmp[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], 0);
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], rest);
        quote.CopyTo(icmp[8..]);
        WriteTransportChecksum(buffer, v6, h, l4Length, protocol, checksumOffset: 2);
        return h + l4Length;
    }

    /// <summary>
    /// ICMPv6 Redirect (RFC 4861 §4.5) with hop limit 255 and, when <paramref name="redirectedPacket"/>
    /// is not empty, a Redirected Header option quoting it (padded to 8 bytes, at most 1280 in total).
    /// </summary>
    public static int Icmpv6Redirect(Span<byte> buffer, IpAddress src, IpAddress dst, IpAddress target,
        IpAddress destination, ReadOnlySpan<byte> redirectedPacket, byte code = 0, byte hopLimit = 255)
    {
        const int fixedLength = 40; // type, code, checksum, reserved, target, destination
        int room = Ipv6IcmpErrorMax - Ipv6HeaderLength - fixedLength - 8;
        ReadOnlySpan<byte> quote = redirectedPacket[..Math.Min(redirectedPacket.Length, room & ~7)];
        int optionLength = quote.IsEmpty ? 0 : 8 + ((quote.Length + 7) & ~7);
        int l4Length = fixedLength + optionLength;
        int h = WriteIpHeader(buffer, v6: true, src, dst, IpProto.Icmpv6, l4Length, hopLimit);
        Span<byte> icmp = buffer.Slice(h, l4Length);
        icmp.Clear();
        icmp[0] = 137;
        icmp[1] = code;
        target.WriteV6(icmp[8..]);
        destination.WriteV6(icmp[24..]);
        if (optionLength != 0)
        {
            icmp[fixedLength] = 4; // Redirected Header
            icmp[fixedLength + 1] = (byte)(optionLength / 8);
            quote.CopyTo(icmp[(fixedLength + 8)..]);
        }
        WriteTransportChecksum(buffer, v6: true, h, l4Length, IpProto.Icmpv6, checksumOffset: 2);
        return h + l4Length;
    }

    /// <summary>Any protocol number with a <paramref name="payloadLength"/>-byte zero (or fill) payload and no L4 checksum.</summary>
    public static int Generic(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, byte protocol, int payloadLength,
        byte payloadFill = 0, byte ttl = DefaultTtl)
    {
        int h = WriteIpHeader(buffer, v6, src, dst, protocol, payloadLength, ttl);
        buffer.Slice(h, payloadLength).Fill(payloadFill);
        return h + payloadLength;
    }

    /// <summary>Turns a built IPv4 packet into a fragment (offset in bytes, multiple of 8) and fixes the header checksum.</summary>
    public static void Ipv4SetFragment(Span<byte> packet, int offsetBytes, bool moreFragments)
    {
        if (offsetBytes % 8 != 0 || offsetBytes < 0 || offsetBytes > 0x1FFF * 8)
            throw new ArgumentOutOfRangeException(nameof(offsetBytes));
        BinaryPrimitives.WriteUInt16BigEndian(packet[6..], (ushort)((moreFragments ? 0x2000 : 0) | (offsetBytes / 8)));
        WriteIpv4HeaderChecksum(packet);
    }

    /// <summary>
    /// Inserts an extension header directly after the fixed IPv6 header of a <paramref name="length"/>-byte
    /// packet, so repeated calls build the chain last-to-first. Its body is zero; the size byte is
    /// encoded per type (AH in 4-byte units minus 2, others in 8-byte units minus 1). The L4 checksum
    /// stays valid: the pseudo-header names the upper-layer protocol and length, which do not change.
    /// </summary>
    public static int Ipv6InsertExtensionHeader(Span<byte> packet, int length, byte type, int headerLength)
    {
        if (headerLength < 8 || headerLength % (type == IpProto.Ah ? 4 : 8) != 0 || (type == IpProto.Ipv6Frag && headerLength != 8)
            || headerLength > (type == IpProto.Ah ? 257 * 4 : 256 * 8))
            throw new ArgumentOutOfRangeException(nameof(headerLength));
        int payload = BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) + headerLength;
        if (payload > ushort.MaxValue || packet.Length < length + headerLength)
            throw new ArgumentException("Packet too long or buffer too small.", nameof(packet));
        packet[Ipv6HeaderLength..length].CopyTo(packet[(Ipv6HeaderLength + headerLength)..]);
        Span<byte> ext = packet.Slice(Ipv6HeaderLength, headerLength);
        ext.Clear();
        ext[0] = packet[6];
        ext[1] = type switch
        {
            IpProto.Ah => (byte)(headerLength / 4 - 2),
            IpProto.Ipv6Frag => 0, // reserved; the fragment header is always 8 bytes
            _ => (byte)(headerLength / 8 - 1),
        };
        packet[6] = type;
        BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)payload);
        return length + headerLength;
    }

    /// <summary>Inserts a fragment header (offset in bytes, multiple of 8) after the fixed IPv6 header.</summary>
    public static int Ipv6InsertFragmentHeader(Span<byte> packet, int length, int offsetBytes, bool moreFragments, uint identification = 1)
    {
        if (offsetBytes % 8 != 0 || offsetBytes < 0 || offsetBytes > 0x1FFF * 8)
            throw new ArgumentOutOfRangeException(nameof(offsetBytes));
        int newLength = Ipv6InsertExtensionHeader(packet, length, IpProto.Ipv6Frag, 8);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(Ipv6HeaderLength + 2)..], (ushort)(offsetBytes | (moreFragments ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(packet[(Ipv6HeaderLength + 4)..], identification);
        return newLength;
    }

    /// <summary>Recomputes the IPv4 header checksum after a caller edited the header.</summary>
    public static void WriteIpv4HeaderChecksum(Span<byte> packet)
    {
        int ihl = (packet[0] & 0xF) * 4;
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(packet[10..], Checksums.InternetChecksum(packet[..ihl]));
    }

    /// <summary>Recomputes the TCP/UDP/ICMP/ICMPv6 checksum of a packet the parser accepts (after a caller edited it).</summary>
    public static void RewriteTransportChecksum(Span<byte> packet, in ParsedPacket p)
    {
        int offset = p.Protocol switch
        {
            IpProto.Tcp => 16,
            IpProto.Udp => 6,
            IpProto.Icmp or IpProto.Icmpv6 => 2,
            _ => throw new ArgumentException("No transport checksum for this protocol.", nameof(p)),
        };
        WriteTransportChecksum(packet, p.IsV6, p.L3HeaderLength, p.L4Length, p.Protocol, offset);
    }

    // Linux's tcp_options_write order and padding: MSS; SACK_PERM+TS together or NOP,NOP,TS;
    // NOP,NOP,SACK_PERM when there is no TS; NOP,WSCALE; NOP,NOP,SACK blocks.
    private static int WriteLinuxOptions(Span<byte> o, in TcpSpec spec, ReadOnlySpan<uint> sackEdges)
    {
        int n = 0;
        if (spec.Mss != 0)
        {
            o[n++] = 2;
            o[n++] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(o[n..], spec.Mss);
            n += 2;
        }
        if (spec.Timestamp)
        {
            if (spec.SackPermitted)
            {
                o[n++] = 4;
                o[n++] = 2;
            }
            else
            {
                o[n++] = 1;
                o[n++] = 1;
            }
            o[n++] = 8;
            o[n++] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(o[n..], spec.TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(o[(n + 4)..], spec.TsEcr);
            n += 8;
        }
        else if (spec.SackPermitted)
        {
            o[n++] = 1;
            o[n++] = 1;
            o[n++] = 4;
            o[n++] = 2;
        }
        if (spec.WindowScale >= 0)
        {
            o[n++] = 1;
            o[n++] = 3;
            o[n++] = 3;
            o[n++] = (byte)spec.WindowScale;
        }
        if (!sackEdges.IsEmpty)
        {
            if (n + 4 + sackEdges.Length * 4 > MaxTcpOptions)
                return MaxTcpOptions + 1;
            o[n++] = 1;
            o[n++] = 1;
            o[n++] = 5;
            o[n++] = (byte)(2 + sackEdges.Length * 4);
            foreach (uint edge in sackEdges)
            {
                BinaryPrimitives.WriteUInt32BigEndian(o[n..], edge);
                n += 4;
            }
        }
        return n;
    }

    private static int WriteIpHeader(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, byte protocol, int l4Length, byte ttl)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(l4Length);
        int h = v6 ? Ipv6HeaderLength : Ipv4HeaderLength;
        if ((v6 ? l4Length : h + l4Length) > ushort.MaxValue)
            throw new ArgumentException("Packet longer than the IP length field allows.", nameof(l4Length));
        if (buffer.Length < h + l4Length)
            throw new ArgumentException("Buffer too small for the packet.", nameof(buffer));

        if (v6)
        {
            BinaryPrimitives.WriteUInt32BigEndian(buffer, 0x6000_0000); // version 6, traffic class 0, flow label 0
            BinaryPrimitives.WriteUInt16BigEndian(buffer[4..], (ushort)l4Length);
            buffer[6] = protocol;
            buffer[7] = ttl;
            src.WriteV6(buffer[8..]);
            dst.WriteV6(buffer[24..]);
            return h;
        }
        buffer[0] = 0x45;
        buffer[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[2..], (ushort)(h + l4Length));
        BinaryPrimitives.WriteUInt32BigEndian(buffer[4..], 0); // id 0, no flags, offset 0
        buffer[8] = ttl;
        buffer[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(buffer[12..], src.V4);
        BinaryPrimitives.WriteUInt32BigEndian(buffer[16..], dst.V4);
        WriteIpv4HeaderChecksum(buffer);
        return h;
    }

    private static void WriteTransportChecksum(Span<byte> buffer, bool v6, int l3Length, int l4Length, byte protocol, int checksumOffset)
    {
        Span<byte> l4 = buffer.Slice(l3Length, l4Length);
        BinaryPrimitives.WriteUInt16BigEndian(l4[checksumOffset..], 0);
        // ICMPv4 has no pseudo-header; everything else we build does. Extension headers between the
        // IPv6 header and L4 do not matter: the pseudo-header reads only the fixed header's addresses.
        ulong acc = protocol == IpProto.Icmp ? 0 : Checksums.PseudoHeader(buffer, v6, protocol, l4Length);
        ushort sum = (ushort)~Checksums.Fold(Checksums.Accumulate(l4, acc));
        if (sum == 0 && protocol == IpProto.Udp)
            sum = 0xFFFF; // RFC 768: a computed zero is sent as all ones, zero means "no checksum"
        BinaryPrimitives.WriteUInt16BigEndian(l4[checksumOffset..], sum);
    }
}
