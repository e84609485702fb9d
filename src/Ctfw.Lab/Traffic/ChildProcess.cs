using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>Which output of a <see cref="ChildProcess"/> a line came from.</summary>
public enum OutputStream
{
    StdOut,
    StdErr,
}

/// <summary>How a <see cref="ChildProcess"/> starts and ends.</summary>
public sealed record ChildProcessOptions
{
    /// <summary>What reports call it; the program's name when null.</summary>
    public string? Name { get; init; }

    /// <summary>Variables added to (or replacing) the inherited environment.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Lines kept per stream; older lines are dropped first, so a chatty child cannot grow our memory without bound.</summary>
    public int MaxLines { get; init; } = 100_000;

    /// <summary>
    /// Zero: <see cref="ChildProcess.Dispose"/> kills the tree at once. Otherwise the child first gets
    /// SIGTERM and this long to clean up after itself (a `ctfw lab` removing its namespaces).
    /// </summary>
    public TimeSpan DisposeGrace { get; init; }
}

/// <summary>
/// The one way ctfw's lab, bench and tests run a program: stdin closed, stdout and stderr collected
/// line by line into bounded buffers as they come, a wait for a line, signals, the exit code, and a
/// dispose that leaves no process of its tree behind. Programs in a network namespace run under
/// nsenter, which joins only the network namespace and then execs the program (no pid namespace,
/// so no fork): the pid we hold is the program's own and signals reach it directly.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    public const int SigInt = 2;
    public const int SigKill = 9;
    public const int SigTerm = 15;

    /// <summary>How long an exited program's output may take to reach end of stream before we stop waiting for it.</summary>
    private static readonly TimeSpan s_drain = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly ChildProcessOptions _options;
    // A monitor rather than a Lock: WaitForLine waits on it for the next line or the end of a stream.
    private readonly object _lock = new();
    private readonly Queue<string> _stdout = new();
    private readonly Queue<string> _stderr = new();
    private long _stdoutCount;
    private long _stderrCount;
    private bool _stdoutClosed;
    private bool _stderrClosed;
    private bool _disposed;
    // Completed by the Exited event, which (unlike Process.WaitForExit) does not also wait for the
    // output to reach end of stream: a descendant that outlives the program may hold it open for ever.
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(Process process, ChildProcessOptions options, string name)
    {
        _process = process;
        _options = options;
        Name = name;
    }

    public string Name { get; }
    public int Pid => _process.Id;

    /// <summary>The retained stdout lines, each ending in a newline.</summary>
    public string StdOut => Text(OutputStream.StdOut);

    /// <summary>The retained stderr lines, each ending in a newline.</summary>
    public string StdErr => Text(OutputStream.StdErr);

    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>Starts <paramref name="argv"/> (program and arguments) in this process's network namespace.</summary>
    public static ChildProcess Start(IReadOnlyList<string> argv, ChildProcessOptions? options = null)
    {
        options ??= new ChildProcessOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxLines, 1);
        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        for (int i = 1; i < argv.Count; i++)
            psi.ArgumentList.Add(argv[i]);
        if (options.Environment is not null)
        {
            foreach ((string key, string value) in options.Environment)
                psi.Environment[key] = value;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {string.Join(' ', argv)}");
        var child = new ChildProcess(process, options, options.Name ?? Path.GetFileName(argv[0]));
        process.StandardInput.Close();
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => child._exited.TrySetResult();
        if (process.HasExited)
            child._exited.TrySetResult(); // exited before the handler was attached
        process.OutputDataReceived += (_, e) => child.Append(OutputStream.StdOut, e.Data);
        process.ErrorDataReceived += (_, e) => child.Append(OutputStream.StdErr, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Starts <paramref name="args"/> inside the named network namespace (under nsenter).</summary>
    public static ChildProcess StartIn(string netns, string name, IReadOnlyList<string> args) =>
        Start(Tool.InNetns(netns, [.. args]), new ChildProcessOptions { Name = name });

    private void Append(OutputStream stream, string? line)
    {
        lock (_lock)
        {
            if (line is null)
            {
                if (stream == OutputStream.StdOut)
                    _stdoutClosed = true;
                else
                    _stderrClosed = true;
            }
            else
            {
                Queue<string> lines = stream == OutputStream.StdOut ? _stdout : _stderr;
                if (lines.Count == _options.MaxLines)
                    lines.Dequeue();
                lines.Enqueue(line);
                if (stream == OutputStream.StdOut)
                    _stdoutCount++;
                else
                    _stderrCount++;
            }
            // Wakes WaitForLine: a new line to test, or the end of the stream.
            Monitor.PulseAll(_lock);
        }
    }

    private string Text(OutputStream stream)
    {
        var sb = new StringBuilder();
        lock (_lock)
        {
            foreach (string line in stream == OutputStream.StdOut ? _stdout : _stderr)
                sb.Append(line).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// Waits until a line of <paramref name="stream"/> (one already there, or a new one) satisfies
    /// <paramref name="match"/> and returns it; null when the stream ends (the program exited) or
    /// <paramref name="timeout"/> passes first.
    /// </summary>
    public string? WaitForLine(OutputStream stream, Func<string, bool> match, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        lock (_lock)
        {
            Queue<string> lines = stream == OutputStream.StdOut ? _stdout : _stderr;
            long tested = Count(stream) - lines.Count;
            while (true)
            {
                long count = Count(stream);
                // The newest (count - tested) lines are untested. All are still retained unless more than
                // MaxLines arrived between two wake-ups; the ones dropped meanwhile are never seen.
                int fresh = (int)Math.Min(count - tested, lines.Count);
                foreach (string line in lines.Skip(lines.Count - fresh))
                {
                    if (match(line))
                        return line;
                }
                tested = count;
                if (stream == OutputStream.StdOut ? _stdoutClosed : _stderrClosed)
                    return null;
                if (timeout == Timeout.InfiniteTimeSpan)
                {
                    Monitor.Wait(_lock);
                    continue;
                }
                TimeSpan left = timeout - clock.Elapsed;
                if (left <= TimeSpan.Zero)
                    return null;
                Monitor.Wait(_lock, left);
            }
        }
    }

    private long Count(OutputStream stream) => stream == OutputStream.StdOut ? _stdoutCount : _stderrCount;

    /// <summary>Whether a line of <paramref name="stream"/> containing <paramref name="text"/> appears within <paramref name="timeout"/>.</summary>
    public bool WaitForLine(OutputStream stream, string text, TimeSpan timeout) =>
        WaitForLine(stream, line => line.Contains(text, StringComparison.Ordinal), timeout) is not null;

    /// <summary>
    /// The exit code once the program has exited and its output has been read to the end (or, when a
    /// descendant still holds the output open, a few seconds after the exit); null if it still runs
    /// after <paramref name="timeout"/>.
    /// </summary>
    public int? WaitForExit(TimeSpan timeout)
    {
        if (!_exited.Task.Wait(timeout))
            return null;
        DrainOutput();
        return _process.ExitCode;
    }

    /// <summary>As <see cref="WaitForExit"/>, without blocking a thread while the program runs.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        DrainOutput();
        return _process.ExitCode;
    }

    private void DrainOutput()
    {
        var clock = Stopwatch.StartNew();
        lock (_lock)
        {
            while (!(_stdoutClosed && _stderrClosed))
            {
                TimeSpan left = s_drain - clock.Elapsed;
                if (left <= TimeSpan.Zero)
                    return;
                Monitor.Wait(_lock, left);
            }
        }
    }

    /// <summary>Sends <paramref name="signal"/> to the program itself (not its descendants); false if it has already exited.</summary>
    public bool Signal(int signal) => !_process.HasExited && Interop.Kill(_process.Id, signal) == 0;

    /// <summary>
    /// Sends <paramref name="signal"/> (the one that makes the program print its summary or shut down
    /// cleanly), waits up to <paramref name="grace"/>, then kills whatever is left of its process tree.
    /// Returns only when the program and every descendant it had are gone.
    /// </summary>
    public void Stop(int signal, TimeSpan grace)
    {
        if (_process.HasExited)
        {
            WaitForExit(Timeout.InfiniteTimeSpan);
            return;
        }
        List<ProcessTree.Entry> tree = ProcessTree.DescendantsOf(_process.Id);
        _ = Interop.Kill(_process.Id, signal);
        if (WaitForExit(grace) is null)
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
        WaitForExit(Timeout.InfiniteTimeSpan);
        ProcessTree.EnsureGone(tree, TimeSpan.FromSeconds(2));
    }

    /// <summary>Ends the whole tree if it still runs (after SIGTERM and <see cref="ChildProcessOptions.DisposeGrace"/> when one is set).</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_options.DisposeGrace > TimeSpan.Zero)
            Stop(SigTerm, _options.DisposeGrace);
        else
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
            ChildProcess child = ChildProcess.StartIn(netns, name, args);
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
                s.Stop(ChildProcess.SigTerm, s_serverGrace);
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
                s.Stop(ChildProcess.SigTerm, s_serverGrace);
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
