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
        string text;
        try
        {
            text = File.ReadAllText($"/proc/self/task/{threadId.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
        if (!TryParseStatTimes(text, out long userTicks, out long systemTicks))
            return false;
        userMicroseconds = userTicks * 1_000_000 / s_ticksPerSecond;
        systemMicroseconds = systemTicks * 1_000_000 / s_ticksPerSecond;
        return true;
    }

    /// <summary>
    /// utime and stime (fields 14 and 15) of a /proc/PID/stat line. The command name (field 2) may hold
    /// spaces and parentheses, so fields are counted from the last ')'.
    /// </summary>
    public static bool TryParseStatTimes(string stat, out long userTicks, out long systemTicks)
    {
        userTicks = systemTicks = 0;
        int close = stat.LastIndexOf(')');
        if (close < 0)
            return false;
        string[] fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state); utime is field 14 → index 11, stime → index 12.
        return fields.Length > 12
            && long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out userTicks)
            && long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out systemTicks);
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
