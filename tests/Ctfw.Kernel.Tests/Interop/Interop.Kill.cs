using System.Runtime.InteropServices;

namespace Ctfw.Kernel.Tests;

internal static partial class Interop
{
    internal const int SigTerm = 15;

    /// <summary>kill(2), used to stop a child (tcpdump) gracefully so it closes its capture file.</summary>
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}
