using System.Globalization;

namespace Ctfw.Kernel.Tests.Lab;

/// <summary>
/// Client, gateway and server namespaces (<c>ctfwt-&lt;pid&gt;-&lt;n&gt;-{c,g,s}</c>) for real traffic
/// as real hosts send it: unlike <see cref="KernelLab"/>, the veths keep their default offloads
/// (TSO/GSO super-packets, checksums left to the "NIC", so the gateway forwards packets whose
/// checksum field holds only the offload seed) and the endpoints' stacks answer. TCP timestamps are
/// off on the client, so pure ACKs are 40-byte datagrams: what a real Ethernet pads to 60 bytes.
/// </summary>
public sealed class SnaplenLab : NamespaceLab
{
    public const string Prefix = "ctfwt-";

    public const string ClientV4 = "10.98.1.2";
    public const string GatewayClientV4 = "10.98.1.1";
    public const string GatewayServerV4 = "10.98.2.1";
    public const string ServerV4 = "10.98.2.2";
    public const string ClientV6 = "fd98:1::2";
    public const string GatewayClientV6 = "fd98:1::1";
    public const string GatewayServerV6 = "fd98:2::1";
    public const string ServerV6 = "fd98:2::2";

    /// <summary>The client's interface and the gateway's interface towards it.</summary>
    public const string ClientDevice = "vc";
    public const string GatewayClientDevice = "vgc";

    public SnaplenLab()
        : base(Prefix, "c", "g", "s") => BuildOrDispose(Build);

    public string Client => Namespaces[0];
    public string Gateway => Namespaces[1];
    public string Server => Namespaces[2];

    public string InGateway(params string[] args) => Tool.RunIn(Gateway, args);

    private void Build()
    {
        foreach (string ns in Namespaces)
        {
            Tool.Run("ip", "netns", "add", ns);
            Tool.RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Tool.Run("ip", "-n", Client, "link", "add", ClientDevice, "type", "veth", "peer", "name", GatewayClientDevice, "netns", Gateway);
        Tool.Run("ip", "-n", Server, "link", "add", "vs", "type", "veth", "peer", "name", "vgs", "netns", Gateway);
        Configure(Client, ClientDevice, ClientV4, ClientV6);
        Configure(Gateway, GatewayClientDevice, GatewayClientV4, GatewayClientV6);
        Configure(Gateway, "vgs", GatewayServerV4, GatewayServerV6);
        Configure(Server, "vs", ServerV4, ServerV6);
        Tool.Run("ip", "-n", Client, "route", "add", "default", "via", GatewayClientV4);
        Tool.Run("ip", "-n", Client, "-6", "route", "add", "default", "via", GatewayClientV6);
        Tool.Run("ip", "-n", Server, "route", "add", "default", "via", GatewayServerV4);
        Tool.Run("ip", "-n", Server, "-6", "route", "add", "default", "via", GatewayServerV6);
        Tool.RunIn(Gateway, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.all.send_redirects=0");
        Tool.RunIn(Client, "sysctl", "-q", "-w", "net.ipv4.tcp_timestamps=0");
    }

    private static void Configure(string ns, string dev, string v4, string v6)
    {
        Tool.Run("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", dev);
        Tool.Run("ip", "-n", ns, "addr", "add", v6 + "/64", "dev", dev, "nodad");
        Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
    }

    /// <summary>Interface index and MAC address of a device in a namespace (from <c>ip -o link</c>).</summary>
    public static (int Index, byte[] Mac) Link(string ns, string dev)
    {
        // "2: vc@if3: <BROADCAST,...> mtu 1500 ... link/ether 72:9e:4d:03:a7:77 brd ff:ff:ff:ff:ff:ff ..."
        string line = Tool.Run("ip", "-n", ns, "-o", "link", "show", "dev", dev).Trim();
        int index = int.Parse(line[..line.IndexOf(':', StringComparison.Ordinal)], NumberStyles.None, CultureInfo.InvariantCulture);
        string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int ether = Array.IndexOf(words, "link/ether");
        if (ether < 0)
            throw new InvalidOperationException($"no MAC address for {dev} in {ns}: {line}");
        return (index, Convert.FromHexString(words[ether + 1].Replace(":", "", StringComparison.Ordinal)));
    }

    public static IReadOnlyList<string> RemoveLeftovers() => RemoveLeftovers(Prefix);
}
