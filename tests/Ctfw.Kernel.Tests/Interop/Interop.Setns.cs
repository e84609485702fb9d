using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ctfw.Kernel.Tests;

internal static partial class Interop
{
    /// <summary>CLONE_NEWNET from &lt;sched.h&gt;.</summary>
    internal const int CloneNewNet = 0x4000_0000;

    /// <summary>
    /// setns(2): moves the calling thread (only it) into the namespace <paramref name="nsFd"/> refers to.
    /// Sockets opened afterwards belong to that namespace for their whole life.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    internal static partial int Setns(SafeFileHandle nsFd, int nsType);
}
