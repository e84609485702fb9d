using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal const int SolSocket = 1;
    internal const int SoRcvbuf = 8;
    internal const int SoRcvtimeo = 20;      // x86-64/arm64 value of SO_RCVTIMEO_OLD (struct timeval, 64-bit longs)
    internal const int SoRcvbufforce = 33;
    internal const int SoMark = 36;           // needs CAP_NET_ADMIN

    internal const int SolNetlink = 270;
    internal const int NetlinkNoEnobufs = 5;

    /// <summary>setsockopt(2).</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "setsockopt", SetLastError = true)]
    internal static unsafe partial int SetSockOpt(SocketHandle socket, int level, int name, void* value, uint valueLength);
}
