using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal const int AfNetlink = 16;
    internal const int SockRaw = 3;
    internal const int SockCloexec = 0x80000;

    /// <summary>NETLINK_NETFILTER (linux/netlink.h): nfnetlink, home of NFQUEUE and ctnetlink.</summary>
    internal const int NetlinkNetfilter = 12;

    /// <summary>socket(2). An invalid handle means failure; the errno is in <see cref="GetLastErrno"/>.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "socket", SetLastError = true)]
    internal static partial NetlinkSocket Socket(int domain, int type, int protocol);
}
