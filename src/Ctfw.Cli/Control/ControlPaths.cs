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

    /// <inheritdoc cref="TryFindRunning"/>
    public static List<RunningInstance> FindRunning()
    {
        TryFindRunning(out List<RunningInstance> found, out _);
        return found;
    }

    /// <summary>
    /// Sockets in <see cref="RunDirectory"/> whose daemon is alive, by pid: its pid has a /proc
    /// entry, or something answers on it (a daemon in another pid namespace sharing the directory).
    /// Nothing is ever removed here: the socket of a dead daemon is skipped and left for the next
    /// `ctfw run` on that path (which removes it only if it is its own). False with a one-line
    /// <paramref name="error"/> when the directory exists but this user may not list it.
    /// </summary>
    public static bool TryFindRunning(out List<RunningInstance> found, out string? error)
    {
        found = [];
        error = null;
        string dir = RunDirectory;
        IEnumerable<string> files;
        try
        {
            files = Directory.Exists(dir) ? Directory.GetFiles(dir, Prefix + "*" + Suffix) : [];
        }
        catch (UnauthorizedAccessException)
        {
            error = ControlTrust.PermissionDenied(Path.Combine(dir, Prefix + "PID" + Suffix));
            return false;
        }
        catch (IOException e)
        {
            error = $"cannot list {dir}: {e.Message}";
            return false;
        }
        foreach (string file in files)
        {
            if (TryParsePid(file, out int pid)
                && (Directory.Exists(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}")) || ControlClient.Answers(file)))
            {
                found.Add(new RunningInstance(pid, file));
            }
        }
        found.Sort((a, b) => a.Pid.CompareTo(b.Pid));
        return true;
    }
}
