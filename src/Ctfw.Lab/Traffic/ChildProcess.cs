using System.Diagnostics;
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
/// The processes of one traffic run. Disposing ends every one of them — also when the host process
/// exits (SIGTERM) while they run — so no exit path leaves a generator or server behind. Clients are
/// killed before servers so a server never sees its client vanish mid-shutdown.
/// </summary>
internal sealed class ChildGroup : IDisposable
{
    private static readonly TimeSpan s_serverGrace = TimeSpan.FromSeconds(3);

    private readonly List<ChildProcess> _servers = [];
    private readonly List<ChildProcess> _clients = [];
    private readonly EventHandler _onExit;
    private bool _disposed;

    public ChildGroup()
    {
        _onExit = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    public IReadOnlyList<ChildProcess> Servers => _servers;
    public IReadOnlyList<ChildProcess> Clients => _clients;

    public ChildProcess StartServer(string name, string netns, IReadOnlyList<string> args) => Add(_servers, name, netns, args);

    public ChildProcess StartClient(string name, string netns, IReadOnlyList<string> args) => Add(_clients, name, netns, args);

    private ChildProcess Add(List<ChildProcess> list, string name, string netns, IReadOnlyList<string> args)
    {
        lock (list)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ChildProcess child = ChildProcess.Start(name, netns, args);
            list.Add(child);
            return child;
        }
    }

    /// <summary>Stops the servers: SIGTERM (nginx's fast shutdown also ends its workers), then the tree is killed.</summary>
    public void StopServers()
    {
        lock (_servers)
        {
            foreach (ChildProcess s in _servers)
                s.Stop(Interop.SigTerm, s_serverGrace);
        }
    }

    public void Dispose()
    {
        lock (_clients)
        lock (_servers)
        {
            if (_disposed)
                return;
            _disposed = true;
            foreach (ChildProcess c in _clients)
                c.Dispose();
            foreach (ChildProcess s in _servers)
            {
                s.Stop(Interop.SigTerm, s_serverGrace);
                s.Dispose();
            }
        }
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
    }
}
