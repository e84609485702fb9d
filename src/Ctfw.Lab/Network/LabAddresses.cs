using System.Net;
using Ctfw.Packets;

namespace Ctfw.Lab.Network;

/// <summary>Which end of the lab a crafted packet leaves from.</summary>
public enum Side : byte
{
    /// <summary>The client namespace; its packets enter the gateway on the client-facing veth.</summary>
    Client,
    /// <summary>The server namespace.</summary>
    Server,
}

/// <summary>
/// The lab's fixed addressing. Scenarios are written against these constants so that a recording
/// can be rebuilt and replayed without a lab.
/// <code>
///   client ns               gateway ns (conntrack, NFLOG)               server ns
///   vc 10.99.1.2/24  ─veth─  vgc 10.99.1.1   vgs 10.99.2.1  ─veth─  vs 10.99.2.2/24
///      fd99:1::2/64             fd99:1::1       fd99:2::1              fd99:2::2/64
/// </code>
/// </summary>
public static class LabAddresses
{
    public const string ClientV4 = "10.99.1.2";
    public const string GatewayClientV4 = "10.99.1.1";
    public const string GatewayServerV4 = "10.99.2.1";
    public const string ServerV4 = "10.99.2.2";
    public const string ClientV6 = "fd99:1::2";
    public const string GatewayClientV6 = "fd99:1::1";
    public const string GatewayServerV6 = "fd99:2::1";
    public const string ServerV6 = "fd99:2::2";

    public static IpAddress Of(Side side, bool v6) => Parse(side == Side.Client
        ? (v6 ? ClientV6 : ClientV4)
        : (v6 ? ServerV6 : ServerV4));

    public static IpAddress Peer(Side side, bool v6) => Of(side == Side.Client ? Side.Server : Side.Client, v6);

    public static IPAddress ToIPAddress(IpAddress address, bool v6)
    {
        Span<byte> bytes = stackalloc byte[16];
        if (v6)
        {
            address.WriteV6(bytes);
            return new IPAddress(bytes);
        }
        uint v = address.V4;
        return new IPAddress([(byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v]);
    }

    private static IpAddress Parse(string text) =>
        IpAddress.TryParse(text, out IpAddress a, out _) ? a : throw new FormatException(text);
}
