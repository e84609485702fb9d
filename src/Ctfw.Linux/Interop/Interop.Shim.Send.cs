using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal static partial class Shim
    {
        /// <summary><c>ctfw_send</c>: one sendmsg(2) of a caller-built buffer to the kernel. Returns bytes sent or -1 with <paramref name="error"/>.</summary>
        [LibraryImport(Libraries.Shim, EntryPoint = "ctfw_send")]
        internal static unsafe partial int Send(SocketHandle socket, byte* buffer, uint length, Errno* error);
    }
}
