using System.Runtime.InteropServices;

namespace Ctfw.Cli.Daemon;

internal static partial class Interop
{
    /// <summary>sendto(2) of one whole IP packet to a raw socket; the address only picks the route.</summary>
    [LibraryImport("libc", EntryPoint = "sendto", SetLastError = true)]
    internal static unsafe partial nint SendTo(RawSocketHandle socket, byte* buffer, nuint length, int flags, byte* address, uint addressLength);
}
