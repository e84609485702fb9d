using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>NETLINK_NETFILTER (linux/netlink.h): nfnetlink, home of NFQUEUE and ctnetlink. Tmds.LibC has no netlink protocol numbers.</summary>
    internal const int NetlinkNetfilter = 12;

    /// <summary>socket(2) (Tmds.LibC). An invalid handle means failure; the errno is in <see cref="GetLastErrno"/>.</summary>
    internal static SocketHandle Socket(int domain, int type, int protocol)
    {
        // Allocated before the call, as the LibraryImport generator does, so a descriptor that
        // socket(2) returned always has an owner that closes it.
        var handle = new SocketHandle();
        int fd = LibC.socket(domain, type, protocol);
        if (fd >= 0)
            handle.Own(fd);
        return handle;
    }
}
