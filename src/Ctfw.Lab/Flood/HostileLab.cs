using System.Net;
using System.Net.Sockets;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Flood;

/// <summary>
/// The hostile-load suite's client / gateway / server namespaces (<c>ctfwh-&lt;pid&gt;-&lt;n&gt;-{c,g,s}</c>),
/// IPv4 and IPv6, default offloads, forwarding on in the gateway. The gateway routes the flood's
/// source networks (<see cref="FloodNetworkV4"/>, <see cref="FloodNetworkV6"/>) back to the client
/// side, so the server's SYN-ACKs to forged sources cross the gateway as replies (and fill its table
/// as the kernel's would) before the client drops them.
/// <code>
///   client ns                 gateway ns                          server ns
///   hc 10.81.1.2/24  ─veth─  hgc 10.81.1.1   hgs 10.82.1.1  ─veth─  hs 10.82.1.2/24
///      fd81:1::2/64             fd81:1::1       fd82:1::1              fd82:1::2/64
/// </code>
/// The addresses are fixed: every lab has namespaces of its own. Deleting the namespaces undoes
/// everything (rules, queues, per-namespace sysctls, processes inside); see <see cref="NamespaceLab"/>.
/// </summary>
public sealed class HostileLab : NamespaceLab
{
    public const string Prefix = "ctfwh-";

    public const string ClientDevice = "hc";
    public const string GatewayClientDevice = "hgc";
    public const string GatewayServerDevice = "hgs";
    public const string ServerDevice = "hs";

    /// <summary>Random sources of the IPv4 flood; outside every address the lab's hosts use.</summary>
    public const string FloodNetworkV4 = "10.99.0.0/16";

    /// <summary>Random sources of the IPv6 flood.</summary>
    public const string FloodNetworkV6 = "fdf1::/64";

    public HostileLab()
        : base(Prefix, "c", "g", "s")
    {
        BuildOrDispose(Build);
    }

    public string Client => Namespaces[0];
    public string Gateway => Namespaces[1];
    public string Server => Namespaces[2];

    public static IPAddress ClientV4 { get; } = IPAddress.Parse("10.81.1.2");
    public static IPAddress GatewayClientV4 { get; } = IPAddress.Parse("10.81.1.1");
    public static IPAddress GatewayServerV4 { get; } = IPAddress.Parse("10.82.1.1");
    public static IPAddress ServerV4 { get; } = IPAddress.Parse("10.82.1.2");
    public static IPAddress ClientV6 { get; } = IPAddress.Parse("fd81:1::2");
    public static IPAddress GatewayClientV6 { get; } = IPAddress.Parse("fd81:1::1");
    public static IPAddress GatewayServerV6 { get; } = IPAddress.Parse("fd82:1::1");
    public static IPAddress ServerV6 { get; } = IPAddress.Parse("fd82:1::2");

    public static IPAddress ClientOf(AddressFamily family) => family == AddressFamily.InterNetworkV6 ? ClientV6 : ClientV4;

    public static IPAddress ServerOf(AddressFamily family) => family == AddressFamily.InterNetworkV6 ? ServerV6 : ServerV4;

    public static string FloodNetworkOf(AddressFamily family) => family == AddressFamily.InterNetworkV6 ? FloodNetworkV6 : FloodNetworkV4;

    /// <summary>Removes hostile-load namespaces whose creating process no longer exists.</summary>
    public static IReadOnlyList<string> RemoveLeftovers() => RemoveLeftovers(Prefix);

    private void Build()
    {
        foreach (string ns in (string[])[Client, Gateway, Server])
        {
            Tool.Run("ip", "netns", "add", ns);
            Tool.RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Tool.Run("ip", "-n", Client, "link", "add", ClientDevice, "type", "veth", "peer", "name", GatewayClientDevice, "netns", Gateway);
        Tool.Run("ip", "-n", Server, "link", "add", ServerDevice, "type", "veth", "peer", "name", GatewayServerDevice, "netns", Gateway);
        Configure(Client, ClientDevice, ClientV4, ClientV6);
        Configure(Gateway, GatewayClientDevice, GatewayClientV4, GatewayClientV6);
        Configure(Gateway, GatewayServerDevice, GatewayServerV4, GatewayServerV6);
        Configure(Server, ServerDevice, ServerV4, ServerV6);
        Tool.Run("ip", "-n", Client, "route", "add", "default", "via", GatewayClientV4.ToString());
        Tool.Run("ip", "-n", Client, "-6", "route", "add", "default", "via", GatewayClientV6.ToString());
        Tool.Run("ip", "-n", Server, "route", "add", "default", "via", GatewayServerV4.ToString());
        Tool.Run("ip", "-n", Server, "-6", "route", "add", "default", "via", GatewayServerV6.ToString());
        Tool.Run("ip", "-n", Gateway, "route", "add", FloodNetworkV4, "via", ClientV4.ToString());
        Tool.Run("ip", "-n", Gateway, "-6", "route", "add", FloodNetworkV6, "via", ClientV6.ToString());
        // The SYN-ACKs to forged sources are forwarded back from the client side's own interface:
        // a redirect per packet would only add load, and loose reverse-path checks would drop nothing.
        Tool.RunIn(Gateway, "sysctl", "-q", "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0");
        // The server answers every flood SYN; syncookies (the namespace default) keep its listener open.
        Tool.RunIn(Server, "sysctl", "-q", "-w", "net.ipv4.tcp_syncookies=1");
    }

    private static void Configure(string ns, string dev, IPAddress v4, IPAddress v6)
    {
        Tool.Run("ip", "-n", ns, "addr", "add", $"{v4}/24", "dev", dev);
        Tool.Run("ip", "-n", ns, "addr", "add", $"{v6}/64", "dev", dev, "nodad");
        Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
    }
}
