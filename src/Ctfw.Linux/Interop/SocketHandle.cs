using System.Runtime.InteropServices;

namespace Ctfw.Linux;

/// <summary>
/// A socket descriptor (AF_NETLINK for NFQUEUE, raw IP for REJECT answers). The fd is closed exactly once, when the last in-flight call
/// that holds it (every LibraryImport with a SafeHandle parameter adds a reference) has returned, so
/// disposing while another thread is blocked in a receive is safe: the receive finishes first
/// (SO_RCVTIMEO bounds the wait) and the close follows.
/// </summary>
internal sealed class SocketHandle : SafeHandle
{
    /// <summary>Called by the LibraryImport generator when <c>socket(2)</c> returns.</summary>
    public SocketHandle()
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle < 0;

    protected override bool ReleaseHandle() => Interop.Close((int)handle) == 0;
}
