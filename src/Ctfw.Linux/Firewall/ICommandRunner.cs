namespace Ctfw.Linux.Firewall;

/// <summary>Runs a command line (argv, no shell). The default starts a process; tests substitute a fake.</summary>
public interface ICommandRunner
{
    CommandResult Run(IReadOnlyList<string> arguments);
}

public readonly record struct CommandResult(int ExitCode, string StandardOutput, string StandardError);
