using System.Diagnostics;

namespace Ctfw.Cli.Daemon;

/// <summary>The daemon's one clock: monotonic milliseconds, as the conntrack core expects.</summary>
internal static class DaemonClock
{
    private static readonly long s_ticksPerMs = Math.Max(1, Stopwatch.Frequency / 1000);

    public static long NowMs() => Stopwatch.GetTimestamp() / s_ticksPerMs;
}
