using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Lab.Network;
using Ctfw.Linux;
using Ctfw.Linux.Firewall;

namespace Ctfw.TestSupport;

/// <summary>
/// Two network namespaces, A and B, joined by a veth pair (va in A, vb in B), with IPv4 and IPv6
/// addresses. Everything a test adds (rules, queues, sockets) lives inside them; its life is
/// <see cref="NamespaceLab"/>'s (ctfwl-PID-N-{a,b}): <see cref="NamespaceLab.Dispose"/>, a failed
/// constructor and process exit delete both namespaces, and namespaces left by a killed run are
/// removed when a new lab starts. Needs root.
/// </summary>
public sealed class NetnsLab : NamespaceLab
{
    public const string Prefix = "ctfwl-";

    private readonly List<Socket> _sockets = [];

    public NetnsLab()
        : base(RequireRoot(), "a", "b")
    {
        int n = Number % 250;
        AddressA4 = IPAddress.Parse($"10.78.{n}.1");
        AddressB4 = IPAddress.Parse($"10.78.{n}.2");
        AddressA6 = IPAddress.Parse($"fd78:{n:x}::1");
        AddressB6 = IPAddress.Parse($"fd78:{n:x}::2");
        BuildOrDispose(Build);
    }

    private static string RequireRoot()
    {
        Privileges.RequireRoot("network namespaces, iptables, NFQUEUE");
        return Prefix;
    }

    public string A => Namespaces[0];

    public string B => Namespaces[1];

    public IPAddress AddressA4 { get; }

    public IPAddress AddressB4 { get; }

    public IPAddress AddressA6 { get; }

    public IPAddress AddressB6 { get; }

    /// <summary>Interface index of vb inside B (what NFQA_IFINDEX_INDEV reports for traffic from A).</summary>
    public int VethIndexB { get; private set; }

    /// <summary>Installs ctfw's NFQUEUE rules inside B.</summary>
    public IptablesInstaller InstallInB(IptablesOptions options) => IptablesInstaller.Install(options with { NetworkNamespace = B });

    /// <summary>A UDP socket created inside <paramref name="ns"/> (it stays there), optionally bound to a port.</summary>
    public Socket Udp(string ns, bool v6, int bindPort = -1)
    {
        Socket s = NetworkNamespace.Run(NetworkNamespace.PathOf(ns), () =>
        {
            var socket = new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            if (bindPort >= 0)
                socket.Bind(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, bindPort));
            return socket;
        });
        _sockets.Add(s);
        s.ReceiveTimeout = 300;
        return s;
    }

    /// <summary>
    /// Datagrams that reached <paramref name="receiver"/>: waits (up to 5 s) until at least
    /// <paramref name="expected"/> arrived, then until the socket has been quiet for its receive timeout,
    /// so extra arrivals are seen too.
    /// </summary>
    public static List<string> Drain(Socket receiver, int expected = 0)
    {
        List<string> got = [];
        byte[] buffer = new byte[2048];
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                int n = receiver.Receive(buffer);
                got.Add(System.Text.Encoding.ASCII.GetString(buffer, 0, n));
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                if (got.Count >= expected || clock.Elapsed > TimeSpan.FromSeconds(5))
                    return got;
            }
        }
    }

    private void Build()
    {
        foreach (string ns in (string[])[A, B])
        {
            Tool.Run("ip", "netns", "add", ns);
            Tool.RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
            Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Tool.Run("ip", "-n", A, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", B);
        Tool.Run("ip", "-n", A, "addr", "add", $"{AddressA4}/24", "dev", "va");
        Tool.Run("ip", "-n", B, "addr", "add", $"{AddressB4}/24", "dev", "vb");
        Tool.Run("ip", "-n", A, "addr", "add", $"{AddressA6}/64", "dev", "va", "nodad");
        Tool.Run("ip", "-n", B, "addr", "add", $"{AddressB6}/64", "dev", "vb", "nodad");
        Tool.Run("ip", "-n", A, "link", "set", "va", "up");
        Tool.Run("ip", "-n", B, "link", "set", "vb", "up");
        string index = Tool.Run("ip", "-n", B, "-o", "link", "show", "dev", "vb").Split(':')[0];
        VethIndexB = int.Parse(index, CultureInfo.InvariantCulture);
    }

    protected override void ReleaseResources()
    {
        foreach (Socket s in _sockets)
            s.Dispose();
    }
}
