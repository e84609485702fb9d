using System.Buffers.Binary;
using System.Globalization;
using Ctfw.Packets;

namespace Ctfw.Rules;

/// <summary>
/// The text the kernel's LOG target writes for a packet (net/netfilter/nf_log_syslog.c:
/// <c>nf_log_dump_packet_common</c>, <c>dump_mac_header</c>, <c>dump_ipv4_packet</c>,
/// <c>dump_ipv6_packet</c>, <c>nf_log_dump_tcp_header</c>, <c>nf_log_dump_udp_header</c>), field for
/// field and with its quirks: it reads the raw bytes, not the parse; every field ends with a space,
/// so the line does too; IPv6 addresses are uncompressed (%pI6); ICMP errors show the quoted packet
/// in brackets, once; truncated headers give "INCOMPLETE [n bytes]" or "TRUNCATED". Missing: the
/// PHYSIN/PHYSOUT of bridges, UID/GID (--log-uid) and --log-macdecode. The syslog priority is not
/// part of the text (<see cref="LogOptions.Level"/>). Used only when a LOG rule matched.
/// </summary>
public static class LogFormatter
{
    /// <summary>The kernel's buffer (S_SIZE, 1024 − sizeof(unsigned int)); longer lines are cut there as it cuts them.</summary>
    public const int MaxLineLength = 1020;

    public static string Format(in PacketFacts facts, LogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Span<char> buffer = stackalloc char[MaxLineLength];
        int length = Format(buffer, facts, options);
        return new string(buffer[..length]);
    }

    /// <summary>Writes the line into <paramref name="destination"/> (cut at its length or <see cref="MaxLineLength"/>); returns the characters written.</summary>
    public static int Format(Span<char> destination, in PacketFacts facts, LogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var w = new LineWriter(destination[..Math.Min(destination.Length, MaxLineLength)]);
        w.Add(options.Prefix);
        w.Add("IN=");
        w.Add(facts.In);
        w.Add(" OUT=");
        w.Add(facts.Out);
        w.Add(" ");
        if (!facts.In.IsNone)
        {
            // dump_mac_header's fallback (no --log-macdecode): the link header as received, if the device has one.
            w.Add("MAC=");
            ReadOnlySpan<byte> mac = facts.MacHeader;
            for (int i = 0; i < mac.Length; i++)
            {
                if (i > 0)
                    w.Add(":");
                w.Hex(mac[i], 2, upper: false);
            }
            w.Add(" ");
        }
        ReadOnlySpan<byte> skb = SkbData(facts.Bytes);
        if (facts.Packet.IpVersion == 6 || (skb.Length > 0 && skb[0] >> 4 == 6))
            DumpIpv6(ref w, skb, 0, recurse: true, options.Flags, facts.Mark);
        else
            DumpIpv4(ref w, skb, 0, options.Flags, facts.Mark);
        return w.Length;
    }

    /// <summary>What skb->len covers: the IP packet without link padding past the IP length (ip_rcv/ip6_rcv trim it).</summary>
    private static ReadOnlySpan<byte> SkbData(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 4 && bytes[0] >> 4 == 4)
        {
            int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
            return total >= 20 && total < bytes.Length ? bytes[..total] : bytes;
        }
        if (bytes.Length >= 6 && bytes[0] >> 4 == 6)
        {
            int total = 40 + BinaryPrimitives.ReadUInt16BigEndian(bytes[4..]);
            return total < bytes.Length ? bytes[..total] : bytes;
        }
        return bytes;
    }

    private static void DumpIpv4(ref LineWriter w, ReadOnlySpan<byte> skb, int iphoff, LogFlags flags, uint mark)
    {
        if (iphoff + 20 > skb.Length)
        {
            w.Add("TRUNCATED");
            return;
        }
        ReadOnlySpan<byte> ih = skb[iphoff..];
        w.Add("SRC=");
        w.Ipv4(ih[12..]);
        w.Add(" DST=");
        w.Ipv4(ih[16..]);
        w.Add(" LEN=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ih[2..]));
        w.Add(" TOS=0x");
        w.Hex((uint)(ih[1] & 0x1E), 2, upper: true); // IPTOS_TOS_MASK
        w.Add(" PREC=0x");
        w.Hex((uint)(ih[1] & 0xE0), 2, upper: true); // IPTOS_PREC_MASK
        w.Add(" TTL=");
        w.Dec(ih[8]);
        w.Add(" ID=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ih[4..]));
        w.Add(" ");
        int frag = BinaryPrimitives.ReadUInt16BigEndian(ih[6..]);
        if ((frag & 0x8000) != 0)
            w.Add("CE ");
        if ((frag & 0x4000) != 0)
            w.Add("DF ");
        if ((frag & 0x2000) != 0)
            w.Add("MF ");
        int fragOffset = frag & 0x1FFF;
        if (fragOffset != 0)
        {
            w.Add("FRAG:");
            w.Dec((uint)fragOffset);
            w.Add(" ");
        }
        int ihl = (ih[0] & 0xF) * 4;
        if ((flags & LogFlags.IpOptions) != 0 && ihl > 20)
        {
            if (iphoff + ihl > skb.Length)
            {
                w.Add("TRUNCATED");
                return;
            }
            w.Add("OPT (");
            w.HexBytes(ih[20..ihl]);
            w.Add(") ");
        }

        int offset = iphoff + ihl;
        switch (ih[9])
        {
            case IpProto.Tcp:
                if (DumpTcp(ref w, skb, fragOffset != 0, offset, flags))
                    return;
                break;
            case IpProto.Udp or IpProto.UdpLite:
                if (DumpUdp(ref w, skb, ih[9], fragOffset != 0, offset))
                    return;
                break;
            case IpProto.Icmp:
                DumpIcmpv4(ref w, skb, iphoff, offset, fragOffset != 0, flags, mark);
                break;
            case IpProto.Ah:
                if (fragOffset != 0)
                    break;
                w.Add("PROTO=AH ");
                if (offset + 12 > skb.Length) // sizeof(struct ip_auth_hdr)
                {
                    Incomplete(ref w, skb.Length - offset);
                    break;
                }
                w.Add("SPI=0x");
                w.Hex(BinaryPrimitives.ReadUInt32BigEndian(skb[(offset + 4)..]), 0, upper: false);
                w.Add(" ");
                break;
            case IpProto.Esp:
                w.Add("PROTO=ESP ");
                if (fragOffset != 0)
                    break;
                if (offset + 8 > skb.Length) // sizeof(struct ip_esp_hdr)
                {
                    Incomplete(ref w, skb.Length - offset);
                    break;
                }
                w.Add("SPI=0x");
                w.Hex(BinaryPrimitives.ReadUInt32BigEndian(skb[offset..]), 0, upper: false);
                w.Add(" ");
                break;
            default:
                w.Add("PROTO=");
                w.Dec(ih[9]);
                w.Add(" ");
                break;
        }
        if (iphoff == 0 && mark != 0)
        {
            w.Add("MARK=0x");
            w.Hex(mark, 0, upper: false);
            w.Add(" ");
        }
    }

    // required_len[] of dump_ipv4_packet: bytes an ICMP type needs before its fields are printed.
    private static int IcmpRequiredLength(byte type) => type switch
    {
        0 or 8 => 4,
        3 or 4 or 5 or 11 or 12 => 8 + 20,
        13 or 14 => 20,
        17 or 18 => 12,
        _ => 0,
    };

    private static void DumpIcmpv4(ref LineWriter w, ReadOnlySpan<byte> skb, int iphoff, int offset, bool fragment, LogFlags flags, uint mark)
    {
        w.Add("PROTO=ICMP ");
        if (fragment)
            return;
        if (offset + 8 > skb.Length) // sizeof(struct icmphdr)
        {
            Incomplete(ref w, skb.Length - offset);
            return;
        }
        ReadOnlySpan<byte> ich = skb[offset..];
        byte type = ich[0], code = ich[1];
        w.Add("TYPE=");
        w.Dec(type);
        w.Add(" CODE=");
        w.Dec(code);
        w.Add(" ");
        int required = IcmpRequiredLength(type);
        if (required != 0 && skb.Length - offset < required)
        {
            Incomplete(ref w, skb.Length - offset);
            return;
        }
        switch (type)
        {
            case 0 or 8:
                w.Add("ID=");
                w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ich[4..]));
                w.Add(" SEQ=");
                w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ich[6..]));
                w.Add(" ");
                break;
            case 12:
                w.Add("PARAMETER=");
                w.Dec(ich[4]);
                w.Add(" ");
                break;
            case 3 or 4 or 5 or 11:
                if (type == 5)
                {
                    w.Add("GATEWAY=");
                    w.Ipv4(ich[4..]);
                    w.Add(" ");
                }
                if (iphoff == 0) // only recurse once
                {
                    w.Add("[");
                    DumpIpv4(ref w, skb, offset + 8, flags, mark);
                    w.Add("] ");
                }
                if (type == 3 && code == 4)
                {
                    w.Add("MTU=");
                    w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ich[6..]));
                    w.Add(" ");
                }
                break;
        }
    }

    /// <summary>nf_log_dump_tcp_header; true when the caller must stop (the kernel's return 1).</summary>
    private static bool DumpTcp(ref LineWriter w, ReadOnlySpan<byte> skb, bool fragment, int offset, LogFlags flags)
    {
        w.Add("PROTO=TCP ");
        if (fragment)
            return false;
        if (offset + 20 > skb.Length)
        {
            Incomplete(ref w, skb.Length - offset);
            return true;
        }
        ReadOnlySpan<byte> th = skb[offset..];
        w.Add("SPT=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(th));
        w.Add(" DPT=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(th[2..]));
        w.Add(" ");
        if ((flags & LogFlags.TcpSequence) != 0)
        {
            w.Add("SEQ=");
            w.Dec(BinaryPrimitives.ReadUInt32BigEndian(th[4..]));
            w.Add(" ACK=");
            w.Dec(BinaryPrimitives.ReadUInt32BigEndian(th[8..]));
            w.Add(" ");
        }
        w.Add("WINDOW=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(th[14..]));
        w.Add(" RES=0x");
        w.Hex((uint)((th[12] & 0x0F) << 2), 2, upper: false); // (flag word & TCP_RESERVED_BITS) >> 22
        w.Add(" ");
        byte f = th[13];
        if ((f & 0x80) != 0)
            w.Add("CWR ");
        if ((f & 0x40) != 0)
            w.Add("ECE ");
        if ((f & 0x20) != 0)
            w.Add("URG ");
        if ((f & 0x10) != 0)
            w.Add("ACK ");
        if ((f & 0x08) != 0)
            w.Add("PSH ");
        if ((f & 0x04) != 0)
            w.Add("RST ");
        if ((f & 0x02) != 0)
            w.Add("SYN ");
        if ((f & 0x01) != 0)
            w.Add("FIN ");
        w.Add("URGP=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(th[18..]));
        w.Add(" ");
        int doff = (th[12] >> 4) * 4;
        if ((flags & LogFlags.TcpOptions) != 0 && doff > 20)
        {
            if (offset + doff > skb.Length)
            {
                w.Add("OPT (TRUNCATED)");
                return true;
            }
            w.Add("OPT (");
            w.HexBytes(th[20..doff]);
            w.Add(") ");
        }
        return false;
    }

    private static bool DumpUdp(ref LineWriter w, ReadOnlySpan<byte> skb, byte protocol, bool fragment, int offset)
    {
        w.Add(protocol == IpProto.Udp ? "PROTO=UDP " : "PROTO=UDPLITE ");
        if (fragment)
            return false;
        if (offset + 8 > skb.Length)
        {
            Incomplete(ref w, skb.Length - offset);
            return true;
        }
        w.Add("SPT=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(skb[offset..]));
        w.Add(" DPT=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(skb[(offset + 2)..]));
        w.Add(" LEN=");
        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(skb[(offset + 4)..]));
        w.Add(" ");
        return false;
    }

    // nf_ip6_ext_hdr: the headers dump_ipv6_packet walks through.
    private static bool IsExtensionHeader(byte h) =>
        h is IpProto.HopByHop or IpProto.Ipv6Route or IpProto.Ipv6Frag or IpProto.Esp or IpProto.Ah or IpProto.Ipv6NoNext or IpProto.Ipv6DestOpts;

    private static void DumpIpv6(ref LineWriter w, ReadOnlySpan<byte> skb, int ip6hoff, bool recurse, LogFlags flags, uint mark)
    {
        if (ip6hoff + 40 > skb.Length)
        {
            w.Add("TRUNCATED");
            return;
        }
        ReadOnlySpan<byte> ih = skb[ip6hoff..];
        w.Add("SRC=");
        w.Ipv6(ih[8..]);
        w.Add(" DST=");
        w.Ipv6(ih[24..]);
        uint first = BinaryPrimitives.ReadUInt32BigEndian(ih);
        w.Add(" LEN=");
        w.Dec((uint)BinaryPrimitives.ReadUInt16BigEndian(ih[4..]) + 40);
        w.Add(" TC=");
        w.Dec((first & 0x0FF0_0000) >> 20);
        w.Add(" HOPLIMIT=");
        w.Dec(ih[7]);
        w.Add(" FLOWLBL=");
        w.Dec(first & 0x000F_FFFF);
        w.Add(" ");

        bool ipOptions = (flags & LogFlags.IpOptions) != 0;
        bool fragment = false;
        int ptr = ip6hoff + 40;
        byte current = ih[6];
        while (current != IpProto.Ipv6NoNext && IsExtensionHeader(current))
        {
            if (ptr + 2 > skb.Length)
            {
                w.Add("TRUNCATED");
                return;
            }
            ReadOnlySpan<byte> hp = skb[ptr..];
            if (ipOptions)
                w.Add("OPT ( ");
            int headerLength;
            switch (current)
            {
                case IpProto.Ipv6Frag:
                {
                    w.Add("FRAG:");
                    if (ptr + 8 > skb.Length)
                    {
                        w.Add("TRUNCATED ");
                        return;
                    }
                    int fragOff = BinaryPrimitives.ReadUInt16BigEndian(hp[2..]);
                    w.Dec((uint)(fragOff & 0xFFF8));
                    w.Add(" ");
                    if ((fragOff & 1) != 0)
                        w.Add("INCOMPLETE ");
                    w.Add("ID:");
                    w.Hex(BinaryPrimitives.ReadUInt32BigEndian(hp[4..]), 8, upper: false);
                    w.Add(" ");
                    if ((fragOff & 0xFFF8) != 0)
                        fragment = true;
                    headerLength = 8;
                    break;
                }
                case IpProto.Ipv6DestOpts or IpProto.Ipv6Route or IpProto.HopByHop:
                    if (fragment)
                    {
                        if (ipOptions)
                            w.Add(")");
                        return;
                    }
                    headerLength = (hp[1] + 1) * 8; // ipv6_optlen
                    break;
                case IpProto.Ah:
                    if (ipOptions)
                    {
                        w.Add("AH ");
                        if (fragment)
                        {
                            w.Add(")");
                            return;
                        }
                        if (ptr + 12 > skb.Length)
                        {
                            Incomplete(ref w, skb.Length - ptr, closing: ")");
                            return;
                        }
                        w.Add("SPI=0x");
                        w.Hex(BinaryPrimitives.ReadUInt32BigEndian(hp[4..]), 0, upper: false);
                        w.Add(" ");
                    }
                    headerLength = (hp[1] + 2) * 4; // ipv6_authlen
                    break;
                case IpProto.Esp:
                    if (ipOptions)
                    {
                        w.Add("ESP ");
                        if (fragment)
                        {
                            w.Add(")");
                            return;
                        }
                        if (ptr + 8 > skb.Length)
                        {
                            Incomplete(ref w, skb.Length - ptr, closing: ")");
                            return;
                        }
                        w.Add("SPI=0x");
                        w.Hex(BinaryPrimitives.ReadUInt32BigEndian(hp), 0, upper: false);
                        w.Add(" )");
                    }
                    return;
                default:
                    w.Add("Unknown Ext Hdr ");
                    w.Dec(current);
                    return;
            }
            if (ipOptions)
                w.Add(") ");
            current = hp[0];
            ptr += headerLength;
        }

        switch (current)
        {
            case IpProto.Tcp:
                if (DumpTcp(ref w, skb, fragment, ptr, flags))
                    return;
                break;
            case IpProto.Udp or IpProto.UdpLite:
                if (DumpUdp(ref w, skb, current, fragment, ptr))
                    return;
                break;
            case IpProto.Icmpv6:
            {
                w.Add("PROTO=ICMPv6 ");
                if (fragment)
                    break;
                if (ptr + 8 > skb.Length) // sizeof(struct icmp6hdr)
                {
                    Incomplete(ref w, skb.Length - ptr);
                    return;
                }
                ReadOnlySpan<byte> ic = skb[ptr..];
                w.Add("TYPE=");
                w.Dec(ic[0]);
                w.Add(" CODE=");
                w.Dec(ic[1]);
                w.Add(" ");
                switch (ic[0])
                {
                    case 128 or 129:
                        w.Add("ID=");
                        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ic[4..]));
                        w.Add(" SEQ=");
                        w.Dec(BinaryPrimitives.ReadUInt16BigEndian(ic[6..]));
                        w.Add(" ");
                        break;
                    case 1 or 2 or 3 or 4:
                        if (ic[0] == 4)
                        {
                            w.Add("POINTER=");
                            w.Hex(BinaryPrimitives.ReadUInt32BigEndian(ic[4..]), 8, upper: false);
                            w.Add(" ");
                        }
                        if (recurse)
                        {
                            w.Add("[");
                            DumpIpv6(ref w, skb, ptr + 8, recurse: false, flags, mark);
                            w.Add("] ");
                        }
                        if (ic[0] == 2)
                        {
                            w.Add("MTU=");
                            w.Dec(BinaryPrimitives.ReadUInt32BigEndian(ic[4..]));
                            w.Add(" ");
                        }
                        break;
                }
                break;
            }
            default:
                w.Add("PROTO=");
                w.Dec(current);
                w.Add(" ");
                break;
        }
        if (recurse && mark != 0)
        {
            w.Add("MARK=0x");
            w.Hex(mark, 0, upper: false);
            w.Add(" ");
        }
    }

    private static void Incomplete(ref LineWriter w, int bytes, string closing = "")
    {
        w.Add("INCOMPLETE [");
        w.Dec(unchecked((uint)bytes)); // "%u" of an unsigned difference, as the kernel prints it
        w.Add(" bytes] ");
        w.Add(closing);
    }

    /// <summary>Appends to a fixed span and silently stops when it is full, like nf_log_buf_add at S_SIZE.</summary>
    private ref struct LineWriter
    {
        private readonly Span<char> _buffer;
        private int _length;
        private bool _full;

        public LineWriter(Span<char> buffer) => _buffer = buffer;

        public readonly int Length => _length;

        public void Add(scoped ReadOnlySpan<char> text)
        {
            if (_full)
                return;
            if (text.Length > _buffer.Length - _length)
            {
                text[..(_buffer.Length - _length)].CopyTo(_buffer[_length..]);
                _length = _buffer.Length;
                _full = true;
                return;
            }
            text.CopyTo(_buffer[_length..]);
            _length += text.Length;
        }

        public void Add(IfName name)
        {
            Span<byte> bytes = stackalloc byte[16];
            int n = name.CopyTo(bytes);
            Span<char> chars = stackalloc char[16];
            for (int i = 0; i < n; i++)
                chars[i] = (char)bytes[i];
            Add(chars[..n]);
        }

        public void Dec(uint value)
        {
            Span<char> digits = stackalloc char[10];
            value.TryFormat(digits, out int n, default, CultureInfo.InvariantCulture);
            Add(digits[..n]);
        }

        /// <summary>Hex with at least <paramref name="minDigits"/> digits (0: as many as needed, like %x).</summary>
        public void Hex(uint value, int minDigits, bool upper)
        {
            Span<char> digits = stackalloc char[8];
            string format = (minDigits, upper) switch
            {
                (2, true) => "X2",
                (2, false) => "x2",
                (4, _) => "x4",
                (8, _) => "x8",
                _ => "x",
            };
            value.TryFormat(digits, out int n, format, CultureInfo.InvariantCulture);
            Add(digits[..n]);
        }

        public void HexBytes(ReadOnlySpan<byte> bytes)
        {
            foreach (byte b in bytes)
                Hex(b, 2, upper: true);
        }

        public void Ipv4(ReadOnlySpan<byte> a)
        {
            Dec(a[0]);
            Add(".");
            Dec(a[1]);
            Add(".");
            Dec(a[2]);
            Add(".");
            Dec(a[3]);
        }

        /// <summary>%pI6: eight groups of four lower-case hex digits, never compressed.</summary>
        public void Ipv6(ReadOnlySpan<byte> a)
        {
            for (int i = 0; i < 16; i += 2)
            {
                if (i > 0)
                    Add(":");
                Hex(BinaryPrimitives.ReadUInt16BigEndian(a[i..]), 4, upper: false);
            }
        }
    }
}
