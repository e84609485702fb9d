using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>
    /// The errno saved by the last call on this thread that sets it (Tmds.LibC's imports and ours with
    /// <c>SetLastError = true</c> save it in the same per-thread slot), as the typed <see cref="Errno"/>.
    /// </summary>
    internal static Errno GetLastErrno() => (Errno)LibC.errno;
}
