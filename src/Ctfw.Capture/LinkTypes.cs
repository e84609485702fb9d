namespace Ctfw.Capture;

/// <summary>LINKTYPE_* values (tcpdump.org/linktypes.html) that <see cref="LinkLayer"/> understands.</summary>
public static class LinkTypes
{
    /// <summary>BSD loopback: 4-byte address family in the capturing host's byte order.</summary>
    public const int Null = 0;
    public const int Ethernet = 1;
    /// <summary>DLT_RAW as numbered on some BSDs; same contents as <see cref="Raw"/>.</summary>
    public const int RawBsd12 = 12;
    /// <summary>DLT_RAW as numbered on OpenBSD; same contents as <see cref="Raw"/>.</summary>
    public const int RawBsd14 = 14;
    /// <summary>Bare IPv4 or IPv6 packet, version from the first nibble. What the recording harness writes.</summary>
    public const int Raw = 101;
    /// <summary>OpenBSD loopback: 4-byte address family in network byte order.</summary>
    public const int Loop = 108;
    public const int LinuxSll = 113;
    public const int Ipv4 = 228;
    public const int Ipv6 = 229;
    public const int Nflog = 239;
    public const int LinuxSll2 = 276;
}
