using System.Globalization;

namespace Ctfw.Lab.Bench;

/// <summary>CPU time of one process or thread, in clock ticks (USER_HZ, 100 per second on Linux).</summary>
public readonly record struct CpuTicks(long User, long System)
{
    /// <summary>USER_HZ: the unit of /proc's CPU times on every Linux architecture.</summary>
    public const int PerSecond = 100;

    public const double Microseconds = 1e6 / PerSecond;

    public static CpuTicks operator -(CpuTicks a, CpuTicks b) => new(a.User - b.User, a.System - b.System);

    public static CpuTicks operator +(CpuTicks a, CpuTicks b) => new(a.User + b.User, a.System + b.System);
}

/// <summary>One thread of a process as /proc/PID/task/TID/stat states it.</summary>
public readonly record struct ThreadCpu(int Tid, string Name, CpuTicks Cpu);

/// <summary>System-wide CPU time from the <c>cpu</c> line of /proc/stat, in ticks.</summary>
public readonly record struct SystemCpu(long Total, long Steal)
{
    /// <summary>Steal time over the interval from <paramref name="before"/> to this, as a percentage of all CPU time.</summary>
    public double StealPercentSince(SystemCpu before)
    {
        long total = Total - before.Total;
        return total > 0 ? 100.0 * (Steal - before.Steal) / total : 0;
    }
}

/// <summary>One row of /proc/net/netfilter/nfnetlink_queue (a bound queue of the reading network namespace).</summary>
public readonly record struct KernelQueueRow(int Queue, long Waiting, long QueueDropped, long UserDropped, long IdSequence)
{
    public long Drops => QueueDropped + UserDropped;
}

/// <summary>Parsers for the /proc files the benchmark reads (pure, so they are tested on fixed text).</summary>
public static class ProcStats
{
    /// <summary>
    /// Parses <c>/proc/PID/stat</c> (or a task's): "pid (comm) state ppid … utime(14) stime(15) …".
    /// comm may hold spaces and parentheses, so the fields are counted from the last ')'.
    /// </summary>
    public static bool TryParsePidStat(string stat, out int pid, out string name, out CpuTicks cpu)
    {
        pid = 0;
        name = "";
        cpu = default;
        if (!Ctfw.Linux.ProcStat.TryParse(stat, out Ctfw.Linux.ProcStat parsed))
            return false;
        (pid, name, cpu) = (parsed.Pid, parsed.Comm, new CpuTicks(parsed.UserTicks, parsed.SystemTicks));
        return true;
    }

    /// <summary>Parses the aggregate <c>cpu</c> line of /proc/stat: user nice system idle iowait irq softirq steal ….</summary>
    public static bool TryParseSystemCpu(string procStat, out SystemCpu cpu)
    {
        cpu = default;
        foreach (string line in procStat.Split('\n'))
        {
            if (!line.StartsWith("cpu ", StringComparison.Ordinal))
                continue;
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long total = 0, steal = 0;
            // Fields 1..8; guest and guest_nice (9, 10) are already counted in user and nice.
            for (int i = 1; i < f.Length && i <= 8; i++)
            {
                if (!long.TryParse(f[i], NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                    return false;
                total += v;
                if (i == 8)
                    steal = v;
            }
            cpu = new SystemCpu(total, steal);
            return f.Length >= 5;
        }
        return false;
    }

    /// <summary>
    /// Parses /proc/net/netfilter/nfnetlink_queue: queue number, peer portid, queue total, copy mode,
    /// copy range, queue dropped, user dropped, id sequence, 1.
    /// </summary>
    public static List<KernelQueueRow> ParseKernelQueues(string text)
    {
        List<KernelQueueRow> rows = [];
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 8
                || !int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out int queue)
                || !long.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out long waiting)
                || !long.TryParse(f[5], NumberStyles.None, CultureInfo.InvariantCulture, out long queueDropped)
                || !long.TryParse(f[6], NumberStyles.None, CultureInfo.InvariantCulture, out long userDropped)
                || !long.TryParse(f[7], NumberStyles.None, CultureInfo.InvariantCulture, out long idSequence))
            {
                continue;
            }
            rows.Add(new KernelQueueRow(queue, waiting, queueDropped, userDropped, idSequence));
        }
        return rows;
    }

    /// <summary>The process's CPU and each of its threads', or null when it has gone.</summary>
    public static (CpuTicks Process, List<ThreadCpu> Threads)? ReadProcess(int pid)
    {
        string? stat = TryRead($"/proc/{pid}/stat");
        if (stat is null || !TryParsePidStat(stat, out _, out _, out CpuTicks process))
            return null;
        List<ThreadCpu> threads = [];
        try
        {
            foreach (string dir in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                if (TryRead(Path.Combine(dir, "stat")) is { } t && TryParsePidStat(t, out int tid, out string name, out CpuTicks cpu))
                    threads.Add(new ThreadCpu(tid, name, cpu));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Exited meanwhile: the process figure is what counts.
        }
        return (process, threads);
    }

    public static SystemCpu ReadSystemCpu() =>
        TryRead("/proc/stat") is { } s && TryParseSystemCpu(s, out SystemCpu cpu) ? cpu : default;

    /// <summary>Resident set size from /proc/PID/status (VmRSS), in bytes; null when unavailable.</summary>
    public static long? ReadRssBytes(int pid)
    {
        string? status = TryRead($"/proc/{pid}/status");
        if (status is null)
            return null;
        foreach (string line in status.Split('\n'))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal) && Ctfw.Linux.ResourceUsage.TryParseKilobytes(line.AsSpan("VmRSS:".Length), out long kib))
                return kib * 1024;
        }
        return null;
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
