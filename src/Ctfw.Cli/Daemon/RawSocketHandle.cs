using System.Runtime.InteropServices;

namespace Ctfw.Cli.Daemon;

/// <summary>A raw IP socket descriptor, closed exactly once.</summary>
internal sealed class RawSocketHandle : SafeHandle
{
    /// <summary>Called by the LibraryImport generator when <c>socket(2)</c> returns.</summary>
    public RawSocketHandle()
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle < 0;

    protected override bool ReleaseHandle() => Interop.Close((int)handle) == 0;
}
