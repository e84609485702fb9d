using Ctfw.Lab.Network;

namespace Ctfw.Lab.Bench;

/// <summary>
/// The benchmark's client / gateway / server namespaces (<c>ctfwb-&lt;pid&gt;-&lt;n&gt;-{c,g,s}</c>), addressed
/// like <see cref="KernelLab"/> (IPv4 only) but built for speed rather than for crafted packets:
/// offloads stay at their defaults (GSO, TSO, GRO on), the endpoints' stacks answer, IPv6 is off so
/// no router solicitation crosses the gateway. Deleting the namespaces undoes everything, including
/// the gateway's iptables rules; <see cref="Dispose"/> does that, so does a failed constructor, and
/// the next bench removes the namespaces of a run whose process has died.
/// </summary>
public sealed class BenchLab : NamespaceLab
{
    public const string Prefix = "ctfwb-";

    /// <summary>The gateway's client-facing and server-facing interfaces (rules/bench.rules names them).</summary>
    public const string GatewayClientDevice = "vgc";
    public const string GatewayServerDevice = "vgs";

    public BenchLab()
        : base(Prefix, "c", "g", "s")
    {
        BuildOrDispose(Build);
    }

    public string Client => Namespaces[0];
    public string Gateway => Namespaces[1];
    public string Server => Namespaces[2];

    /// <summary>Deletes bench namespaces whose creating process no longer exists, ending what still runs in them.</summary>
    public static IReadOnlyList<string> RemoveLeftovers() => RemoveLeftovers(Prefix);

    private void Build()
    {
        foreach (string ns in (string[])[Client, Gateway, Server])
        {
            Tool.Run("ip", "netns", "add", ns);
            Tool.RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Tool.Run("ip", "-n", Client, "link", "add", "vc", "type", "veth", "peer", "name", GatewayClientDevice, "netns", Gateway);
        Tool.Run("ip", "-n", Server, "link", "add", "vs", "type", "veth", "peer", "name", GatewayServerDevice, "netns", Gateway);
        Configure(Client, "vc", LabAddresses.ClientV4);
        Configure(Gateway, GatewayClientDevice, LabAddresses.GatewayClientV4);
        Configure(Gateway, GatewayServerDevice, LabAddresses.GatewayServerV4);
        Configure(Server, "vs", LabAddresses.ServerV4);
        Tool.Run("ip", "-n", Client, "route", "add", "default", "via", LabAddresses.GatewayClientV4);
        Tool.Run("ip", "-n", Server, "route", "add", "default", "via", LabAddresses.GatewayServerV4);
        // HTTP churn at 15 k connections/s leaves every ephemeral port of the default range in
        // TIME_WAIT within two seconds; connect() then scans the whole range on every call and the
        // rate collapses ten-fold for whatever set-up runs next. Reusing TIME_WAIT ports for new
        // outgoing connections (timestamps make it safe) and a wider range keep the client steady.
        Tool.RunIn(Client, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535");
        Tool.RunIn(Gateway, "sysctl", "-q", "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0");
    }

    private static void Configure(string ns, string dev, string v4)
    {
        Tool.Run("ip", "-n", ns, "addr", "add", v4 + "/24", "dev", dev);
        Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
    }
}
