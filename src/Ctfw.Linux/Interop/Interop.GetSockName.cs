using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>getsockname(2) (Tmds.LibC): reads back the port id the kernel assigned at bind.</summary>
    internal static unsafe int GetSockName(SocketHandle socket, SockAddrNl* address, uint* addressLength)
    {
        using var fd = new SafeHandleLease(socket);
        return LibC.getsockname(fd.Fd, (sockaddr*)address, (socklen_t*)addressLength);
    }
}
