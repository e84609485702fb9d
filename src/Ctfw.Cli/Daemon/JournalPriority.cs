using System.Globalization;
using Ctfw.Linux;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// Syslog priorities for the daemon's lines when its stderr is the journal. systemd sets
/// <c>JOURNAL_STREAM=DEV:INODE</c> to the st_dev and st_ino of the stream it connects stdout/stderr
/// to (systemd.exec(5)); a process whose fd 2 still has that device and inode is writing to the
/// journal and may start each line with <c>&lt;N&gt;</c>, the priority journald records for it
/// (sd-daemon(3), SD_ERR…SD_DEBUG). When stderr was redirected (a shell, a file, `2&gt;&amp;1 | tee`) the
/// numbers differ and lines stay as they are.
/// </summary>
internal static class JournalPriority
{
    public const int Error = 3;
    public const int Warning = 4;
    public const int Notice = 5;
    public const int Info = 6;
    public const int Debug = 7;

    private const string Ctfw = "ctfw: ";

    /// <summary>True when fd 2 is the stream <c>$JOURNAL_STREAM</c> names.</summary>
    public static bool StderrIsJournal()
    {
        string? variable = Environment.GetEnvironmentVariable("JOURNAL_STREAM");
        if (string.IsNullOrEmpty(variable) || UnixIdentity.TryGetDeviceAndInode(2, out ulong device, out ulong inode) != Errno.None)
            return false;
        return Matches(variable, device, inode);
    }

    /// <summary>True when <paramref name="journalStream"/> is "DEV:INODE" (decimal) with these numbers.</summary>
    public static bool Matches(string? journalStream, ulong device, ulong inode)
    {
        if (journalStream is null)
            return false;
        int colon = journalStream.IndexOf(':', StringComparison.Ordinal);
        return colon > 0
            && ulong.TryParse(journalStream.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out ulong dev)
            && ulong.TryParse(journalStream.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ulong ino)
            && dev == device && ino == inode;
    }

    /// <summary>
    /// The priority of one line, by its kind: `ctfw: ALERT:` and `ctfw: error:` lines are err (3);
    /// warnings and refused control requests are warning (4); packet lines (LOG rules, A/B
    /// disagreements, rescues and their suppression notices) and control changes are notice (5);
    /// everything else (start, reload, state, the counters at stop) is info (6).
    /// </summary>
    public static int Of(ReadOnlySpan<char> line)
    {
        ReadOnlySpan<char> rest = line.StartsWith(Ctfw, StringComparison.Ordinal) ? line[Ctfw.Length..] : line;
        if (rest.StartsWith("ALERT", StringComparison.Ordinal) || rest.StartsWith("error:", StringComparison.Ordinal))
            return Error;
        if (rest.StartsWith("warning:", StringComparison.Ordinal) || rest.Contains(": warning:", StringComparison.Ordinal))
            return Warning;
        if (rest.StartsWith("control: ", StringComparison.Ordinal))
        {
            return rest.Contains(" refused to ", StringComparison.Ordinal) || rest.Contains(" denied to ", StringComparison.Ordinal)
                || rest.Contains(" answered busy", StringComparison.Ordinal) ? Warning : Notice;
        }
        if (rest.StartsWith("ab: ", StringComparison.Ordinal) || rest.StartsWith("rescue: ", StringComparison.Ordinal)
            || rest.Contains(" suppressed (rate limit ", StringComparison.Ordinal))
            return Notice;
        // A LOG rule's line: the kernel's layout, "[PREFIX]IN=… OUT=…".
        if (rest.Contains("IN=", StringComparison.Ordinal) && rest.Contains(" OUT=", StringComparison.Ordinal))
            return Notice;
        return Info;
    }
}
