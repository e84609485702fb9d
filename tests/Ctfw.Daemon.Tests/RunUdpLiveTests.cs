using System.Net;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>UDP through `ctfw run`: allowed flows and their replies pass, REJECT answers with ICMP port unreachable.</summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class RunUdpLiveTests
{
    private const string Ruleset = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p udp -m udp --dport 5353 -m conntrack --ctstate NEW -j ACCEPT
        -4 -A FORWARD -p udp -m udp --dport 5354 -j REJECT --reject-with icmp-port-unreachable
        -6 -A FORWARD -p udp -m udp --dport 5354 -j REJECT --reject-with icmp6-port-unreachable
        -A FORWARD -j DROP
        COMMIT

        """;

    [Fact(Timeout = 120_000)]
    public async Task Run_UdpRuleset_AllowedFlowEchoes_DroppedTimesOut_RejectedGetsPortUnreachable()
    {
        using var lab = new GatewayLab();
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-udp-{Environment.ProcessId}-{Guid.NewGuid():N}.rules");
        File.WriteAllText(rules, Ruleset);
        var servers = new List<Socket>();
        using var stop = new CancellationTokenSource();
        try
        {
            foreach (int port in (int[])[5353, 5354, 5355])
            {
                foreach (bool v6 in (bool[])[false, true])
                    servers.Add(UdpEcho(lab, port, v6, stop.Token));
            }
            // Sanity: without ctfw every port echoes.
            Assert.Equal("pre", await Exchange(lab, lab.ServerV4, 5355, "pre"));

            using var ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "12", "--install", "FORWARD");
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), ctfw.StdErr);

            Assert.Equal("dns-v4", await Exchange(lab, lab.ServerV4, 5353, "dns-v4"));
            Assert.Equal("dns-v6", await Exchange(lab, lab.ServerV6, 5353, "dns-v6"));
            Assert.Equal("timeout", await Exchange(lab, lab.ServerV4, 5355, "x"));
            Assert.Equal("timeout", await Exchange(lab, lab.ServerV6, 5355, "x"));
            foreach ((IPAddress server, IPAddress gateway) in new[] { (lab.ServerV4, lab.GatewayClientV4), (lab.ServerV6, lab.GatewayClientV6) })
            {
                // The port unreachable comes from the gateway's own address, as the kernel's REJECT does for forwarded packets.
                bool isV6 = server.AddressFamily == AddressFamily.InterNetworkV6;
                using Socket icmp = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client), () =>
                {
                    var raw = isV6
                        ? new Socket(AddressFamily.InterNetworkV6, SocketType.Raw, ProtocolType.IcmpV6)
                        : new Socket(AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Icmp);
                    raw.Bind(new IPEndPoint(isV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
                    return raw;
                });
                Assert.Equal("refused", await Exchange(lab, server, 5354, "x"));
                Assert.Equal(gateway, await IcmpErrorSource(icmp, isV6));
            }

            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(20)));
        }
        finally
        {
            stop.Cancel();
            foreach (Socket s in servers)
                s.Dispose();
            File.Delete(rules);
        }
    }

    internal static Socket UdpEcho(GatewayLab lab, int port, bool v6, CancellationToken token)
    {
        Socket s = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
        {
            var socket = new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            if (v6)
                socket.DualMode = false;
            socket.Bind(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, port));
            return socket;
        });
        _ = Task.Run(async () =>
        {
            byte[] buffer = new byte[1500];
            EndPoint any = new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            while (!token.IsCancellationRequested)
            {
                try
                {
                    SocketReceiveFromResult r = await s.ReceiveFromAsync(buffer, SocketFlags.None, any, token);
                    await s.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), SocketFlags.None, r.RemoteEndPoint, token);
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
                {
                    return;
                }
            }
        }, token);
        return s;
    }

    /// <summary>Source address of the first destination-unreachable the raw ICMP socket received (null after 3 s).</summary>
    private static async Task<IPAddress?> IcmpErrorSource(Socket icmp, bool v6)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        byte[] buffer = new byte[1500];
        EndPoint any = new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        try
        {
            while (true)
            {
                SocketReceiveFromResult r = await icmp.ReceiveFromAsync(buffer, SocketFlags.None, any, cts.Token);
                // IPv4 raw sockets deliver the IP header; ICMPv6 raw sockets start at the ICMPv6 header.
                int typeOffset = v6 ? 0 : (buffer[0] & 0x0F) * 4;
                if (r.ReceivedBytes > typeOffset && buffer[typeOffset] == (v6 ? 1 : 3))
                    return ((IPEndPoint)r.RemoteEndPoint).Address;
            }
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Sends one datagram from the client on a connected socket: the echo, "refused" (ICMP unreachable) or "timeout".</summary>
    internal static async Task<string> Exchange(GatewayLab lab, IPAddress server, int port, string message)
    {
        using Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp));
        socket.Connect(new IPEndPoint(server, port));
        return await Talk.Say(socket, message);
    }
}
