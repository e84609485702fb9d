using System.CommandLine;
using System.Globalization;
using Ctfw.Cli.Commands;
using Ctfw.Linux;

namespace Ctfw.Cli.Control;

/// <summary>
/// `--pid N` / `--control PATH`, shared by the commands that talk to a running daemon. With
/// neither, the one running instance is used; none is exit status 1, several is 2 (the user must choose).
/// </summary>
internal sealed class InstanceOptions
{
    private readonly Option<int> _pidOption = Opt.Value("--pid", "N", "the `ctfw run` with this process id (default: the only one running)",
        (string text, out int pid) => Opt.TryInt(text, 1, int.MaxValue, out pid), (used, text) => $"{used} {text}: expected a process id");
    private readonly Option<string> _controlOption = Opt.Value("--control", "PATH", "the control socket at PATH",
        (string text, out string path) => (path = text).Length > 0, (used, _) => $"{used} needs a socket path");

    private int _pid;
    private string? _control;

    public void AddTo(CtfwCommand command)
    {
        command.Add(_pidOption, "Instance");
        command.Add(_controlOption, "Instance");
    }

    /// <summary>Takes the options from the parse; an error message when they contradict each other.</summary>
    public string? Read(ParseResult result)
    {
        _pid = result.GetValue(_pidOption);
        _control = result.GetValue(_controlOption);
        return _pid != 0 && _control != null ? "use --pid or --control, not both" : null;
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
            Errno found = UnixIdentity.TryLstat(path, out _);
            if (found == Errno.None)
                return path;
            error = found == Errno.EACCES ? ControlTrust.PermissionDenied(path) : $"no ctfw with pid {_pid} (no control socket {path})";
            exitCode = 1;
            return null;
        }
        if (!ControlPaths.TryFindRunning(out List<RunningInstance> running, out string? listError))
        {
            error = listError;
            exitCode = 1;
            return null;
        }
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
