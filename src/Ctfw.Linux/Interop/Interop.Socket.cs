using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal const int AfInet = 2;
    internal const int AfInet6 = 10;
    internal const int AfNetlink = 16;

    /// <summary>IPPROTO_RAW: the caller writes the IP header (IP_HDRINCL is implied, for IPv6 too).</summary>
    internal const int IpprotoRaw = 255;
    internal const int SockRaw = 3;
    internal const int SockCloexec = 0x80000;

    /// <summary>NETLINK_NETFILTER (linux/netlink.h): nfnetlink, home of NFQUEUE and ctnetlink.</summary>
    internal const int NetlinkNetfilter = 12;

    /// <summary>socket(2). An invalid handle means failure; the errno is in <see cref="GetLastErrno"/>.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "socket", SetLastError = true)]
    internal static partial SocketHandle Socket(int domain, int type, int protocol);
}
