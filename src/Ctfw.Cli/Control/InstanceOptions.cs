using System.Globalization;

namespace Ctfw.Cli.Control;

/// <summary>
/// `--pid N` / `--control PATH`, shared by the commands that talk to a running daemon. With
/// neither, the one running instance is used; none is exit status 1, several is 2 (the user must choose).
/// </summary>
internal sealed class InstanceOptions
{
    public const string Help = """
          --pid N               the `ctfw run` with this process id (default: the only one running)
          --control PATH        the control socket at PATH
        """;

    private int _pid;
    private string? _control;

    /// <summary>Consumes the option if it is one of ours (a missing value is left in <see cref="CommandLine.Error"/>).</summary>
    public bool TryParse(CommandLine cl, string arg)
    {
        if (cl.TryValue(arg, "--pid", out string pid))
        {
            if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out _pid) || _pid <= 0)
                cl.Fail($"--pid {pid}: expected a process id");
            else if (_control != null)
                cl.Fail("use --pid or --control, not both");
            return true;
        }
        if (cl.TryValue(arg, "--control", out string control))
        {
            if (control.Length == 0)
                cl.Fail("--control needs a socket path");
            else if (_pid != 0)
                cl.Fail("use --pid or --control, not both");
            _control = control;
            return true;
        }
        return false;
    }

    /// <summary>
    /// The control socket to talk to, or null with a one-line <paramref name="error"/> and the exit
    /// status to end with. The run directory is checked (<see cref="ControlTrust"/>) before a socket
    /// found in it is chosen; every socket, --control's too, is checked again when connected to.
    /// </summary>
    public string? Resolve(out string? error, out int exitCode)
    {
        error = null;
        exitCode = 0;
        if (_control != null)
            return _control;
        if (Directory.Exists(ControlPaths.RunDirectory) && ControlTrust.CheckDirectory(ControlPaths.RunDirectory) is { } refusal)
        {
            error = refusal;
            exitCode = 1;
            return null;
        }
        if (_pid != 0)
        {
            string path = ControlPaths.Default(_pid);
            if (File.Exists(path))
                return path;
            error = $"no ctfw with pid {_pid} (no control socket {path})";
            exitCode = 1;
            return null;
        }
        List<RunningInstance> running = ControlPaths.FindRunning();
        if (running.Count == 1)
            return running[0].SocketPath;
        if (running.Count == 0)
        {
            error = $"no running ctfw (no control socket in {ControlPaths.RunDirectory})";
            exitCode = 1;
            return null;
        }
        error = $"{running.Count} ctfw instances are running (pids {string.Join(", ", running.Select(r => r.Pid.ToString(CultureInfo.InvariantCulture)))}); choose one with --pid";
        exitCode = 2;
        return null;
    }
}
