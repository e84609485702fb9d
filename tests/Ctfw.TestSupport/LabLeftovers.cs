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

    /// <summary>Those namespaces as /proc/PID/ns/net names them (`net:[INODE]`), which outlive the names.</summary>
    public static string[] NamespaceIds(string prefix, int pid) =>
        [.. Namespaces(prefix, pid).Select(n => $"net:[{Tool.Run("stat", "-L", "-c", "%i", $"/run/netns/{n}").Trim()}]")];

    /// <summary>`PID cmdline` of every process whose network namespace is one of <paramref name="namespaceIds"/>.</summary>
    public static List<string> ProcessesIn(string[] namespaceIds)
    {
        List<string> found = [];
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
