using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>
/// One traffic program running inside a network namespace, its output collected as it comes.
/// nsenter joins only the network namespace and then execs the program (no pid namespace, so no
/// fork), so the pid we hold is the program's own and signals reach it directly.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    internal const int SigInt = 2;

    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private bool _disposed;

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }
    public int Pid => _process.Id;

    public string StdOut
    {
        get { lock (_stdout) return _stdout.ToString(); }
    }

    public string StdErr
    {
        get { lock (_stderr) return _stderr.ToString(); }
    }

    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    public static ChildProcess Start(string name, string netns, IReadOnlyList<string> args)
    {
        string[] argv = Tool.InNetns(netns, [.. args]);
        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in argv.AsSpan(1))
            psi.ArgumentList.Add(a);

        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {string.Join(' ', argv)}");
        var child = new ChildProcess(name, process);
        process.StandardInput.Close();
        process.OutputDataReceived += (_, e) => Append(child._stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(child._stderr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private static void Append(StringBuilder sb, string? line)
    {
        if (line is null)
            return;
        lock (sb)
            sb.Append(line).Append('\n');
    }

    /// <summary>Waits for the exit and, after it, for the output readers to reach end of stream.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
            return false;
        _process.WaitForExit();
        return true;
    }

    /// <summary>
    /// Sends <paramref name="signal"/> (the one that makes the program print its summary or shut down
    /// cleanly), waits up to <paramref name="grace"/>, then kills whatever is left of its process tree.
    /// Returns only when the program and every descendant it had are gone.
    /// </summary>
    public void Stop(int signal, TimeSpan grace)
    {
        if (_process.HasExited)
        {
            _process.WaitForExit();
            return;
        }
        List<ProcessTree.Entry> tree = ProcessTree.DescendantsOf(_process.Id);
        _ = Interop.Kill(_process.Id, signal);
        if (!WaitForExit(grace))
            KillTree();
        ProcessTree.EnsureGone(tree, grace);
    }

    /// <summary>
    /// SIGKILL to the program and every descendant (nginx workers). .NET stops the root with SIGSTOP
    /// before it lists the children, so none escapes by being re-parented mid-walk; a killed
    /// descendant is re-parented to init, so we wait for its death ourselves.
    /// </summary>
    public void KillTree()
    {
        List<ProcessTree.Entry> tree = _process.HasExited ? [] : ProcessTree.DescendantsOf(_process.Id);
        try
        {
            _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited (and was reaped) between the check and the kill: nothing to do.
        }
        _process.WaitForExit();
        ProcessTree.EnsureGone(tree, TimeSpan.FromSeconds(2));
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        KillTree();
        _process.Dispose();
    }
}

/// <summary>
/// The processes of one traffic run, and the guarantee that none outlives it. Besides the normal
/// and exceptional paths (<see cref="Dispose"/>), the run may be ended by a signal to this process:
/// .NET does not raise ProcessExit for SIGTERM, and a child inherits nothing that would end it
/// with us, so SIGINT, SIGTERM, SIGHUP and SIGQUIT are watched while the group lives. The handler
/// kills every child before the signal takes its usual course (termination, or for a caller that
/// cancels SIGINT, going on), and marks the run <see cref="Interrupted"/> so that it ends in an
/// <see cref="OperationCanceledException"/> rather than in a report of killed programs.
/// Clients are killed before servers, so a server never sees its client vanish mid-shutdown.
/// </summary>
internal sealed class ChildGroup : IDisposable
{
    private static readonly TimeSpan s_serverGrace = TimeSpan.FromSeconds(3);

    private readonly List<ChildProcess> _servers = [];
    private readonly List<ChildProcess> _clients = [];
    private readonly Lock _lock = new();
    private readonly EventHandler _onExit;
    private readonly PosixSignalRegistration[] _signals;
    private readonly CancellationTokenSource _interrupted = new();
    private bool _killed;
    private bool _disposed;

    public ChildGroup()
    {
        _onExit = (_, _) => KillAll();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
        _signals =
        [
            .. ((PosixSignal[])[PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP, PosixSignal.SIGQUIT])
                .Select(s => PosixSignalRegistration.Create(s, OnSignal)),
        ];
    }

    /// <summary>Cleanup that must not wait for the run's own finally blocks (a signal may end the process first).</summary>
    public Action? AfterSignal { get; init; }

    /// <summary>Cancelled when a signal ended the run (its children are dead by then).</summary>
    public CancellationToken Interrupted => _interrupted.Token;

    public IReadOnlyList<ChildProcess> Servers => _servers;
    public IReadOnlyList<ChildProcess> Clients => _clients;

    public ChildProcess StartServer(string name, string netns, IReadOnlyList<string> args) => Add(_servers, name, netns, args);

    public ChildProcess StartClient(string name, string netns, IReadOnlyList<string> args) => Add(_clients, name, netns, args);

    private ChildProcess Add(List<ChildProcess> list, string name, string netns, IReadOnlyList<string> args)
    {
        lock (_lock)
        {
            // Once killed, nothing new may start: a signal handler has already swept the list.
            _interrupted.Token.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_killed, this);
            ChildProcess child = ChildProcess.Start(name, netns, args);
            list.Add(child);
            return child;
        }
    }

    /// <summary>Stops the servers: SIGTERM (nginx's fast shutdown also ends its workers), then the tree is killed.</summary>
    public void StopServers()
    {
        lock (_lock)
        {
            foreach (ChildProcess s in _servers)
                s.Stop(Interop.SigTerm, s_serverGrace);
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        // Runs on the runtime's signal thread. Cancel first so the run's thread stops waiting, then
        // kill; the lock makes the two sweeps (this and the run's own) take turns.
        _interrupted.Cancel();
        KillAll();
        // The signal may end the process once we return, before any finally block of the run.
        AfterSignal?.Invoke();
    }

    /// <summary>Ends every child; idempotent and safe from any thread.</summary>
    public void KillAll()
    {
        lock (_lock)
        {
            if (_killed)
                return;
            _killed = true;
            foreach (ChildProcess c in _clients)
                c.KillTree();
            foreach (ChildProcess s in _servers)
                s.Stop(Interop.SigTerm, s_serverGrace);
        }
    }

    public void Dispose()
    {
        KillAll();
        lock (_lock)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (PosixSignalRegistration r in _signals)
                r.Dispose();
            AppDomain.CurrentDomain.ProcessExit -= _onExit;
            foreach (ChildProcess c in _clients)
                c.Dispose();
            foreach (ChildProcess s in _servers)
                s.Dispose();
            // _interrupted is not disposed: a handler already past its registration may still cancel it.
        }
    }
}
