using System.Globalization;

namespace Ctfw.Linux;

/// <summary>
/// The fields ctfw uses of one <c>/proc/PID/stat</c> (or <c>/proc/PID/task/TID/stat</c>) line, as
/// proc(5) numbers them: "pid (comm) state(3) ppid(4) … utime(14) stime(15) … starttime(22) …".
/// The one parser of that line for the daemon, the installer's run tags and the lab.
/// </summary>
public readonly record struct ProcStat(int Pid, string Comm, char State, int ParentPid, long UserTicks, long SystemTicks, ulong StartTime)
{
    /// <summary>Exited: a zombie (Z) waiting for its parent, or dead (X). It has left every namespace.</summary>
    public bool HasExited => State is 'Z' or 'X';

    /// <summary>
    /// Parses one stat line. comm may hold spaces and parentheses (a thread can name itself
    /// ") R 1"), so comm runs from the first " (" to the last ')' and fields are counted after it.
    /// False, never an exception, for anything truncated or malformed.
    /// </summary>
    public static bool TryParse(string text, out ProcStat stat)
    {
        stat = default;
        int open = text.IndexOf(" (", StringComparison.Ordinal);
        int close = text.LastIndexOf(')');
        if (open <= 0 || close < open || !int.TryParse(text.AsSpan(0, open), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            return false;
        string[] f = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // f[0] is field 3 (state), so field N is f[N - 3].
        if (f.Length < 20 || f[0].Length != 1
            || !int.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out int ppid)
            || !long.TryParse(f[11], NumberStyles.None, CultureInfo.InvariantCulture, out long user)
            || !long.TryParse(f[12], NumberStyles.None, CultureInfo.InvariantCulture, out long system)
            || !ulong.TryParse(f[19], NumberStyles.None, CultureInfo.InvariantCulture, out ulong start))
        {
            return false;
        }
        stat = new ProcStat(pid, text[(open + 2)..close], f[0][0], ppid, user, system, start);
        return true;
    }

    /// <summary>Reads and parses <c>/proc/PID/stat</c>; false when the process is gone (or unreadable).</summary>
    public static bool TryRead(int pid, out ProcStat stat) =>
        TryReadFile(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}/stat"), out stat);

    /// <summary>Reads and parses a stat file (a thread's: <c>/proc/PID/task/TID/stat</c>).</summary>
    public static bool TryReadFile(string path, out ProcStat stat)
    {
        stat = default;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // exited meanwhile, or hidden (hidepid)
        }
        return TryParse(text, out stat);
    }
}
