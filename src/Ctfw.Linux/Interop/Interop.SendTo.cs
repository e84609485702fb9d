using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>sendto(2): the setup path's one-off requests. Verdicts go through <see cref="Shim.Send"/>.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "sendto", SetLastError = true)]
    internal static unsafe partial nint SendTo(SocketHandle socket, byte* buffer, nuint length, int flags, SockAddrNl* destination, uint destinationLength);

    /// <summary>sendto(2) with an AF_INET/AF_INET6 address: REJECT answers on a raw IP socket.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "sendto", SetLastError = true)]
    internal static unsafe partial nint SendToAddress(SocketHandle socket, byte* buffer, nuint length, int flags, byte* address, uint addressLength);
}
