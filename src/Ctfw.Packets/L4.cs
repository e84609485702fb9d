namespace Ctfw.Packets;

/// <summary>IP protocol numbers the tracker distinguishes.</summary>
public static class IpProto
{
    public const byte HopByHop = 0;
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Gre = 47;
    public const byte Ipv6Route = 43;
    public const byte Ipv6Frag = 44;
    public const byte Esp = 50;
    public const byte Ah = 51;
    public const byte Icmpv6 = 58;
    public const byte Ipv6NoNext = 59;
    public const byte Ipv6DestOpts = 60;
    public const byte Sctp = 132;
    public const byte UdpLite = 136;
}

/// <summary>TCP header flag bits (byte 13 of the header).</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}
