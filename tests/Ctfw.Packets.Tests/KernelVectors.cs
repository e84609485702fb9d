namespace Ctfw.Packets.Tests;

/// <summary>
/// Packets written by Linux 6.18 to a TUN device in a private network namespace (10.99.0.1 /
/// fd00:99::1 local, 10.99.0.2 / fd00:99::2 the peer). A TUN device has no checksum offload, so the
/// kernel computed every checksum in software: these are ground truth for layout and checksums.
/// </summary>
internal static class KernelVectors
{
    /// <summary>connect() to 10.99.0.2:80: mss 1460, sackOK, TS val 0x3a6331a6 ecr 0, nop, wscale 10.</summary>
    public const string SynV4 =
        "4500003cae1c4000400677d70a6300010a630002e2c60050d943f18000000000a002faf01e5f0000020405b40402080a3a6331a6000000000103030a";

    /// <summary>connect() to [fd00:99::2]:80: mss 1440, sackOK, TS, nop, wscale 10.</summary>
    public const string SynV6 =
        "600a192600280640fd000099000000000000000000000001fd000099000000000000000000000002ad0a0050dd1ccecd00000000a002fd20aa7f0000020405a00402080a3566168f000000000103030a";

    /// <summary>sendto("hello") to 10.99.0.2:5353.</summary>
    public const string UdpV4 = "45000021db93400040114a700a6300010a630002965d14e9000dfbf268656c6c6f";

    /// <summary>sendto("hello6") to [fd00:99::2]:5353.</summary>
    public const string UdpV6 =
        "60097e84000e1140fd000099000000000000000000000001fd000099000000000000000000000002c00e14e9000eeb9b68656c6c6f36";

    /// <summary>Port unreachable for a UDP datagram 10.99.0.2:40000 → 10.99.0.1:9 with 20 bytes of 'x'.</summary>
    public const string PortUnreachableV4 =
        "45c0004c527a0000400112af0a6300010a630002030311f3000000004500003000010000401165f40a6300020a6300019c400009001c99ef7878787878787878787878787878787878787878";

    /// <summary>ICMPv6 port unreachable for UDP [fd00:99::2]:40000 → [fd00:99::1]:9 with 20 bytes of 'y'.</summary>
    public const string PortUnreachableV6 =
        "60017d49004c3a40fd000099000000000000000000000001fd0000990000000000000000000000020104920f0000000060000000001c1140fd000099000000000000000000000002fd0000990000000000000000000000019c400009001ca9777979797979797979797979797979797979797979";

    /// <summary>Echo reply to id 0x1234 seq 7 "ping".</summary>
    public const string EchoReplyV4 = "45000020527b00004001139a0a6300010a63000200000ef41234000770696e67";

    /// <summary>ICMPv6 echo reply to id 0x4321 seq 9 "ping6".</summary>
    public const string EchoReplyV6 =
        "60033e22000d3a40fd000099000000000000000000000001fd00009900000000000000000000000281002b864321000970696e6736";

    /// <summary>RST+ACK answering a SYN 10.99.0.2:40000 → 10.99.0.1:9 seq 1000.</summary>
    public const string RstV4 = "4500002800004000400626080a6300010a63000200099c4000000000000003e950140000fad50000";

    /// <summary>Router solicitation the kernel sent when the interface came up.</summary>
    public const string RouterSolicitation =
        "6000000000083afffe80000000000000858d2e3b5e8e94cbff0200000000000000000000000000028500d61400000000";

    public static byte[] Bytes(string hex) => Convert.FromHexString(hex);
}
