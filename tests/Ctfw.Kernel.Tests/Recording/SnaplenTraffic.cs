using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ctfw.Kernel.Tests.Lab;
using Ctfw.Packets;

namespace Ctfw.Kernel.Tests.Recording;

/// <summary>
/// The traffic of the snap-length recordings: real TCP between the client's and the server's own
/// stacks (HTTP-like request/response, a bulk download, an upload over IPv6, a keep-alive
/// connection the server closes), plus crafted short frames sent with their Ethernet padding (a
/// TCP connection to the real server whose SYN, ACK, 4-byte request and RST are 54- to 58-byte
/// frames padded to 60, and a padded empty UDP datagram the server answers with port unreachable).
/// </summary>
internal static class SnaplenTraffic
{
    public const int Port = 8080;
    private const ushort CraftedPort = 40404;
    private const ushort DiscardPort = 9;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    /// <summary>Runs everything once; returns when every exchange completed (throws if one did not).</summary>
    public static void Run(SnaplenLab lab)
    {
        using Socket listener = Netns.Run(lab.Server, () =>
        {
            var s = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
            s.Bind(new IPEndPoint(IPAddress.IPv6Any, Port));
            s.Listen(16);
            return s;
        });
        var server = new Thread(() => Serve(listener)) { IsBackground = true, Name = "snaplen server" };
        server.Start();

        // HTTP-ish exchanges, each on its own connection, client closes.
        Exchange(lab, SnaplenLab.ServerV4, [Request("GET", 612)]);
        Exchange(lab, SnaplenLab.ServerV4, [Request("GET", 200_000)]);
        Exchange(lab, SnaplenLab.ServerV6, [Request("PUT", 60_000)], upload: 60_000);
        Exchange(lab, SnaplenLab.ServerV6, [Request("GET", 100_000)]);
        // Keep-alive: three requests on one connection; the server closes after the last.
        Exchange(lab, SnaplenLab.ServerV4, [Request("GET", 1_500), Request("GET", 3_000), Request("GET", 40, close: true)]);
        CraftedPaddedFlow(lab);
    }

    private static string Request(string verb, int length, bool close = false) =>
        string.Create(CultureInfo.InvariantCulture, $"{verb} {length}{(close ? " close" : "")}\r\n\r\n");

    private static void Exchange(SnaplenLab lab, string server, string[] requests, int upload = 0)
    {
        using Socket client = Netns.Run(lab.Client, () =>
            new Socket(server.Contains(':', StringComparison.Ordinal) ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork,
                SocketType.Stream, ProtocolType.Tcp));
        client.ReceiveTimeout = (int)s_timeout.TotalMilliseconds;
        client.Connect(IPAddress.Parse(server), Port);
        bool serverCloses = false;
        foreach (string request in requests)
        {
            client.Send(Encoding.ASCII.GetBytes(request));
            if (request.StartsWith("PUT", StringComparison.Ordinal))
                client.Send(new byte[upload]);
            int expected = ReadHeader(client);
            ReadExactly(client, expected);
            serverCloses = request.Contains("close", StringComparison.Ordinal);
        }
        if (!serverCloses)
            client.Shutdown(SocketShutdown.Send);
        // Either way, wait for the server's FIN before closing, so the teardown is complete.
        if (client.Receive(new byte[1]) != 0)
            throw new InvalidOperationException("server sent more than it announced");
    }

    private static void Serve(Socket listener)
    {
        while (true)
        {
            Socket connection;
            try
            {
                connection = listener.Accept();
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                return;
            }
            var worker = new Thread(() => Answer(connection)) { IsBackground = true };
            worker.Start();
        }
    }

    /// <summary>Answers "GET n" with n bytes and "PUT n" (followed by n bytes) with 2; "close" or an empty header ends the connection.</summary>
    private static void Answer(Socket connection)
    {
        using (connection)
        {
            connection.ReceiveTimeout = (int)s_timeout.TotalMilliseconds;
            try
            {
                while (TryReadRequest(connection, out string header))
                {
                    string[] words = header.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    int length = words.Length >= 2 ? int.Parse(words[1], CultureInfo.InvariantCulture) : 100;
                    if (words.Length >= 1 && words[0] == "PUT")
                    {
                        ReadExactly(connection, length);
                        length = 2;
                    }
                    connection.Send(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"200 {length}\r\n\r\n")));
                    connection.Send(new byte[length]);
                    if (words.Length is 0 or 3)
                        break;
                }
                connection.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
                // The crafted client resets its connection; nothing to answer then.
            }
        }
    }

    /// <summary>Reads up to a blank line ("\r\n\r\n" or "\n\n"); false at end of stream.</summary>
    private static bool TryReadRequest(Socket s, out string header)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (true)
        {
            if (s.Receive(one) == 0)
            {
                header = "";
                return false;
            }
            bytes.Add(one[0]);
            string text = Encoding.ASCII.GetString([.. bytes]);
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0)
                end = text.IndexOf("\n\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                header = text[..end].Trim();
                return true;
            }
        }
    }

    private static int ReadHeader(Socket s)
    {
        if (!TryReadRequest(s, out string header))
            throw new InvalidOperationException("server closed before answering");
        return int.Parse(header.Split(' ')[1], CultureInfo.InvariantCulture);
    }

    private static void ReadExactly(Socket s, int length)
    {
        var buffer = new byte[65536];
        while (length > 0)
        {
            int n = s.Receive(buffer, 0, Math.Min(buffer.Length, length), SocketFlags.None);
            if (n == 0)
                throw new InvalidOperationException($"connection closed {length} bytes early");
            length -= n;
        }
    }

    /// <summary>
    /// A TCP connection to the real server from a port the client's stack knows nothing of, every
    /// frame of ours built by hand and padded to the Ethernet minimum of 60 bytes; the client's own
    /// RSTs for that port are dropped so the server talks only to us. Then a padded empty UDP
    /// datagram to a closed port.
    /// </summary>
    private static void CraftedPaddedFlow(SnaplenLab lab)
    {
        (int ifIndex, byte[] clientMac) = SnaplenLab.Link(lab.Client, SnaplenLab.ClientDevice);
        (_, byte[] gatewayMac) = SnaplenLab.Link(lab.Gateway, SnaplenLab.GatewayClientDevice);
        Tool.RunIn(lab.Client, "iptables", "-A", "OUTPUT", "-p", "tcp", "--sport", CraftedPort.ToString(CultureInfo.InvariantCulture),
            "--tcp-flags", "RST", "RST", "-j", "DROP");
        if (!IpAddress.TryParse(SnaplenLab.ClientV4, out IpAddress client, out _) || !IpAddress.TryParse(SnaplenLab.ServerV4, out IpAddress server, out _))
            throw new InvalidOperationException("lab addresses do not parse");

        using EthernetSocket link = EthernetSocket.Open(lab.Client, ifIndex);
        const uint isn = 0x1000_0000;
        var spec = new TcpSpec
        {
            Src = client, Dst = server, SrcPort = CraftedPort, DstPort = Port,
            Seq = isn, Flags = TcpFlags.Syn, Window = 64240,
        };
        SendPadded(link, clientMac, gatewayMac, spec);
        byte[] synAck = link.Receive(f => IsTcpFrom(f, Port, CraftedPort, TcpFlags.Syn | TcpFlags.Ack), s_timeout)
            ?? throw new InvalidOperationException("the server did not answer the crafted SYN");
        uint serverIsn = BinaryPrimitives.ReadUInt32BigEndian(synAck.AsSpan(14 + 20 + 4));

        spec.Seq = isn + 1;
        spec.Ack = serverIsn + 1;
        spec.Flags = TcpFlags.Ack;
        SendPadded(link, clientMac, gatewayMac, spec);
        spec.Flags = TcpFlags.Ack | TcpFlags.Psh;
        spec.PayloadLength = 4;
        spec.PayloadFill = (byte)'\n';
        SendPadded(link, clientMac, gatewayMac, spec);
        _ = link.Receive(f => IsTcpFrom(f, Port, CraftedPort, TcpFlags.Fin), s_timeout)
            ?? throw new InvalidOperationException("the server did not answer the crafted request");
        spec.Seq = isn + 1 + 4;
        spec.Flags = TcpFlags.Rst;
        spec.Ack = 0;
        spec.PayloadLength = 0;
        SendPadded(link, clientMac, gatewayMac, spec);

        Span<byte> udp = stackalloc byte[28];
        PacketBuilder.Udp(udp, v6: false, client, server, CraftedPort, DiscardPort, payloadLength: 0);
        link.Send(Frame(clientMac, gatewayMac, udp));
        _ = link.Receive(f => f.Length > 14 + 20 && f[12] == 0x08 && f[13] == 0 && f[14 + 9] == IpProto.Icmp, s_timeout)
            ?? throw new InvalidOperationException("no port unreachable for the padded UDP datagram");
    }

    private static void SendPadded(EthernetSocket link, byte[] src, byte[] dst, in TcpSpec spec)
    {
        Span<byte> ip = stackalloc byte[64];
        int length = PacketBuilder.Tcp(ip, spec);
        link.Send(Frame(src, dst, ip[..length]));
    }

    /// <summary>Ethernet II frame around an IPv4 datagram, zero-padded to the 60-byte minimum (FCS not included, as captures show it).</summary>
    public static byte[] Frame(byte[] src, byte[] dst, ReadOnlySpan<byte> ip)
    {
        var frame = new byte[Math.Max(60, 14 + ip.Length)];
        dst.CopyTo(frame, 0);
        src.CopyTo(frame, 6);
        frame[12] = 0x08;
        ip.CopyTo(frame.AsSpan(14));
        return frame;
    }

    private static bool IsTcpFrom(byte[] f, ushort sport, ushort dport, TcpFlags flags)
    {
        if (f.Length < 14 + 20 + 20 || f[12] != 0x08 || f[13] != 0 || f[14 + 9] != IpProto.Tcp)
            return false;
        int l4 = 14 + (f[14] & 0x0F) * 4;
        return BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(l4)) == sport
            && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(l4 + 2)) == dport
            && ((TcpFlags)f[l4 + 13] & flags) == flags;
    }
}
