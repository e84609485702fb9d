using System.Runtime.InteropServices;

namespace Ctfw.Lab.Network;

internal static partial class Interop
{
    internal const int SigTerm = 15;
    internal const int SigUsr1 = 10;
    internal const int SigKill = 9;

    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint Geteuid();

    /// <summary>kill(2): stops a child (tcpdump, a traffic generator) so it can close its files.</summary>
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}
