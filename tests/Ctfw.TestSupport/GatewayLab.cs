using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Lab.Network;
using Ctfw.Linux;

namespace Ctfw.TestSupport;

/// <summary>
/// client ── gateway ── server: three network namespaces joined by two veth pairs, IPv4 and IPv6,
/// forwarding on in the gateway, default routes through it. The server namespace runs TCP echo
/// listeners. Its life is <see cref="NamespaceLab"/>'s (ctfwd-PID-N-{c,g,s}): Dispose, a failed
/// build and the process's exit delete the namespaces, and with them every rule, queue and process in
/// them; namespaces of a killed run are removed when a new lab starts.
/// </summary>
public sealed class GatewayLab : NamespaceLab
{
    public const string Prefix = "ctfwd-";

    private readonly List<Socket> _listeners = [];
    private readonly CancellationTokenSource _stop = new();

    public GatewayLab()
        : base(RequireRoot(), "c", "g", "s")
    {
        int n = (Number - 1) % 200 + 1;
        Subnet = n;
        ClientV4 = IPAddress.Parse($"10.79.{n}.2");
        GatewayClientV4 = IPAddress.Parse($"10.79.{n}.1");
        ServerV4 = IPAddress.Parse($"10.80.{n}.2");
        GatewayServerV4 = IPAddress.Parse($"10.80.{n}.1");
        ClientV6 = IPAddress.Parse($"fd79:{n:x}::2");
        GatewayClientV6 = IPAddress.Parse($"fd79:{n:x}::1");
        ServerV6 = IPAddress.Parse($"fd80:{n:x}::2");
        GatewayServerV6 = IPAddress.Parse($"fd80:{n:x}::1");
        BuildOrDispose(Build);
    }

    private static string RequireRoot()
    {
        Privileges.RequireRoot("network namespaces, iptables, NFQUEUE");
        return Prefix;
    }

    /// <summary>The third octet of the lab's IPv4 subnets (10.79.N.0/24 client side, 10.80.N.0/24 server side).</summary>
    public int Subnet { get; }

    public string Client => Namespaces[0];
    public string Gateway => Namespaces[1];
    public string Server => Namespaces[2];
    public IPAddress ClientV4 { get; }
    public IPAddress GatewayClientV4 { get; }
    public IPAddress ServerV4 { get; }
    public IPAddress GatewayServerV4 { get; }
    public IPAddress ClientV6 { get; }
    public IPAddress GatewayClientV6 { get; }
    public IPAddress ServerV6 { get; }
    public IPAddress GatewayServerV6 { get; }

    /// <summary>TCP echo servers on <paramref name="port"/> in the server namespace, IPv4 and IPv6.</summary>
    public void Listen(int port)
    {
        foreach (bool v6 in (bool[])[false, true])
        {
            Socket listener = NetworkNamespace.Run(NetworkNamespace.PathOf(Server), () =>
            {
                var s = new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                if (v6)
                    s.DualMode = false;
                s.Bind(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, port));
                s.Listen(16);
                return s;
            });
            _listeners.Add(listener);
            _ = Task.Run(() => EchoLoop(listener, _stop.Token));
        }
    }

    /// <summary>
    /// Connects from the client namespace and echoes <paramref name="message"/>: the echoed text, or
    /// "refused" / "timeout" / the socket error.
    /// </summary>
    public Task<string> TryEcho(IPAddress server, int port, string message, TimeSpan timeout) =>
        TryEcho(server, port, message, timeout, source: null);

    /// <summary>As <see cref="TryEcho(IPAddress, int, string, TimeSpan)"/>, bound to <paramref name="source"/> (an address of the client) when given.</summary>
    public async Task<string> TryEcho(IPAddress server, int port, string message, TimeSpan timeout, IPAddress? source)
    {
        using Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(Client),
            () => new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        if (source is not null)
            socket.Bind(new IPEndPoint(source, 0));
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await socket.ConnectAsync(new IPEndPoint(server, port), cts.Token);
            byte[] data = System.Text.Encoding.ASCII.GetBytes(message);
            await socket.SendAsync(data, SocketFlags.None, cts.Token);
            byte[] buffer = new byte[data.Length];
            int got = 0;
            while (got < buffer.Length)
            {
                int n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cts.Token);
                if (n == 0)
                    break;
                got += n;
            }
            return System.Text.Encoding.ASCII.GetString(buffer, 0, got);
        }
        catch (OperationCanceledException)
        {
            return "timeout";
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return "refused";
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode.ToString();
        }
    }

    /// <summary>Adds 10.79.N.<paramref name="host"/>/24 to the client's interface and returns it.</summary>
    public IPAddress AddClientV4(int host)
    {
        var address = IPAddress.Parse($"10.79.{Subnet}.{host}");
        Tool.Run("ip", "-n", Client, "addr", "add", $"{address}/24", "dev", "c0");
        return address;
    }

    /// <summary>
    /// Turns the segmentation/receive offloads (tx checksum, SG, TSO, GSO, GRO) on or off on all four
    /// veth ends; features a veth cannot change are skipped. Returns `ethtool -k` of the gateway's g0.
    /// </summary>
    public string SetOffloads(bool on)
    {
        string state = on ? "on" : "off";
        foreach ((string ns, string dev) in (ReadOnlySpan<(string, string)>)[(Client, "c0"), (Gateway, "g0"), (Gateway, "g1"), (Server, "s0")])
        {
            foreach (string feature in (string[])["tx", "sg", "tso", "gso", "gro"])
            {
                try
                {
                    Tool.RunIn(ns, "ethtool", "-K", dev, feature, state);
                }
                catch (InvalidOperationException)
                {
                    // Fixed on this kernel's veth.
                }
            }
        }
        return Tool.RunIn(Gateway, "ethtool", "-k", "g0");
    }

    /// <summary>One ping from the client; true when the echo reply came back.</summary>
    public bool Ping(IPAddress server)
    {
        try
        {
            Tool.RunIn(Client, "ping", server.AddressFamily == AddressFamily.InterNetworkV6 ? "-6" : "-4", "-c", "1", "-W", "3", server.ToString());
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static async Task EchoLoop(Socket listener, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket peer;
            try
            {
                peer = await listener.AcceptAsync(stop);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (peer)
                {
                    byte[] buffer = new byte[4096];
                    try
                    {
                        int n;
                        while ((n = await peer.ReceiveAsync(buffer, SocketFlags.None, stop)) > 0)
                            await peer.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, stop);
                    }
                    catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                        // Test over or connection reset.
                    }
                }
            }, stop);
        }
    }

    private void Build()
    {
        foreach (string ns in (string[])[Client, Gateway, Server])
        {
            Tool.Run("ip", "netns", "add", ns);
            Tool.RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Tool.RunIn(Gateway, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1");
        Tool.Run("ip", "-n", Client, "link", "add", "c0", "type", "veth", "peer", "name", "g0", "netns", Gateway);
        Tool.Run("ip", "-n", Server, "link", "add", "s0", "type", "veth", "peer", "name", "g1", "netns", Gateway);
        Address(Client, "c0", ClientV4, 24, ClientV6);
        Address(Gateway, "g0", GatewayClientV4, 24, GatewayClientV6);
        Address(Gateway, "g1", GatewayServerV4, 24, GatewayServerV6);
        Address(Server, "s0", ServerV4, 24, ServerV6);
        Tool.Run("ip", "-n", Client, "route", "add", "default", "via", GatewayClientV4.ToString());
        Tool.Run("ip", "-n", Client, "-6", "route", "add", "default", "via", GatewayClientV6.ToString());
        Tool.Run("ip", "-n", Server, "route", "add", "default", "via", GatewayServerV4.ToString());
        Tool.Run("ip", "-n", Server, "-6", "route", "add", "default", "via", GatewayServerV6.ToString());
    }

    private static void Address(string ns, string dev, IPAddress v4, int prefix4, IPAddress v6)
    {
        Tool.Run("ip", "-n", ns, "addr", "add", $"{v4}/{prefix4}", "dev", dev);
        Tool.Run("ip", "-n", ns, "addr", "add", $"{v6}/64", "dev", dev, "nodad");
        Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
    }

    protected override void ReleaseResources()
    {
        _stop.Cancel();
        foreach (Socket s in _listeners)
            s.Dispose();
        _stop.Dispose();
    }
}
