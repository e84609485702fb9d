using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>getsockname(2): reads back the port id the kernel assigned at bind.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "getsockname", SetLastError = true)]
    internal static unsafe partial int GetSockName(SocketHandle socket, SockAddrNl* address, uint* addressLength);
}
