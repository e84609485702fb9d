using System.Globalization;

namespace Ctfw.Cli.Control;

/// <summary>A running daemon found by its control socket.</summary>
internal readonly record struct RunningInstance(int Pid, string SocketPath);

/// <summary>
/// Where control sockets live: `$CTFW_RUN_DIR` (or /run/ctfw) holds one `ctfw-PID.sock` per
/// running `ctfw run`, so clients find daemons without configuration.
/// </summary>
internal static class ControlPaths
{
    public const string DefaultRunDirectory = "/run/ctfw";
    public const string RunDirectoryVariable = "CTFW_RUN_DIR";

    private const string Prefix = "ctfw-";
    private const string Suffix = ".sock";

    public static string RunDirectory =>
        Environment.GetEnvironmentVariable(RunDirectoryVariable) is { Length: > 0 } dir ? dir : DefaultRunDirectory;

    /// <summary>The control socket path of the daemon with process id <paramref name="pid"/>.</summary>
    public static string Default(int pid) =>
        Path.Combine(RunDirectory, string.Create(CultureInfo.InvariantCulture, $"{Prefix}{pid}{Suffix}"));

    /// <summary>The pid in a socket name made by <see cref="Default"/>.</summary>
    public static bool TryParsePid(string path, out int pid)
    {
        pid = 0;
        string name = Path.GetFileName(path);
        if (!name.StartsWith(Prefix, StringComparison.Ordinal) || !name.EndsWith(Suffix, StringComparison.Ordinal))
            return false;
        string digits = name[Prefix.Length..^Suffix.Length];
        return int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out pid) && pid > 0;
    }

    /// <summary>
    /// Sockets in <see cref="RunDirectory"/> whose daemon is alive, by pid. A socket whose pid has
    /// no /proc entry is removed, unless something still answers on it (a daemon in another pid
    /// namespace sharing the directory): then it is listed. Nothing is removed from a directory
    /// <see cref="ControlTrust"/> refuses; what is listed there is refused when it is connected to.
    /// </summary>
    public static List<RunningInstance> FindRunning()
    {
        var found = new List<RunningInstance>();
        string dir = RunDirectory;
        bool trusted = ControlTrust.CheckDirectory(dir) is null;
        IEnumerable<string> files;
        try
        {
            files = Directory.Exists(dir) ? Directory.GetFiles(dir, Prefix + "*" + Suffix) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return found;
        }
        foreach (string file in files)
        {
            if (!TryParsePid(file, out int pid))
                continue;
            if (!trusted || Directory.Exists(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}")) || ControlClient.Answers(file))
            {
                found.Add(new RunningInstance(pid, file));
                continue;
            }
            try
            {
                File.Delete(file);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for someone allowed to remove it; it is still not a running instance.
            }
        }
        found.Sort((a, b) => a.Pid.CompareTo(b.Pid));
        return found;
    }
}
