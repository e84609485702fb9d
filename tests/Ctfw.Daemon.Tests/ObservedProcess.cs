using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Ctfw.Daemon.Tests;

/// <summary>A finished command: exit status and both streams.</summary>
internal readonly record struct CommandResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>
/// A child process (in this network namespace) with stdout and stderr collected line by line, for
/// commands whose output is watched while they run (`ctfw lab`) or whose exit status is the point.
/// Dispose stops it if it is still running.
/// </summary>
internal sealed class ObservedProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    private ObservedProcess(Process process)
    {
        _process = process;
    }

    public int Id => _process.Id;

    public string Stdout
    {
        get
        {
            lock (_stdout)
                return _stdout.ToString();
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    /// <summary>`dotnet ctfw.dll ARGS`.</summary>
    public static ObservedProcess StartCtfw(params string[] args) => Start(["dotnet", CtfwProcess.Dll, .. args]);

    public static ObservedProcess Start(params string[] argv)
    {
        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in argv.AsSpan(1))
            psi.ArgumentList.Add(a);
        Process process = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {argv[0]}");
        var observed = new ObservedProcess(process);
        process.OutputDataReceived += (_, e) => Append(observed._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(observed._stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return observed;
    }

    /// <summary>Runs `dotnet ctfw.dll ARGS` to completion (at most <paramref name="timeout"/>, then the test fails).</summary>
    public static CommandResult RunCtfw(TimeSpan timeout, params string[] args) => Run(timeout, ["dotnet", CtfwProcess.Dll, .. args]);

    /// <summary>Runs a command to completion; a timeout kills it and throws.</summary>
    public static CommandResult Run(TimeSpan timeout, params string[] argv)
    {
        using ObservedProcess p = Start(argv);
        if (p.WaitForExit(timeout) is not int exit)
            throw new TimeoutException($"`{string.Join(' ', argv)}` still running after {timeout.TotalSeconds} s\n{p.Stdout}\n{p.Stderr}");
        return new CommandResult(exit, p.Stdout, p.Stderr);
    }

    /// <summary>Waits until stdout contains <paramref name="text"/>; false if the process exits or time runs out first.</summary>
    public bool WaitForStdout(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (Stdout.Contains(text, StringComparison.Ordinal))
                return true;
            if (_process.HasExited)
            {
                _process.WaitForExit();
                return Stdout.Contains(text, StringComparison.Ordinal);
            }
            Thread.Sleep(50);
        }
        return false;
    }

    /// <summary>The exit status, or null when the process is still running after <paramref name="timeout"/>.</summary>
    public int? WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            return null;
        _process.WaitForExit(); // drains the redirected streams
        return _process.ExitCode;
    }

    /// <summary>Sends <paramref name="signal"/> (e.g. "INT") to this process only, not its group.</summary>
    public void Signal(string signal) => CtfwProcess.Run("kill", "-" + signal, _process.Id.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// A process still running (a test failed midway) gets SIGTERM and 30 s to clean up after itself
    /// (`ctfw lab` removes its namespaces then), and only then SIGKILL for its whole tree.
    /// </summary>
    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try
                {
                    Signal("TERM");
                }
                catch (InvalidOperationException)
                {
                    // Exited meanwhile.
                }
                if (!_process.WaitForExit(30_000))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(10_000);
                }
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
    }

    private static void Append(StringBuilder sb, string? line)
    {
        if (line is null)
            return;
        lock (sb)
            sb.AppendLine(line);
    }
}
