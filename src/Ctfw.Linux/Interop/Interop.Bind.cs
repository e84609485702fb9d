using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>bind(2) (Tmds.LibC) for a netlink socket; Tmds.LibC has no sockaddr_nl, so ours is passed as a sockaddr.</summary>
    internal static unsafe int Bind(SocketHandle socket, SockAddrNl* address, uint addressLength)
    {
        using var fd = new SafeHandleLease(socket);
        return LibC.bind(fd.Fd, (sockaddr*)address, addressLength);
    }
}
