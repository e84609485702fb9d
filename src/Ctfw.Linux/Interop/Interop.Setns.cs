using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>CLONE_NEWNET (sched.h).</summary>
    internal const int CloneNewNet = 0x4000_0000;

    /// <summary>setns(2): moves only the calling thread into the namespace <paramref name="nsFd"/> refers to.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "setns", SetLastError = true)]
    internal static partial int Setns(SafeFileHandle nsFd, int nsType);
}
