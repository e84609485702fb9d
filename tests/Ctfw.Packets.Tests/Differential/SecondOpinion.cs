using System.Buffers.Binary;
using System.Net;
using Ctfw.Packets;
using PacketDotNet;
using PacketDotNet.Utils;

namespace Ctfw.Packets.Tests.Differential;

/// <summary>
/// Parses one IP packet with both <see cref="PacketParser"/> and PacketDotNet (an independent
/// implementation, tests only) and compares every field both expose. Where ctfw rejects a packet,
/// PacketDotNet's view of the same bytes must corroborate the reason (e.g. its data offset really is
/// below 5) or PacketDotNet must fail too. The exclusions, each with its reason, are in
/// <see cref="Exclusion"/>; every excluded comparison is counted, so a test can see them.
/// </summary>
internal sealed class SecondOpinion
{
    private readonly List<string> _failures = [];
    private readonly Dictionary<string, int> _exclusions = new(StringComparer.Ordinal);
    private string _label = "";

    /// <summary>Packets given to both parsers.</summary>
    public int Packets { get; private set; }

    /// <summary>Packets ctfw accepted and whose fields were compared.</summary>
    public int Accepted { get; private set; }

    /// <summary>Packets ctfw rejected and PacketDotNet either rejected too or corroborated the reason.</summary>
    public int RejectedCorroborated { get; private set; }

    /// <summary>Single field comparisons made.</summary>
    public int FieldsCompared { get; private set; }

    public IReadOnlyList<string> Failures => _failures;

    public IReadOnlyDictionary<string, int> Exclusions => _exclusions;

    public string Summary =>
        $"{Packets} packets, {Accepted} accepted and compared ({FieldsCompared} fields), {RejectedCorroborated} rejected by both or corroborated; " +
        $"excluded: {(_exclusions.Count == 0 ? "none" : string.Join(", ", _exclusions.Select(e => $"{e.Key} ×{e.Value}")))}";

    public void AssertAgreement()
    {
        if (_failures.Count == 0)
            return;
        // One example per kind of disagreement (the message with its numbers taken out), most frequent first.
        IEnumerable<string> kinds = _failures
            .GroupBy(f => System.Text.RegularExpressions.Regex.Replace(f[(f.IndexOf(": ", StringComparison.Ordinal) + 2)..], "[0-9]+", "N"))
            .OrderByDescending(g => g.Count())
            .Select(g => $"×{g.Count()} {g.First()}");
        Assert.Fail($"{_failures.Count} disagreements ({Summary}):\n" + string.Join("\n", kinds.Take(40)));
    }

    public void Compare(ReadOnlySpan<byte> packet, string label)
    {
        Packets++;
        _label = label;
        InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket p);
        // PacketDotNet gets its own copy: it may write to it (see Corroborate).
        byte[] bytes = packet.ToArray();
        byte[] original = packet.ToArray();
        if (Environment.GetEnvironmentVariable("CTFW_DIFF_TRACE") is { } trace)
            File.WriteAllText(trace, $"{label} {Convert.ToHexString(bytes)}"); // the last packet, should PacketDotNet hang or crash
        IPPacket? ip = TryParseWithPacketDotNet(bytes, out Packet? l4, out string? error);
        if (reason == InvalidReason.None)
        {
            if (ip is null && p.CapturedLength < p.IpTotalLength)
            {
                // The IP length runs past the bytes: ctfw reads the headers that are there, as the
                // kernel does for a header-only capture; PacketDotNet indexes to the IP length and throws.
                Exclude("IP length beyond the captured bytes: PacketDotNet 1.4.8 throws");
                return;
            }
            if (ip is null)
            {
                Fail($"ctfw accepted, PacketDotNet failed: {error}");
                return;
            }
            Accepted++;
            CompareAccepted(bytes, p, ip, l4, error);
        }
        else
        {
            Corroborate(original, reason, p, ip, l4);
        }
    }

    /// <summary>
    /// PacketDotNet decodes lazily; the payload chain is forced here so a failure deep in it is
    /// PacketDotNet's answer for this packet, not an exception in the middle of a comparison. An IP
    /// header it read whose payload it then failed to decode comes back with <paramref name="l4"/>
    /// null and <paramref name="error"/> set.
    /// </summary>
    private static IPPacket? TryParseWithPacketDotNet(byte[] bytes, out Packet? l4, out string? error)
    {
        error = null;
        l4 = null;
        IPPacket? ip;
        try
        {
            ip = (bytes.Length == 0 ? 0 : bytes[0] >> 4) switch
            {
                4 => new IPv4Packet(new ByteArraySegment(bytes)),
                6 => new IPv6Packet(new ByteArraySegment(bytes)),
                _ => null,
            };
            if (ip is null)
            {
                error = "not IPv4 or IPv6";
                return null;
            }
            _ = ip.SourceAddress;
            _ = ip.DestinationAddress;
        }
        catch (Exception e) when (IsDecodeFailure(e))
        {
            error = $"{e.GetType().Name}: {e.Message}";
            return null;
        }
        try
        {
            l4 = ip.PayloadPacket;
            for (Packet? q = l4?.PayloadPacket; q is not null; q = q.PayloadPacket)
            {
            }
        }
        catch (Exception e) when (IsDecodeFailure(e))
        {
            l4 = null;
            error = $"{e.GetType().Name}: {e.Message}";
        }
        return ip;
    }

    private static bool IsDecodeFailure(Exception e) =>
        e is ArgumentException or IndexOutOfRangeException or InvalidOperationException or OverflowException or NullReferenceException;

    private void CompareAccepted(byte[] bytes, in ParsedPacket p, IPPacket ip, Packet? l4, string? l4Error)
    {
        Check("ip version", p.IpVersion, (int)ip.Version);
        CheckAddress("source address", p.Src, p.IsV6, ip.SourceAddress);
        CheckAddress("destination address", p.Dst, p.IsV6, ip.DestinationAddress);
        Check("ttl / hop limit", p.Ttl, ip.TimeToLive);
        if (ip is IPv4Packet v4)
        {
            Check("protocol", p.Protocol, (byte)ip.Protocol);
            Check("ipv4 header length", p.L3HeaderLength, v4.HeaderLength * 4);
            Check("ipv4 total length", p.IpTotalLength, v4.TotalLength);
            Check("ipv4 fragment offset", 0, v4.FragmentOffset);
            Check("ipv4 more fragments", p.IsFirstFragment ? 1 : 0, v4.FragmentFlags & 1);
        }
        else if (ip is IPv6Packet chain && chain.ExtensionHeaders.Count > 1)
        {
            // PacketDotNet 1.4.8 re-reads the first extension header's bytes for every later header
            // of the chain (hop-by-hop + destination options comes out as two 8-byte headers, the
            // second "followed by" destination options again), so its extension length and the L4
            // header it decodes are wrong for chains of two or more. Only the fixed header is compared.
            Check("ipv6 total length", p.IpTotalLength, IPv6Fields.HeaderLength + chain.PayloadLength);
            Exclude("ipv6 chain of 2+ extension headers: PacketDotNet 1.4.8 does not advance through the chain");
            return;
        }
        else if (ip is IPv6Packet && p.Protocol == ShimProtocol)
        {
            // Shim6 (140) is an extension header to PacketDotNet; the kernel's ipv6_skip_exthdr, and so
            // conntrack and ctfw, take it as the upper-layer protocol. (A bit flip of an SCTP recording
            // made one.)
            Check("ipv6 total length", p.IpTotalLength, IPv6Fields.HeaderLength + ((IPv6Packet)ip).PayloadLength);
            Exclude("ipv6 next header 140 (Shim6): an extension header to PacketDotNet, the protocol to the kernel");
            return;
        }
        else if (ip is IPv6Packet v6)
        {
            Check("protocol after the extension headers", p.Protocol, (byte)ip.Protocol);
            Check("ipv6 total length", p.IpTotalLength, IPv6Fields.HeaderLength + v6.PayloadLength);
            if (!Check("ipv6 header + extension headers length", p.L3HeaderLength, IPv6Fields.HeaderLength + v6.ExtensionHeadersLength))
                Fail("  PacketDotNet's chain: " + string.Join(", ", v6.ExtensionHeaders.Select(h => $"{h.Header} len {h.Length} extlen {h.HeaderExtensionLength} next {h.NextHeader}")));
            IPv6FragmentationExtensionHeader? fragment = v6.ExtensionHeaders.OfType<IPv6FragmentationExtensionHeader>().FirstOrDefault();
            if (fragment is not null)
            {
                Check("ipv6 fragment offset", 0, fragment.FragmentOffset);
                Check("ipv6 more fragments", p.IsFirstFragment ? 1 : 0, fragment.More ? 1 : 0);
            }
        }

        if (l4Error is not null)
        {
            if (p.CapturedLength < p.IpTotalLength)
                Exclude("IP length beyond the captured bytes: PacketDotNet 1.4.8 throws");
            else if (p.Protocol is IpProto.Tcp or IpProto.Udp or IpProto.Icmp or IpProto.Icmpv6)
                Fail($"ctfw accepted, PacketDotNet failed on the {p.Protocol} header: {l4Error}");
            else
                Exclude($"PacketDotNet failed decoding a protocol {p.Protocol} payload (ctfw reads no header for it): {l4Error[..l4Error.IndexOf(':', StringComparison.Ordinal)]}");
            return;
        }
        switch (p.Protocol)
        {
            case IpProto.Tcp when l4 is TcpPacket tcp:
                Check("tcp source port", p.SrcPort, tcp.SourcePort);
                Check("tcp destination port", p.DstPort, tcp.DestinationPort);
                Check("tcp seq", p.Seq, tcp.SequenceNumber);
                Check("tcp ack", p.AckSeq, tcp.AcknowledgmentNumber);
                Check("tcp flags", (byte)p.TcpFlags, tcp.Flags & 0xFF);
                Check("tcp window", p.Window, tcp.WindowSize);
                Check("tcp header length", p.TcpHeaderLength, tcp.DataOffset * 4);
                // ctfw's payload length comes from the IP length (header-only captures classify like
                // full packets); PacketDotNet's is what the buffer holds. They agree on what was captured.
                if (p.CapturedLength < p.IpTotalLength)
                    Exclude("tcp payload length: header-only capture (PacketDotNet's payload segment runs past the buffer)");
                else
                    Check("tcp payload length", p.TcpPayloadLength, tcp.PayloadData?.Length ?? 0);
                CompareTcpOptions(p, tcp);
                break;
            case IpProto.Udp when l4 is UdpPacket udp:
                Check("udp source port", p.SrcPort, udp.SourcePort);
                Check("udp destination port", p.DstPort, udp.DestinationPort);
                Check("udp length", p.UdpLength, udp.Length);
                Check("udp checksum", p.UdpChecksum, udp.Checksum);
                break;
            case IpProto.Icmp when !p.IsV6 && l4 is IcmpV4Packet icmp:
                Check("icmp type/code", p.IcmpType << 8 | p.IcmpCode, (ushort)icmp.TypeCode);
                Check("icmp id", p.IcmpId, icmp.Id);
                if (p.Inner.Present)
                    CompareInner(p, icmp.Data);
                break;
            case IpProto.Icmpv6 when p.IsV6 && l4 is IcmpV6Packet icmp6:
                Check("icmpv6 type", p.IcmpType, (byte)icmp6.Type);
                Check("icmpv6 code", p.IcmpCode, icmp6.Code);
                // PacketDotNet 1.4.8's IcmpV6Packet has no identifier property (only NDP subtypes
                // are decoded further), so the echo id is not compared for ICMPv6.
                Exclude("icmpv6 echo id: PacketDotNet exposes none");
                if (p.Inner.Present && p.IcmpType < 128)
                    CompareInner(p, bytes.AsSpan(p.L3HeaderLength + 8, p.CapturedLength - p.L3HeaderLength - 8).ToArray()); // no Data property on IcmpV6Packet
                else if (p.Inner.Present)
                    Exclude("icmpv6 redirect inner header: PacketDotNet does not decode the redirected-header option's packet");
                break;
            case IpProto.Tcp or IpProto.Udp or IpProto.Icmp or IpProto.Icmpv6:
                // ICMPv4 inside IPv6 or ICMPv6 inside IPv4 (ctfw reads them, the tracker rejects them),
                // or a first fragment PacketDotNet would not decode further.
                Exclude($"protocol {p.Protocol} in IPv{p.IpVersion}: PacketDotNet gave {l4?.GetType().Name ?? "no payload packet"}");
                break;
            default:
                // GRE, SCTP, UDPLite and unknown protocols: ctfw reads at most ports, PacketDotNet
                // decodes GRE differently (not ports); nothing in common to compare at L4.
                break;
        }
    }

    /// <summary>MSS, window scale, SACK-permitted and timestamps when the option area is well formed.</summary>
    private void CompareTcpOptions(in ParsedPacket p, TcpPacket tcp)
    {
        if (p.TcpOptions.Malformed)
        {
            Exclude("tcp options: malformed option area (ctfw stops where the kernel stops; PacketDotNet's reading of the rest is not defined)");
            return;
        }
        if ((p.TcpFlags & TcpFlags.Urg) != 0)
        {
            Exclude("tcp options with URG set: PacketDotNet 1.4.8 throws NotImplementedException for them");
            return;
        }
        if (HasEndOfOptionList(tcp.Options))
        {
            Exclude("tcp options with EOL (kind 0): PacketDotNet 1.4.8's OptionsCollection never returns");
            return;
        }
        List<PacketDotNet.Tcp.TcpOption> options;
        try
        {
            options = tcp.OptionsCollection ?? []; // null when the header has no options
        }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            Fail($"tcp options: ctfw read them, PacketDotNet threw {e.GetType().Name}");
            return;
        }
        // The kernel (and ctfw) honours an option only with its exact length (TCPOLEN_*), and the
        // last occurrence of a repeated one; PacketDotNet decodes any length, so filter to the same rule.
        var mss = options.OfType<PacketDotNet.Tcp.MaximumSegmentSizeOption>().LastOrDefault(o => o.Length == 4);
        var ws = options.OfType<PacketDotNet.Tcp.WindowScaleFactorOption>().LastOrDefault(o => o.Length == 3);
        var ts = options.OfType<PacketDotNet.Tcp.TimeStampOption>().LastOrDefault(o => o.Length == 10);
        bool sackOk = options.OfType<PacketDotNet.Tcp.SelectiveAcknowledgmentPermittedOption>().Any(o => o.Length == 2);
        if (mss is not null)
            Check("tcp mss", p.TcpOptions.Mss, mss.Value);
        Check("tcp window scale present", p.TcpOptions.HasWindowScale ? 1 : 0, ws is null ? 0 : 1);
        if (ws is not null)
            Check("tcp window scale (capped at 14)", p.TcpOptions.WindowScale, Math.Min((int)ws.ScaleFactor, 14));
        Check("tcp sack permitted", p.TcpOptions.SackPermitted ? 1 : 0, sackOk ? 1 : 0);
        Check("tcp timestamp present", p.TcpOptions.HasTimestamp ? 1 : 0, ts is null ? 0 : 1);
        if (ts is not null)
        {
            Check("tcp tsval", p.TcpOptions.TsVal, ts.Value);
            Check("tcp tsecr", p.TcpOptions.TsEcr, ts.EchoReply);
        }
    }

    /// <summary>
    /// Whether the option walk (kind, length, ...) meets an End of Option List. The kernel stops
    /// there; PacketDotNet 1.4.8 loops forever on it (seen with NOP,NOP,EOL,...), so such headers are
    /// not handed to its option parser.
    /// </summary>
    private static bool HasEndOfOptionList(byte[] options)
    {
        for (int i = 0; i < options.Length;)
        {
            switch (options[i])
            {
                case 0:
                    return true;
                case 1:
                    i++;
                    break;
                default:
                    if (i + 1 >= options.Length || options[i + 1] < 2)
                        return false; // malformed: ctfw flags it and the comparison is excluded before this
                    i += options[i + 1];
                    break;
            }
        }
        return false;
    }

    /// <summary>The packet quoted in an ICMP error: PacketDotNet parses it as an IP packet of the outer family.</summary>
    private void CompareInner(in ParsedPacket p, byte[] quoted)
    {
        IPPacket? inner = null;
        try
        {
            inner = p.IsV6 ? new IPv6Packet(new ByteArraySegment(quoted)) : new IPv4Packet(new ByteArraySegment(quoted));
        }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            Fail($"icmp error: ctfw read the quoted packet, PacketDotNet threw {e.GetType().Name}");
            return;
        }
        CheckAddress("inner source address", p.Inner.Src, p.IsV6, inner.SourceAddress);
        CheckAddress("inner destination address", p.Inner.Dst, p.IsV6, inner.DestinationAddress);
        Check("inner protocol", p.Inner.Protocol, (byte)inner.Protocol);
        Packet? l4;
        try
        {
            l4 = inner.PayloadPacket;
        }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            l4 = null;
        }
        if (l4 is TransportPacket t)
        {
            Check("inner source port", p.Inner.SrcId, t.SourcePort);
            Check("inner destination port", p.Inner.DstId, t.DestinationPort);
        }
        else if (p.Inner.Protocol is IpProto.Tcp or IpProto.Udp)
        {
            // RFC 792 quotes only 8 bytes of the inner L4 header; PacketDotNet needs a whole TCP header.
            Exclude("inner ports: quoted L4 header shorter than PacketDotNet decodes");
        }
    }

    private const byte ShimProtocol = 140;

    private void Corroborate(byte[] original, InvalidReason reason, in ParsedPacket p, IPPacket? ip, Packet? l4)
    {
        if (ip is null)
        {
            RejectedCorroborated++;
            return;
        }
        if (ip is IPv6Packet { ExtensionHeaders.Count: > 1 })
        {
            Exclude("ipv6 chain of 2+ extension headers: PacketDotNet 1.4.8 does not advance through the chain");
            return;
        }
        if (reason == InvalidReason.BadIpv4TotalLength && ip is IPv4Packet repaired && repaired.TotalLength != BinaryPrimitives.ReadUInt16BigEndian(original.AsSpan(2)))
        {
            // PacketDotNet 1.4.8 takes an IPv4 total length below the header length for a TSO
            // capture (which records 0) and rewrites the field, in its buffer, to the bytes present.
            Exclude("ipv4 total length below the header length: PacketDotNet 1.4.8 rewrites it to the buffer length");
            return;
        }
        bool? agrees = reason switch
        {
            InvalidReason.BadIpv4HeaderLength when ip is IPv4Packet v4 => v4.HeaderLength * 4 < 20 || v4.HeaderLength * 4 > original.Length,
            InvalidReason.BadIpv4TotalLength when ip is IPv4Packet v4 => v4.TotalLength < v4.HeaderLength * 4,
            InvalidReason.NonFirstFragment when ip is IPv4Packet v4 => v4.FragmentOffset != 0,
            InvalidReason.NonFirstFragment when ip is IPv6Packet v6 => v6.ExtensionHeaders.OfType<IPv6FragmentationExtensionHeader>().Any(f => f.FragmentOffset != 0),
            InvalidReason.BadIpv6PayloadLength when ip is IPv6Packet v6 => v6.PayloadLength == 0 || v6.ExtensionHeadersLength > v6.PayloadLength,
            InvalidReason.TcpBadDataOffset when l4 is TcpPacket tcp =>
                tcp.DataOffset * 4 < 20 || tcp.DataOffset * 4 > p.L4Length || tcp.DataOffset * 4 > p.CapturedLength - p.L3HeaderLength,
            InvalidReason.UdpBadLength when l4 is UdpPacket udp => udp.Length < 8 || udp.Length > p.L4Length,
            _ => null,
        };
        switch (agrees)
        {
            case true:
                RejectedCorroborated++;
                break;
            case false:
                Fail($"ctfw says {reason}, PacketDotNet's fields do not show it: {Convert.ToHexString(original)}");
                break;
            default:
                // Truncated headers, a truncated or malformed extension chain, an unreadable quoted
                // packet: PacketDotNet is lenient (it decodes what is there, or stops without a payload
                // packet) where ctfw must return INVALID as the kernel does.
                Exclude($"ctfw {reason}, PacketDotNet lenient");
                break;
        }
    }

    private bool Check(string field, long ctfw, long packetDotNet)
    {
        FieldsCompared++;
        if (ctfw == packetDotNet)
            return true;
        Fail($"{field}: ctfw {ctfw}, PacketDotNet {packetDotNet}");
        return false;
    }

    private void CheckAddress(string field, IpAddress ctfw, bool v6, IPAddress packetDotNet)
    {
        FieldsCompared++;
        Span<byte> mine = stackalloc byte[16];
        if (v6)
            ctfw.WriteV6(mine);
        else
            BinaryPrimitives.WriteUInt32BigEndian(mine, ctfw.V4);
        byte[] theirs = packetDotNet.GetAddressBytes();
        if (!mine[..(v6 ? 16 : 4)].SequenceEqual(theirs))
            Fail($"{field}: ctfw {ctfw.Format(v6)}, PacketDotNet {packetDotNet}");
    }

    private void Exclude(string what) => _exclusions[what] = _exclusions.GetValueOrDefault(what) + 1;

    private void Fail(string what)
    {
        if (_failures.Count < 1000)
            _failures.Add($"{_label}: {what}");
    }
}
