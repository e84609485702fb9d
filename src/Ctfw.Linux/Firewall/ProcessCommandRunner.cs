using System.Diagnostics;

namespace Ctfw.Linux.Firewall;

/// <summary>Starts the command as a child process and waits for it (setup paths only).</summary>
public sealed class ProcessCommandRunner : ICommandRunner
{
    public static readonly ProcessCommandRunner Instance = new();

    private readonly TimeSpan _timeout;

    /// <param name="timeout">How long a command may run before it is killed and <see cref="TimeoutException"/> thrown (default 30 s).</param>
    public ProcessCommandRunner(TimeSpan? timeout = null)
    {
        _timeout = timeout ?? TimeSpan.FromSeconds(30);
    }

    public CommandResult Run(IReadOnlyList<string> arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var psi = new ProcessStartInfo(arguments[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        for (int i = 1; i < arguments.Count; i++)
            psi.ArgumentList.Add(arguments[i]);
        using Process process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {arguments[0]}");
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(_timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{string.Join(' ', arguments)}` did not finish within {_timeout.TotalSeconds} s");
        }
        return new CommandResult(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }
}
