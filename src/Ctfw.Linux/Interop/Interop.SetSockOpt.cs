using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>NETLINK_NO_ENOBUFS (linux/netlink.h); Tmds.LibC has SOL_NETLINK but not the netlink options.</summary>
    internal const int NetlinkNoEnobufs = 5;

    /// <summary>setsockopt(2) (Tmds.LibC).</summary>
    internal static unsafe int SetSockOpt(SocketHandle socket, int level, int name, void* value, uint valueLength)
    {
        using var fd = new SafeHandleLease(socket);
        return LibC.setsockopt(fd.Fd, level, name, value, valueLength);
    }
}
