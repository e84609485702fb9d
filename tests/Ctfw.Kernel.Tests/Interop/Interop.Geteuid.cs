using System.Runtime.InteropServices;

namespace Ctfw.Kernel.Tests;

internal static partial class Interop
{
    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint Geteuid();
}
