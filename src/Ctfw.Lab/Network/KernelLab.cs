using System.Net;
using System.Net.Sockets;
using Ctfw.Packets;

namespace Ctfw.Lab.Network;

/// <summary>
/// Three network namespaces — client, gateway, server — joined by two veth pairs, so that every
/// crafted packet crosses the gateway's FORWARD path exactly once and the gateway's conntrack can be
/// asked about it. Needs root. Everything it creates lives inside its namespaces (veths are created
/// directly there, rules and sysctls are per namespace), so deleting the three namespaces undoes
/// all of it; <see cref="Dispose"/> does that, and so does a failed constructor. Namespaces left by
/// a crashed run (<c>ctfwk-&lt;pid&gt;-*</c> whose pid is gone; see <see cref="NamespaceLab"/>) are removed when a new lab starts.
/// The gateway assigns the conntrack helpers of <see cref="LabHelpers"/> (raw-table <c>CT --helper</c> rules).
/// </summary>
public sealed class KernelLab : NamespaceLab
{
    public const string Prefix = "ctfwk-";

    private readonly Socket?[] _sockets = new Socket?[4];

    public KernelLab()
        : base(RequireTools(Prefix), "c", "g", "s")
    {
        BuildOrDispose(Build);
    }

    public string Client => Namespaces[0];
    public string Gateway => Namespaces[1];
    public string Server => Namespaces[2];

    private static string RequireTools(string prefix) =>
        Tool.WhyUnavailable() is { } why ? throw new InvalidOperationException(why) : prefix;

    /// <summary>Sends one complete IP packet from <paramref name="from"/>'s namespace to its destination address.</summary>
    public void Send(Side from, ReadOnlySpan<byte> packet)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        bool v6 = (packet[0] >> 4) == 6;
        IpAddress dst = v6 ? IpAddress.FromV6(packet.Slice(24, 16)) : IpAddress.FromV4(packet.Slice(16, 4));
        Socket socket = _sockets[(int)from * 2 + (v6 ? 1 : 0)] ?? throw new InvalidOperationException("lab sockets are not open");
        int sent = socket.SendTo(packet, SocketFlags.None, new IPEndPoint(LabAddresses.ToIPAddress(dst, v6), 0));
        if (sent != packet.Length)
            throw new InvalidOperationException($"raw send wrote {sent} of {packet.Length} bytes");
    }

    /// <summary>
    /// Writes conntrack sysctls (kernel names without <c>net.netfilter.</c>, e.g.
    /// <c>nf_conntrack_tcp_loose</c>) in the gateway namespace, in one <c>sysctl -w</c>.
    /// </summary>
    public void SetGatewaySysctls(IEnumerable<KeyValuePair<string, string>> values)
    {
        List<string> args = ["sysctl", "-q", "-w"];
        foreach ((string name, string value) in values)
            args.Add($"net.netfilter.{name}={value}");
        InGateway([.. args]);
    }

    /// <summary>Runs a command inside the gateway namespace and returns its stdout.</summary>
    public string InGateway(params string[] args) => Tool.RunIn(Gateway, args);

    private void Build()
    {
        foreach (string ns in (string[])[Client, Gateway, Server])
        {
            Tool.Run("ip", "netns", "add", ns);
            // Before any interface exists, so the veths inherit it: addresses are usable at once.
            Tool.RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }

        // Each pair is created inside the namespaces, so no name ever appears in the host namespace
        // (parallel labs cannot collide, and nothing is left there if we crash).
        Tool.Run("ip", "-n", Client, "link", "add", "vc", "type", "veth", "peer", "name", "vgc", "netns", Gateway);
        Tool.Run("ip", "-n", Server, "link", "add", "vs", "type", "veth", "peer", "name", "vgs", "netns", Gateway);

        Configure(Client, "vc", LabAddresses.ClientV4, LabAddresses.ClientV6);
        Configure(Gateway, "vgc", LabAddresses.GatewayClientV4, LabAddresses.GatewayClientV6);
        Configure(Gateway, "vgs", LabAddresses.GatewayServerV4, LabAddresses.GatewayServerV6);
        Configure(Server, "vs", LabAddresses.ServerV4, LabAddresses.ServerV6);

        Tool.Run("ip", "-n", Client, "route", "add", "default", "via", LabAddresses.GatewayClientV4);
        Tool.Run("ip", "-n", Client, "-6", "route", "add", "default", "via", LabAddresses.GatewayClientV6);
        Tool.Run("ip", "-n", Server, "route", "add", "default", "via", LabAddresses.GatewayServerV4);
        Tool.Run("ip", "-n", Server, "-6", "route", "add", "default", "via", LabAddresses.GatewayServerV6);

        Tool.RunIn(Gateway, "sysctl", "-q", "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0");
        // The lab's conntrack helpers, in the gateway's kernel for the lab's whole life.
        LabHelpers.Install(Gateway);

        Mute(Client);
        Mute(Server);

        for (int i = 0; i < _sockets.Length; i++)
            _sockets[i] = Netns.OpenRawSocket(i < 2 ? Client : Server, v6: i % 2 == 1);
    }

    private static void Configure(string ns, string dev, string v4, string v6)
    {
        // The gateway must see packets exactly as sent: no GRO merging, no segmentation offload, and
        // no rx-checksum offload (which would let veth mark our deliberately bad checksums as verified).
        Tool.RunIn(ns, "ethtool", "-K", dev, "gro", "off", "gso", "off", "tso", "off", "rx", "off", "tx", "off");
        Tool.Run("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", dev);
        Tool.Run("ip", "-n", ns, "addr", "add", v6 + "/64", "dev", dev, "nodad");
        Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
    }

    /// <summary>
    /// The endpoints' own stacks must not answer crafted packets (no RST for unknown TCP, no port or
    /// protocol unreachable, no echo reply): every IPv4 packet and every IPv6 packet except neighbour
    /// discovery is dropped on INPUT. ARP is not IP and is unaffected. No conntrack match is used here,
    /// so conntrack stays off in the endpoint namespaces.
    /// </summary>
    private static void Mute(string ns)
    {
        Tool.RunIn(ns, "iptables", "-A", "INPUT", "-j", "DROP");
        foreach (string type in (string[])["router-solicitation", "router-advertisement", "neighbour-solicitation", "neighbour-advertisement"])
            Tool.RunIn(ns, "ip6tables", "-A", "INPUT", "-p", "ipv6-icmp", "--icmpv6-type", type, "-j", "ACCEPT");
        Tool.RunIn(ns, "ip6tables", "-A", "INPUT", "-j", "DROP");
    }

    /// <summary>Deletes lab namespaces whose creating process no longer exists (a crashed or killed run).</summary>
    public static IReadOnlyList<string> RemoveLeftovers() => RemoveLeftovers(Prefix);

    protected override void ReleaseResources()
    {
        foreach (Socket? s in _sockets)
            s?.Dispose();
    }
}
