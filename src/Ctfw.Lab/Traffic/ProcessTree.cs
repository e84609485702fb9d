using System.Globalization;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>
/// The descendants of one of our children, read from /proc, so that a stop can make sure they are
/// gone too. A descendant outlives its parent when the parent is killed (nginx workers after a
/// SIGKILL of the master): it is re-parented, and until it dies it still sits in the namespace.
/// Each process is identified by pid and start time, so a recycled pid is never signalled.
/// </summary>
internal static class ProcessTree
{
    internal readonly record struct Entry(int Pid, int ParentPid, ulong StartTime, char State);

    public static List<Entry> DescendantsOf(int root)
    {
        List<Entry> all = [];
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && TryRead(pid, out Entry e))
                all.Add(e);
        }
        List<Entry> found = [];
        var parents = new HashSet<int> { root };
        bool grew = true;
        while (grew)
        {
            grew = false;
            foreach (Entry e in all)
            {
                if (parents.Contains(e.ParentPid) && parents.Add(e.Pid))
                {
                    found.Add(e);
                    grew = true;
                }
            }
        }
        return found;
    }

    /// <summary>Waits until each of <paramref name="entries"/> has died; SIGKILLs the ones still alive after <paramref name="timeout"/>.</summary>
    public static void EnsureGone(List<Entry> entries, TimeSpan timeout)
    {
        if (entries.Count == 0)
            return;
        DateTime deadline = DateTime.UtcNow + timeout;
        bool killed = false;
        while (true)
        {
            entries.RemoveAll(e => !IsAlive(e));
            if (entries.Count == 0)
                return;
            if (DateTime.UtcNow > deadline)
            {
                if (killed)
                    return; // SIGKILL is not ignorable; it can only be in an uninterruptible sleep
                foreach (Entry e in entries)
                    _ = Interop.Kill(e.Pid, Interop.SigKill);
                killed = true;
                deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
            }
            Thread.Sleep(10);
        }
    }

    /// <summary>Still running as the same process; a zombie has left every namespace and only waits to be reaped.</summary>
    private static bool IsAlive(Entry e) => TryRead(e.Pid, out Entry now) && now.StartTime == e.StartTime && now.State != 'Z' && now.State != 'X';

    /// <summary>Reads <c>/proc/PID/stat</c>: "pid (comm) state ppid … starttime(22nd) …"; comm may hold spaces and parentheses.</summary>
    internal static bool TryRead(int pid, out Entry entry)
    {
        entry = default;
        if (!Ctfw.Linux.ProcStat.TryRead(pid, out Ctfw.Linux.ProcStat stat))
            return false;
        entry = new Entry(stat.Pid, stat.ParentPid, stat.StartTime, stat.State);
        return true;
    }
}
