using System.Runtime.InteropServices;

namespace Ctfw.Cli.Daemon;

internal static partial class Interop
{
    internal const int AfInet = 2;
    internal const int AfInet6 = 10;
    internal const int SockRaw = 3;
    internal const int SockCloexec = 0x80000;

    /// <summary>IPPROTO_RAW: the caller writes the IP header (IP_HDRINCL is implied, for IPv6 too).</summary>
    internal const int IpprotoRaw = 255;

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    internal static partial RawSocketHandle Socket(int domain, int type, int protocol);
}
