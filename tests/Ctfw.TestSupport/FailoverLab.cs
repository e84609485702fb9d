using System.Globalization;
using System.Net;
using Ctfw.Lab.Network;

namespace Ctfw.TestSupport;

/// <summary>
/// Two gateways in a pair, IPv4:
/// <code>
///                 ┌── a0 [A] a1 ──┐
///  client c0 ── brc      │sync0   brs ── s0 server
///                 └── b0 [B] b1 ──┘
/// </code>
/// Namespaces client, gateway A, gateway B, server and a switch (w) holding two bridges: brc joins
/// the client-side segment (10.84.N.0/24: client .2, A .11, B .12), brs the server-side one
/// (10.85.N.0/24: server .2, A .11, B .12), so A and B share both. A dedicated veth pair sync0
/// (10.86.N.0/30: A .1, B .2) links the gateways for state sync. Client and server route through A;
/// <see cref="FailOver"/> moves both next hops to B, as VRRP moving the virtual address would; or,
/// after <see cref="RouteViaVirtualAddresses"/>, they route through the .1 addresses that a real
/// keepalived in the gateways moves. Both
/// gateways forward. Its life is <see cref="NamespaceLab"/>'s (ctfwf-PID-N-{c,a,b,s,w}): Dispose, a
/// failed build and the process's exit delete the namespaces, and with them the veths, bridges,
/// rules and every process still inside (a conntrackd, a ctfw).
/// </summary>
public sealed class FailoverLab : NamespaceLab
{
    public const string Prefix = "ctfwf-";

    /// <summary>The name of the sync veth in both gateways.</summary>
    public const string SyncInterface = "sync0";

    public FailoverLab()
        : base(RequireRoot(), "c", "a", "b", "s", "w")
    {
        int n = (Number - 1) % 200 + 1;
        ClientV4 = Address(84, n, 2);
        ServerV4 = Address(85, n, 2);
        VirtualClientSide = Address(84, n, 1);
        VirtualServerSide = Address(85, n, 1);
        A = new GatewayAddresses(Namespaces[1], Address(84, n, 11), Address(85, n, 11), Address(86, n, 1), "a0", "a1");
        B = new GatewayAddresses(Namespaces[2], Address(84, n, 12), Address(85, n, 12), Address(86, n, 2), "b0", "b1");
        BuildOrDispose(Build);
    }

    private static string RequireRoot()
    {
        Privileges.RequireRoot("network namespaces, bridges, iptables, conntrackd");
        return Prefix;
    }

    private static IPAddress Address(int second, int third, int host) =>
        IPAddress.Parse(string.Create(CultureInfo.InvariantCulture, $"10.{second}.{third}.{host}"));

    public string Client => Namespaces[0];
    public string Server => Namespaces[3];
    public string Switch => Namespaces[4];
    public IPAddress ClientV4 { get; }
    public IPAddress ServerV4 { get; }

    /// <summary>The virtual (VRRP) address on the client side, which no gateway holds until keepalived gives it one.</summary>
    public IPAddress VirtualClientSide { get; }

    /// <summary>The virtual (VRRP) address on the server side.</summary>
    public IPAddress VirtualServerSide { get; }

    /// <summary>The gateway client and server route through first.</summary>
    public GatewayAddresses A { get; }

    /// <summary>The standby, which <see cref="FailOver"/> makes the next hop.</summary>
    public GatewayAddresses B { get; }

    /// <summary>The gateway client and server route through now; null once they route through the virtual addresses.</summary>
    public GatewayAddresses? Active { get; private set; }

    /// <summary>
    /// Makes B the next hop of client and server (the routes change and their neighbour entries are
    /// flushed, which is what the hosts see when VRRP moves the virtual address and B announces it).
    /// The gateways themselves are not touched: promoting B's firewall is the caller's step.
    /// </summary>
    public void FailOver() => Route(B);

    /// <summary>
    /// Makes client and server route through <see cref="VirtualClientSide"/> and <see cref="VirtualServerSide"/>:
    /// whichever gateway keepalived makes master (it adds the addresses and announces them) forwards.
    /// </summary>
    public void RouteViaVirtualAddresses()
    {
        Tool.Run("ip", "-n", Client, "route", "replace", "default", "via", VirtualClientSide.ToString());
        Tool.Run("ip", "-n", Server, "route", "replace", "default", "via", VirtualServerSide.ToString());
        Active = null;
    }

    /// <summary>
    /// Which gateway the client (<paramref name="clientSide"/>) or the server sends its routed packets
    /// to: the one whose MAC its neighbour entry for the virtual address holds; null when there is no
    /// entry or the MAC is neither gateway's.
    /// </summary>
    public GatewayAddresses? NextHopOf(bool clientSide)
    {
        string host = clientSide ? Client : Server;
        IPAddress virtualAddress = clientSide ? VirtualClientSide : VirtualServerSide;
        string neighbour = Tool.Run("ip", "-n", host, "neigh", "show", virtualAddress.ToString());
        foreach (GatewayAddresses g in (GatewayAddresses[])[A, B])
        {
            string dev = clientSide ? g.ClientInterface : g.ServerInterface;
            string link = Tool.Run("ip", "-n", g.Namespace, "-o", "link", "show", "dev", dev);
            string mac = link[(link.IndexOf("link/ether ", StringComparison.Ordinal) + "link/ether ".Length)..].Split(' ')[0];
            if (neighbour.Contains("lladdr " + mac + " ", StringComparison.Ordinal))
                return g;
        }
        return null;
    }

    /// <summary>The kernel's counters of gateway <paramref name="g"/>'s sync veth so far.</summary>
    public static SyncLinkCounters SyncCounters(GatewayAddresses g)
    {
        // `ip -s -j`, not /sys/class/net: under nsenter /sys still shows the namespace that mounted it.
        string json = Tool.Run("ip", "-n", g.Namespace, "-s", "-j", "link", "show", "dev", SyncInterface);
        using var doc = System.Text.Json.JsonDocument.Parse(json);
        System.Text.Json.JsonElement stats = doc.RootElement[0].GetProperty("stats64");
        System.Text.Json.JsonElement tx = stats.GetProperty("tx"), rx = stats.GetProperty("rx");
        return new SyncLinkCounters(tx.GetProperty("bytes").GetInt64(), rx.GetProperty("bytes").GetInt64(),
            tx.GetProperty("packets").GetInt64() + rx.GetProperty("packets").GetInt64());
    }

    private void Route(GatewayAddresses to)
    {
        Tool.Run("ip", "-n", Client, "route", "replace", "default", "via", to.ClientSide.ToString());
        Tool.Run("ip", "-n", Server, "route", "replace", "default", "via", to.ServerSide.ToString());
        Tool.Run("ip", "-n", Client, "neigh", "flush", "all");
        Tool.Run("ip", "-n", Server, "neigh", "flush", "all");
        Active = to;
    }

    private void Build()
    {
        foreach (string ns in Namespaces)
        {
            Tool.Run("ip", "netns", "add", ns);
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        foreach (string bridge in (string[])["brc", "brs"])
        {
            Tool.Run("ip", "-n", Switch, "link", "add", bridge, "type", "bridge");
            Tool.Run("ip", "-n", Switch, "link", "set", bridge, "up");
        }
        Port(Client, "c0", "wc", "brc", $"{ClientV4}/24");
        Port(Server, "s0", "ws", "brs", $"{ServerV4}/24");
        foreach (GatewayAddresses g in (GatewayAddresses[])[A, B])
        {
            Tool.RunIn(g.Namespace, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
            Port(g.Namespace, g.ClientInterface, "w" + g.ClientInterface, "brc", $"{g.ClientSide}/24");
            Port(g.Namespace, g.ServerInterface, "w" + g.ServerInterface, "brs", $"{g.ServerSide}/24");
        }
        Tool.Run("ip", "-n", A.Namespace, "link", "add", SyncInterface, "type", "veth", "peer", "name", SyncInterface, "netns", B.Namespace);
        foreach (GatewayAddresses g in (GatewayAddresses[])[A, B])
        {
            Tool.Run("ip", "-n", g.Namespace, "addr", "add", $"{g.Sync}/30", "dev", SyncInterface);
            Tool.Run("ip", "-n", g.Namespace, "link", "set", SyncInterface, "up");
        }
        Tool.Run("ip", "-n", Client, "route", "add", "default", "via", A.ClientSide.ToString());
        Tool.Run("ip", "-n", Server, "route", "add", "default", "via", A.ServerSide.ToString());
        Active = A;
    }

    /// <summary>A veth from <paramref name="ns"/> into the switch, its switch end a port of <paramref name="bridge"/>.</summary>
    private void Port(string ns, string dev, string switchDev, string bridge, string address)
    {
        Tool.Run("ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", switchDev, "netns", Switch);
        Tool.Run("ip", "-n", Switch, "link", "set", switchDev, "master", bridge, "up");
        Tool.Run("ip", "-n", ns, "addr", "add", address, "dev", dev);
        Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
    }
}

/// <summary>One gateway of a <see cref="FailoverLab"/>: its namespace and addresses on the three links.</summary>
public sealed record GatewayAddresses(
    string Namespace, IPAddress ClientSide, IPAddress ServerSide, IPAddress Sync, string ClientInterface, string ServerInterface)
{
    /// <summary>Every address the gateway owns (what a sync filter ignores: its own traffic is not forwarded state).</summary>
    public IReadOnlyList<IPAddress> Own => [ClientSide, ServerSide, Sync];
}

/// <summary>A sync veth's counters: bytes sent, bytes received, packets both ways.</summary>
public readonly record struct SyncLinkCounters(long TxBytes, long RxBytes, long Packets)
{
    public long Bytes => TxBytes + RxBytes;

    public static SyncLinkCounters operator -(SyncLinkCounters later, SyncLinkCounters earlier) =>
        new(later.TxBytes - earlier.TxBytes, later.RxBytes - earlier.RxBytes, later.Packets - earlier.Packets);
}
