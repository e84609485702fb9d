using System.Diagnostics;
using System.Text;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// The built ctfw run as a child process (optionally inside a named network namespace via
/// <c>ip netns exec</c>), with its stderr collected. Dispose kills it if it is still running.
/// </summary>
internal sealed class CtfwProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly StringBuilder _stdout = new();

    private CtfwProcess(Process process)
    {
        _process = process;
    }

    /// <summary>ctfw.dll next to this test assembly (the Cli project is referenced, so the build copies it).</summary>
    public static string Dll { get; } = Path.Combine(AppContext.BaseDirectory, "ctfw.dll");

    public int Id => _process.Id;

    public string Stderr
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    public static CtfwProcess Start(string? netns, params string[] args)
    {
        var psi = new ProcessStartInfo(netns is null ? "dotnet" : "ip")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (netns is not null)
        {
            foreach (string a in (string[])["netns", "exec", netns, "dotnet"])
                psi.ArgumentList.Add(a);
        }
        psi.ArgumentList.Add(Dll);
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot start ctfw");
        var ctfw = new CtfwProcess(process);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (ctfw._stderr)
                    ctfw._stderr.AppendLine(e.Data);
            }
        };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (ctfw._stdout)
                    ctfw._stdout.AppendLine(e.Data);
            }
        };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return ctfw;
    }

    /// <summary>Waits until stderr contains <paramref name="text"/>; false if the process exits or time runs out first.</summary>
    public bool WaitForStderr(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (Stderr.Contains(text, StringComparison.Ordinal))
                return true;
            if (_process.HasExited)
                return Stderr.Contains(text, StringComparison.Ordinal);
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

    /// <summary>SIGTERM to ctfw itself (ip netns exec execs it, so the pid is ctfw's).</summary>
    public void Terminate() => Run("kill", "-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>SIGKILL: ctfw gets no chance to clean up (its iptables rules stay).</summary>
    public void KillHard()
    {
        Run("kill", "-KILL", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _process.WaitForExit(10_000);
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
    }

    public static string Run(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args.Skip(1))
            psi.ArgumentList.Add(a);
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {args[0]}");
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException(string.Join(' ', args));
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"`{string.Join(' ', args)}` exited {p.ExitCode}: {stderr.Result.Trim()}");
        return stdout;
    }
}
