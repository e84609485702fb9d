using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>getsockopt(2) (Tmds.LibC).</summary>
    internal static unsafe int GetSockOpt(SocketHandle socket, int level, int name, void* value, uint* valueLength)
    {
        using var fd = new SafeHandleLease(socket);
        return LibC.getsockopt(fd.Fd, level, name, value, (socklen_t*)valueLength);
    }
}
