using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Ctfw.Kernel.Tests.Lab;

/// <summary>
/// An AF_PACKET socket bound to one interface: sends whole Ethernet frames exactly as given (a
/// 60-byte frame around a 40-byte datagram reaches the peer with its padding, as from a real NIC)
/// and receives every frame the interface sends or receives. Frames it sends bypass iptables.
/// </summary>
public sealed class EthernetSocket : IDisposable
{
    private const ushort EthPAll = 0x0003;
    private readonly Socket _socket;
    private readonly SocketAddress _address;

    private EthernetSocket(Socket socket, SocketAddress address)
    {
        _socket = socket;
        _address = address;
    }

    /// <summary>Opens the socket inside <paramref name="ns"/>, bound to interface <paramref name="ifIndex"/>.</summary>
    public static EthernetSocket Open(string ns, int ifIndex) => Netns.Run(ns, () =>
    {
        // struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8].
        var address = new SocketAddress(AddressFamily.Packet, 20);
        Span<byte> bytes = address.Buffer.Span;
        BinaryPrimitives.WriteUInt16BigEndian(bytes[2..], EthPAll);
        BinaryPrimitives.WriteInt32LittleEndian(bytes[4..], ifIndex);
        bytes[11] = 6;
        var socket = new Socket(AddressFamily.Packet, SocketType.Raw, (ProtocolType)BinaryPrimitives.ReverseEndianness(EthPAll));
        try
        {
            socket.Bind(new LinkEndPoint(address));
            socket.ReceiveTimeout = 100;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new EthernetSocket(socket, address);
    });

    public void Send(ReadOnlySpan<byte> frame)
    {
        int sent = _socket.SendTo(frame, SocketFlags.None, _address);
        if (sent != frame.Length)
            throw new InvalidOperationException($"sent {sent} of {frame.Length} bytes");
    }

    /// <summary>Waits up to <paramref name="timeout"/> for a frame <paramref name="match"/> accepts; returns it, or null.</summary>
    public byte[]? Receive(Func<byte[], bool> match, TimeSpan timeout)
    {
        var buffer = new byte[2048];
        DateTime end = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < end)
        {
            int n;
            try
            {
                n = _socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                continue;
            }
            byte[] frame = buffer[..n];
            if (match(frame))
                return frame;
        }
        return null;
    }

    public void Dispose() => _socket.Dispose();

    private sealed class LinkEndPoint(SocketAddress address) : EndPoint
    {
        public override AddressFamily AddressFamily => AddressFamily.Packet;
        public override SocketAddress Serialize() => address;
        public override EndPoint Create(SocketAddress socketAddress) => new LinkEndPoint(socketAddress);
    }
}
