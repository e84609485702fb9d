namespace Ctfw.Packets;

/// <summary>
/// Everything conntrack needs from one IP packet, extracted by <see cref="PacketParser"/> in one
/// pass without allocating. Lengths come from the IP header (total / payload length), never from
/// the number of bytes captured, so header-only captures classify like full packets.
/// </summary>
public struct ParsedPacket
{
    // ---- L3 ----
    /// <summary>4 or 6.</summary>
    public byte IpVersion;
    /// <summary>Transport protocol after the IPv6 extension-header chain.</summary>
    public byte Protocol;
    public IpAddress Src;
    public IpAddress Dst;
    /// <summary>Bytes of IPv4 header (with options) or IPv6 header plus extension headers.</summary>
    public int L3HeaderLength;
    /// <summary>Bytes from the L4 header to the end of the packet, per the IP header.</summary>
    public int L4Length;
    /// <summary>Total packet length per the IP header (IPv4 total length; IPv6 40 + payload length).</summary>
    public int IpTotalLength;
    /// <summary>Bytes of the packet actually present in the buffer (may be less than IpTotalLength).</summary>
    public int CapturedLength;
    public byte Ttl;
    /// <summary>IPv4 MF set or IPv6 fragment header with offset 0 (first fragment of several).</summary>
    public bool IsFirstFragment;

    // ---- TCP / UDP ports, ICMP ids ----
    /// <summary>TCP/UDP/UDPLite/SCTP source port; ICMP/ICMPv6: the echo identifier (as in <see cref="InnerTuple"/>); otherwise 0.</summary>
    public ushort SrcPort;
    /// <summary>TCP/UDP/UDPLite/SCTP destination port; ICMP/ICMPv6: type &lt;&lt; 8 | code; otherwise 0.</summary>
    public ushort DstPort;

    // ---- TCP ----
    public uint Seq;
    public uint AckSeq;
    public ushort Window;
    public TcpFlags TcpFlags;
    /// <summary>TCP header length in bytes (doff × 4).</summary>
    public byte TcpHeaderLength;
    /// <summary>Payload bytes after the TCP header, from the IP length.</summary>
    public int TcpPayloadLength;
    public TcpOptions TcpOptions;

    // ---- UDP ----
    public ushort UdpLength;
    public ushort UdpChecksum;

    // ---- ICMP / ICMPv6 ----
    public byte IcmpType;
    public byte IcmpCode;
    public ushort IcmpId;
    /// <summary>For ICMP errors (and ICMPv6 redirects with a redirected header): the embedded packet.</summary>
    public InnerTuple Inner;

    public readonly bool IsV6 => IpVersion == 6;
}

/// <summary>TCP options as the kernel reads them (kernel-conntrack.md §4.9).</summary>
public struct TcpOptions
{
    public bool HasWindowScale;
    /// <summary>Window scale shift, already capped at 14 like the kernel.</summary>
    public byte WindowScale;
    public bool SackPermitted;
    public ushort Mss;
    public bool HasTimestamp;
    public uint TsVal;
    public uint TsEcr;
    /// <summary>Number of blocks in the first SACK option (0 when none).</summary>
    public byte SackBlockCount;
    /// <summary>
    /// The kernel's <c>tcp_sack</c> result: the latest (by sequence order) of the ACK number and the
    /// right edges of the first well-formed SACK option; equal to the ACK number when there is none
    /// or when the option area is exactly NOP,NOP,TS.
    /// </summary>
    public uint SackLatest;
    /// <summary>An option had a length that ran off the header or was below 2; parsing stopped there, as in the kernel.</summary>
    public bool Malformed;
}

/// <summary>The tuple of the packet embedded in an ICMP error, as sent (not yet inverted).</summary>
public struct InnerTuple
{
    public bool Present;
    public byte Protocol;
    public IpAddress Src;
    public IpAddress Dst;
    /// <summary>Source port, or ICMP echo identifier.</summary>
    public ushort SrcId;
    /// <summary>Destination port, or (type &lt;&lt; 8 | code) for ICMP.</summary>
    public ushort DstId;
}
