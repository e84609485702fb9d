using System.Globalization;
using Ctfw.Lab.Network;

namespace Ctfw.TestSupport;

/// <summary>
/// What a lab-building command (`ctfw lab`, `ctfw bench`) may leave behind, seen from outside: its
/// namespaces (named PREFIX-PID-*, see <see cref="NamespaceLab"/>), processes inside them, processes naming something of it.
/// </summary>
public static class LabLeftovers
{
    /// <summary>The namespaces named <c>&lt;prefix&gt;&lt;pid&gt;-*</c>.</summary>
    public static string[] Namespaces(string prefix, int pid) =>
    [
        .. Tool.Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', 2)[0])
            .Where(n => n.StartsWith(string.Create(CultureInfo.InvariantCulture, $"{prefix}{pid}-"), StringComparison.Ordinal)),
    ];

    /// <summary>The name each id had when <see cref="NamespaceIds"/> took it.</summary>
    private static readonly Dictionary<string, string> s_names = [];

    /// <summary>Those namespaces as /proc/PID/ns/net names them (`net:[INODE]`), which outlive the names.</summary>
    public static string[] NamespaceIds(string prefix, int pid)
    {
        List<string> ids = [];
        foreach (string name in Namespaces(prefix, pid))
        {
            string id = Id(name);
            lock (s_names)
                s_names[id] = name;
            ids.Add(id);
        }
        return [.. ids];
    }

    private static string Id(string name) => $"net:[{Tool.Run("stat", "-L", "-c", "%i", $"/run/netns/{name}").Trim()}]";

    /// <summary>
    /// `PID cmdline` of every process whose network namespace is one of <paramref name="namespaceIds"/>.
    /// The kernel reuses the inode number of a freed namespace, so an id that now belongs to another
    /// name (a parallel run's lab) is no longer ours and is skipped.
    /// </summary>
    public static List<string> ProcessesIn(string[] namespaceIds)
    {
        List<string> found = [];
        namespaceIds = [.. namespaceIds.Where(id => !Reused(id))];
        if (namespaceIds.Length == 0)
            return found;
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                continue;
            try
            {
                string? ns = new FileInfo(Path.Combine(dir, "ns", "net")).LinkTarget;
                if (ns is not null && namespaceIds.Contains(ns))
                    found.Add($"{pid} {CommandLine(dir)}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Exited meanwhile.
            }
        }
        return found;
    }

    private static bool Reused(string id)
    {
        string? original;
        lock (s_names)
            original = s_names.GetValueOrDefault(id);
        if (original is null)
            return false;
        string[] files = Directory.Exists("/run/netns") ? [.. Directory.EnumerateFiles("/run/netns")] : [];
        if (files.Length == 0)
            return false;
        // One stat for all names; a name deleted meanwhile only makes stat exit non-zero.
        foreach (string line in Tool.Run(checkExit: false, ["stat", "-L", "-c", "%i %n", .. files]).StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = line.Split(' ', 2);
            if (parts.Length == 2 && $"net:[{parts[0]}]" == id && Path.GetFileName(parts[1]) != original)
                return true;
        }
        return false;
    }

    /// <summary>`PID cmdline` of every process (other than this one) with <paramref name="text"/> in its command line.</summary>
    public static List<string> ProcessesWithArgument(string text)
    {
        List<string> found = [];
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId)
                continue;
            string cmdline = CommandLine(dir);
            if (cmdline.Contains(text, StringComparison.Ordinal))
                found.Add($"{pid} {cmdline}");
        }
        return found;
    }

    private static string CommandLine(string procDir)
    {
        try
        {
            return File.ReadAllText(Path.Combine(procDir, "cmdline")).Replace('\0', ' ').Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
