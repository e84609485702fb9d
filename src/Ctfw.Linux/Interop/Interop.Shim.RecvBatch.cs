using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal static partial class Shim
    {
        /// <summary>
        /// <c>ctfw_recv_batch</c>: one recvmmsg(2) into up to <paramref name="count"/> slots. Returns the
        /// number of datagrams, or -1 with <paramref name="error"/> set. Blocking (mode
        /// <see cref="RecvWaitForOne"/>), so never <c>SuppressGCTransition</c>.
        /// </summary>
        [LibraryImport(Libraries.Shim, EntryPoint = "ctfw_recv_batch")]
        internal static unsafe partial int RecvBatch(SocketHandle socket, RxSlot* slots, uint count, int mode, Errno* error);
    }
}
