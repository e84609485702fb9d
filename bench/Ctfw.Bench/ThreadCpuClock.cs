using System.Runtime.InteropServices;
using Perfolizer.Horology;

namespace Ctfw.Bench;

/// <summary>
/// A BenchmarkDotNet clock that reads the calling thread's CPU time (Linux
/// <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>) instead of wall time. On a machine shared with
/// other builds, wall time counts the slices in which our thread was not even running; CPU time
/// does not (steal time is excluded too with paravirt time accounting). It still includes the
/// cost of caches the co-tenants evicted, so it is a lower-noise estimate, not an isolated one.
/// Used by `--cpu-clock`, with the in-process toolchain so that the clock object is the one that
/// runs the iterations. Each read is a system call (~0.2 µs here), made once per iteration.
/// </summary>
internal sealed class ThreadCpuClock : IClock
{
    private const int ClockThreadCpuTimeId = 3;

    public static readonly ThreadCpuClock Instance = new();

    public string Title => "ThreadCpuTime";

    public bool IsAvailable => OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTimeId, out _) == 0;

    public Frequency Frequency => Frequency.GHz;

    public long GetTimestamp()
    {
        if (ClockGetTime(ClockThreadCpuTimeId, out Timespec ts) != 0)
            throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        return (ts.Seconds * 1_000_000_000) + ts.Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clockId, out Timespec ts);
}
