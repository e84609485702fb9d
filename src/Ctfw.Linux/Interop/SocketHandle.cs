using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>
/// A socket descriptor (AF_NETLINK for NFQUEUE, raw IP for REJECT answers). The fd is closed exactly
/// once, when the last in-flight call that holds it has returned (the shim's LibraryImports add a
/// reference for a SafeHandle parameter; the Tmds.LibC calls hold a <see cref="SafeHandleLease"/>), so
/// disposing while another thread is blocked in a receive is safe: the receive finishes first
/// (SO_RCVTIMEO bounds the wait) and the close follows.
/// </summary>
internal sealed class SocketHandle : SafeHandle
{
    public SocketHandle()
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle < 0;

    /// <summary>Takes ownership of the descriptor <see cref="Interop.Socket"/> got from socket(2).</summary>
    internal void Own(int fd) => SetHandle(fd);

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
