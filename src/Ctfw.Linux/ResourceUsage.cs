using System.Globalization;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>CPU time of this process and of its threads, and its resident memory (for `ctfw stats`, never per packet).</summary>
public static class ResourceUsage
{
    private static readonly long s_ticksPerSecond = Math.Max(1, (long)LibC.sysconf(Interop.ScClkTck));

    /// <summary>The kernel's id of the calling thread (what /proc/self/task lists).</summary>
    public static int CurrentThreadId() => Interop.GetTid();

    /// <summary>User and system CPU time of the whole process, in microseconds (getrusage).</summary>
    public static unsafe bool TryGetProcessTimes(out long userMicroseconds, out long systemMicroseconds)
    {
        Interop.RUsage usage;
        if (Interop.GetRUsage(Interop.RusageSelf, &usage) != 0)
        {
            userMicroseconds = systemMicroseconds = 0;
            return false;
        }
        userMicroseconds = usage.UserSeconds * 1_000_000 + usage.UserMicroseconds;
        systemMicroseconds = usage.SystemSeconds * 1_000_000 + usage.SystemMicroseconds;
        return true;
    }

    /// <summary>
    /// User and system CPU time of one thread of this process, from /proc/self/task/TID/stat (clock-tick
    /// resolution, usually 10 ms), in microseconds.
    /// </summary>
    public static bool TryGetThreadTimes(int threadId, out long userMicroseconds, out long systemMicroseconds)
    {
        userMicroseconds = systemMicroseconds = 0;
        if (!ProcStat.TryReadFile(string.Create(CultureInfo.InvariantCulture, $"/proc/self/task/{threadId}/stat"), out ProcStat stat))
            return false;
        userMicroseconds = stat.UserTicks * 1_000_000 / s_ticksPerSecond;
        systemMicroseconds = stat.SystemTicks * 1_000_000 / s_ticksPerSecond;
        return true;
    }

    /// <summary>
    /// The private part of the resident set, in bytes: RssAnon of /proc/self/status (heap, stacks,
    /// the managed heap), without the file-backed pages of the runtime's and the program's images,
    /// which the page cache shares with every other process mapping them. -1 when unavailable.
    /// </summary>
    public static long AnonymousResidentBytes()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                    return TryParseKilobytes(line.AsSpan("RssAnon:".Length), out long kib) ? kib * 1024 : -1;
            }
        }
        catch (IOException)
        {
        }
        return -1;
    }

    /// <summary>Parses the "   123456 kB" value of a /proc/PID/status line.</summary>
    public static bool TryParseKilobytes(ReadOnlySpan<char> value, out long kib)
    {
        value = value.Trim();
        if (value.EndsWith("kB", StringComparison.Ordinal))
            value = value[..^2].TrimEnd();
        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out kib);
    }

    /// <summary>Resident set size of this process in bytes (/proc/self/statm), or -1.</summary>
    public static long ResidentBytes()
    {
        try
        {
            string[] fields = File.ReadAllText("/proc/self/statm").Split(' ');
            return fields.Length > 1 && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long pages)
                ? pages * Environment.SystemPageSize
                : -1;
        }
        catch (IOException)
        {
            return -1;
        }
    }
}
