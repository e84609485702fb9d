using Ctfw.Conntrack;

namespace Ctfw.Linux;

/// <summary>Reads the conntrack sysctls of the current network namespace from /proc/sys/net/netfilter.</summary>
public static class LiveSysctls
{
    public const string Directory = "/proc/sys/net/netfilter";

    /// <summary>
    /// Applies every modelled nf_conntrack_* value found in <paramref name="directory"/> to
    /// <paramref name="settings"/>. Names this build does not model are skipped (the kernel has many
    /// more knobs than classification needs). Returns an error message, or null.
    /// </summary>
    public static string? Apply(ConntrackSettings settings, string directory = Directory)
    {
        if (!System.IO.Directory.Exists(directory))
            return $"{directory} does not exist: is the nf_conntrack module loaded? (modprobe nf_conntrack)";
        int applied = 0;
        foreach (string path in System.IO.Directory.EnumerateFiles(directory, "nf_conntrack_*"))
        {
            string name = Path.GetFileName(path);
            if (!ConntrackSettings.IsKnown(name))
                continue;
            string text;
            try
            {
                text = File.ReadAllText(path).Trim();
            }
            catch (IOException)
            {
                continue; // e.g. write-only or vanished knobs
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }
            string? err = settings.Set(name, text);
            if (err != null)
                return $"{path}: {err}";
            applied++;
        }
        return applied == 0 ? $"{directory}: no nf_conntrack_* sysctls found" : null;
    }

    /// <summary>
    /// A one-line warning when <paramref name="directory"/> has nf_conntrack_helper set to 1 (kernels
    /// before 6.0 have the knob; 6.x has none): the kernel then gives helpers to connections by port
    /// on its own, which ctfw does not do. Null when the knob is absent, 0, or unreadable.
    /// </summary>
    public static string? AutoHelperWarning(string directory = Directory)
    {
        string text;
        try
        {
            text = File.ReadAllText(Path.Combine(directory, "nf_conntrack_helper")).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        return text == "1"
            ? "nf_conntrack_helper=1: the kernel assigns conntrack helpers by port on its own; ctfw does not (only the raw table's "
              + "`CT --helper` rules assign them), so connections the kernel calls RELATED may be NEW to ctfw"
            : null;
    }
}
