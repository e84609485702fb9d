using System.Runtime.InteropServices;

namespace Ctfw.Linux;

/// <summary>
/// Holds a reference on a <see cref="SafeHandle"/> for the length of one Tmds.LibC call, which takes
/// the bare int descriptor. This is what the LibraryImport generator emits for a SafeHandle
/// parameter: while the lease is held, a concurrent Dispose cannot close the fd (and the kernel
/// cannot hand its number to another open) under the call. Throws ObjectDisposedException if the
/// handle is already closed, as a SafeHandle parameter does.
/// </summary>
internal ref struct SafeHandleLease
{
    private readonly SafeHandle _handle;
    private bool _added;

    public SafeHandleLease(SafeHandle handle)
    {
        _handle = handle;
        _added = false;
        handle.DangerousAddRef(ref _added);
        Fd = (int)handle.DangerousGetHandle();
    }

    public int Fd { get; }

    public void Dispose()
    {
        if (_added)
        {
            _added = false;
            _handle.DangerousRelease();
        }
    }
}
