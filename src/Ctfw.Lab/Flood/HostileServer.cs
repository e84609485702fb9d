using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Ctfw.Lab.Network;
using Ctfw.Linux;

namespace Ctfw.Lab.Flood;

/// <summary>
/// The server namespace's side of a run, IPv4 and IPv6: a TCP echo server on
/// <see cref="HostileRules.TcpPort"/> (conversations, probe, the SYN flood's target), a bound UDP
/// socket on <see cref="HostileRules.UdpPort"/> that is never read (the overload ends in its full
/// buffer, without ICMP errors), and listeners on <see cref="HostileRules.ForbiddenPort"/> (so a
/// forbidden packet that passes would be answered like any other). What arrives is counted by
/// counting rules (no target, no conntrack) in the server's own INPUT chains: the kernel's exact
/// count of the packets that crossed the gateway, taken before any socket could drop them.
/// </summary>
public sealed class HostileServer : IDisposable
{
    private static readonly (string Name, string Match)[] s_counters =
    [
        ("forbidden-tcp", $"-p tcp -m tcp --dport {HostileRules.ForbiddenPort}"),
        ("forbidden-udp", $"-p udp -m udp --dport {HostileRules.ForbiddenPort}"),
        ("syn", $"-p tcp -m tcp --dport {HostileRules.TcpPort} --tcp-flags FIN,SYN,RST,ACK SYN"),
        ("udp", $"-p udp -m udp --dport {HostileRules.UdpPort}"),
    ];

    private readonly string _namespace;
    private readonly List<Socket> _sockets = [];
    private readonly List<Thread> _threads = [];
    private readonly CancellationTokenSource _stop = new();

    public HostileServer(string serverNamespace)
    {
        _namespace = serverNamespace;
        try
        {
            foreach (AddressFamily family in (AddressFamily[])[AddressFamily.InterNetwork, AddressFamily.InterNetworkV6])
            {
                Socket echo = Bind(family, SocketType.Stream, HostileRules.TcpPort);
                echo.Listen(1024);
                var accept = new Thread(() => AcceptLoop(echo)) { Name = "hostile-echo-accept", IsBackground = true };
                _threads.Add(accept);
                accept.Start();
                Bind(family, SocketType.Dgram, HostileRules.UdpPort);
                Bind(family, SocketType.Stream, HostileRules.ForbiddenPort).Listen(16);
                Bind(family, SocketType.Dgram, HostileRules.ForbiddenPort);
            }
            foreach (string tool in (string[])["iptables", "ip6tables"])
            {
                Tool.RunIn(_namespace, tool, "-w", "-F", "INPUT");
                foreach ((string name, string match) in s_counters)
                    Tool.RunIn(_namespace, [tool, "-w", "-A", "INPUT", .. match.Split(' '), "-m", "comment", "--comment", name]);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The counting rules' packet counts, IPv4 and IPv6 summed, by name.</summary>
    public ServerCounts ReadCounts()
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string tool in (string[])["iptables", "ip6tables"])
        {
            foreach (string line in Tool.RunIn(_namespace, tool, "-w", "-nvxL", "INPUT").Split('\n'))
            {
                int comment = line.IndexOf("/* ", StringComparison.Ordinal);
                if (comment < 0)
                    continue;
                int end = line.IndexOf(" */", comment, StringComparison.Ordinal);
                string name = line[(comment + 3)..end];
                string first = line.TrimStart().Split(' ', 2)[0];
                if (long.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out long packets))
                    counts[name] = counts.GetValueOrDefault(name) + packets;
            }
        }
        return new ServerCounts(counts.GetValueOrDefault("forbidden-tcp"), counts.GetValueOrDefault("forbidden-udp"),
            counts.GetValueOrDefault("syn"), counts.GetValueOrDefault("udp"));
    }

    /// <summary>The packets an interface received (<c>ip -s link</c>), or -1 when unreadable.</summary>
    public static long RxPackets(string netns, string device)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(Tool.Run("ip", "-n", netns, "-s", "-j", "link", "show", "dev", device));
            return doc.RootElement[0].GetProperty("stats64").GetProperty("rx").GetProperty("packets").GetInt64();
        }
        catch (Exception e) when (e is InvalidOperationException or JsonException or KeyNotFoundException or IndexOutOfRangeException)
        {
            return -1;
        }
    }

    private Socket Bind(AddressFamily family, SocketType type, int port)
    {
        Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(_namespace), () =>
        {
            var s = new Socket(family, type, type == SocketType.Stream ? ProtocolType.Tcp : ProtocolType.Udp);
            try
            {
                if (family == AddressFamily.InterNetworkV6)
                    s.DualMode = false;
                s.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, port));
                return s;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        });
        _sockets.Add(socket);
        return socket;
    }

    // One thread per connection with blocking calls: a busy thread pool cannot delay an echo.
    private void AcceptLoop(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket peer;
            try
            {
                peer = listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            var echo = new Thread(() => Echo(peer)) { Name = "hostile-echo", IsBackground = true };
            echo.Start();
        }
    }

    private void Echo(Socket peer)
    {
        using (peer)
        {
            using CancellationTokenRegistration closeOnStop = _stop.Token.Register(peer.Dispose);
            byte[] buffer = new byte[4096];
            try
            {
                int n;
                while ((n = peer.Receive(buffer)) > 0)
                    peer.Send(buffer.AsSpan(0, n));
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Reset, or the run is over.
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (Socket s in _sockets)
            s.Dispose();
        foreach (Thread t in _threads)
            t.Join(TimeSpan.FromSeconds(5));
        _stop.Dispose();
    }
}

/// <summary>Packets that reached the server (its counting rules, IPv4 + IPv6).</summary>
public sealed record ServerCounts(long ForbiddenTcp, long ForbiddenUdp, long Syn, long Udp)
{
    public long Forbidden => ForbiddenTcp + ForbiddenUdp;

    public static ServerCounts operator -(ServerCounts a, ServerCounts b) =>
        new(a.ForbiddenTcp - b.ForbiddenTcp, a.ForbiddenUdp - b.ForbiddenUdp, a.Syn - b.Syn, a.Udp - b.Udp);
}
