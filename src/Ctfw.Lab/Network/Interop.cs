using Tmds.Linux;

namespace Ctfw.Lab.Network;

/// <summary>The lab's few libc calls, through Tmds.LibC (names kept for the callers in Lab, Bench, Traffic and the CLI).</summary>
internal static class Interop
{
    internal static int SigTerm => LibC.SIGTERM;
    internal static int SigUsr1 => LibC.SIGUSR1;
    internal static int SigKill => LibC.SIGKILL;

    /// <summary>geteuid(2).</summary>
    internal static uint Geteuid() => LibC.geteuid();

    /// <summary>kill(2): stops a child (tcpdump, a traffic generator) so it can close its files.</summary>
    internal static int Kill(int pid, int signal) => LibC.kill(pid, signal);
}
