using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>The errno saved by the last <c>SetLastError = true</c> import on this thread.</summary>
    internal static Errno GetLastErrno() => (Errno)Marshal.GetLastPInvokeError();
}
