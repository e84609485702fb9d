using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>NETLINK_CAP_ACK (linux/netlink.h): ACKs and errors echo only the request's header, not its payload.</summary>
    internal const int NetlinkCapAck = 10;

    /// <summary>
    /// recvfrom(2) (Tmds.LibC) on a netlink socket: one datagram and its sender's address (port 0 is the
    /// kernel). With MSG_TRUNC in <paramref name="flags"/> a netlink socket returns the datagram's real
    /// length even when it did not fit. Returns -1 with the errno in <see cref="GetLastErrno"/>.
    /// </summary>
    internal static unsafe nint RecvFrom(SocketHandle socket, byte* buffer, nuint length, int flags, SockAddrNl* source, uint* sourceLength)
    {
        using var fd = new SafeHandleLease(socket);
        return (nint)(long)LibC.recvfrom(fd.Fd, buffer, (size_t)(ulong)length, flags, (sockaddr*)source, (socklen_t*)sourceLength);
    }
}
