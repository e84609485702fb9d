using System.Collections.Concurrent;
using System.Diagnostics;
using Ctfw.Cli.Control;
using Ctfw.Lab.Network;

namespace Ctfw.Cli.Lab;

/// <summary>
/// `ctfw run --ab kernel` started by the lab inside the gateway namespace, as an operator would
/// start it there (<c>nsenter --net=… ctfw run …</c>), talked to through its control socket. Its
/// stderr is kept whole in a log file and its disagreement lines in memory.
/// </summary>
internal sealed class LabDaemon : IDisposable
{
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly StreamWriter _logFile;
    private readonly Lock _logLock = new();
    private readonly ConcurrentQueue<string> _disagreements = new();
    private readonly ManualResetEventSlim _running = new();
    private readonly List<string> _tail = [];
    private bool _stopped;

    private LabDaemon(Process process, string controlPath, string logPath)
    {
        _process = process;
        ControlPath = controlPath;
        LogPath = logPath;
        _logFile = new StreamWriter(logPath) { AutoFlush = true };
    }

    public string ControlPath { get; }

    public string LogPath { get; }

    /// <summary>Disagreement lines the daemon wrote (its own rate limit applies).</summary>
    public IReadOnlyCollection<string> Disagreements => _disagreements;

    /// <summary>The daemon's last stderr lines (its exit report after <see cref="Stop"/>).</summary>
    public IReadOnlyList<string> Tail
    {
        get
        {
            lock (_logLock)
                return [.. _tail];
        }
    }

    /// <summary>
    /// The `ctfw run …` arguments of the lab's daemon (after the binary). <paramref name="offload"/>
    /// adds <c>--offload established</c>: packets of established, accepted flows then pass the gateway
    /// without reaching ctfw (see <see cref="LabRunner"/> for how they are counted).
    /// </summary>
    internal static List<string> RunArgs(string rulesPath, string controlPath, bool offload)
    {
        List<string> args = ["run", "--rules", rulesPath, "--install", "FORWARD", "--ab", "kernel", "--control", controlPath, "--queue", "0",
            // A 2-core machine also runs the traffic programs: give ctfw seconds of slack, not
            // milliseconds, before the queue overflows (packets the kernel classified but ctfw never
            // saw would make the two trackers drift apart).
            "--queue-maxlen", "65536", "--rcvbuf", "268435456"];
        if (offload)
            args.AddRange(["--offload", "established"]);
        return args;
    }

    public static LabDaemon Start(string gatewayNs, string rulesPath, string logPath, bool offload, CancellationToken cancel)
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell where the ctfw binary is");
        List<string> argv = ["nsenter", $"--net=/run/netns/{gatewayNs}", "--", self];
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            argv.Add(typeof(LabDaemon).Assembly.Location);
        string controlPath = Path.Combine(ControlPaths.RunDirectory, $"ctfw-lab-{Environment.ProcessId}.sock");
        argv.AddRange(RunArgs(rulesPath, controlPath, offload));

        var psi = new ProcessStartInfo(argv[0])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string a in argv.Skip(1))
            psi.ArgumentList.Add(a);
        Process process = Process.Start(psi) ?? throw new InvalidOperationException("could not start ctfw run");
        var daemon = new LabDaemon(process, controlPath, logPath);
        process.ErrorDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.OutputDataReceived += (_, e) => daemon.OnLine(e.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();

        int signalled = WaitHandle.WaitAny([daemon._running.WaitHandle, cancel.WaitHandle], s_startTimeout);
        if (signalled != 0 || !ControlClient.Answers(controlPath))
        {
            string why = signalled == 1 ? "interrupted" : process.HasExited ? $"it exited with {process.ExitCode}" : "it did not report running in time";
            string tail = string.Join("\n  ", daemon.Tail.TakeLast(10));
            daemon.Dispose();
            throw new InvalidOperationException($"ctfw run in the gateway did not start ({why}):\n  {tail}");
        }
        return daemon;
    }

    private void OnLine(string? line)
    {
        if (line is null)
            return;
        lock (_logLock)
        {
            _logFile.WriteLine(line);
            _tail.Add(line);
            if (_tail.Count > 40)
                _tail.RemoveAt(0);
        }
        if (line.StartsWith("ctfw: running", StringComparison.Ordinal))
            _running.Set();
        else if (line.StartsWith("ctfw: ab: kernel ", StringComparison.Ordinal))
            _disagreements.Enqueue(line);
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The daemon's counters (`ctfw stats --raw`), or throws with the reason.</summary>
    public Dictionary<string, long> Stats()
    {
        if (!ControlClient.TryGetStats(ControlPath, out List<KeyValuePair<string, long>> stats, out string? error))
            throw new InvalidOperationException($"ctfw stats failed: {error}");
        var map = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach ((string k, long v) in stats)
            map[k] = v;
        return map;
    }

    public void Request(string request)
    {
        if (!ControlClient.TryRequest(ControlPath, request, out _, out string? error))
            throw new InvalidOperationException($"control request '{request}' failed: {error}");
    }

    public IReadOnlyList<ConntrackEntry> List()
    {
        if (!ControlClient.TryRequest(ControlPath, ControlProtocol.List, out string body, out string? error))
            throw new InvalidOperationException($"ctfw conntrack -L failed: {error}");
        return ConntrackEntry.ParseAll(body);
    }

    /// <summary>
    /// Waits until the daemon has sent verdicts for <paramref name="packets"/> packets in all (so the
    /// kernel has reinjected them and confirmed their entries); false on timeout.
    /// </summary>
    public bool WaitForVerdicts(long packets, TimeSpan timeout, CancellationToken cancel)
    {
        var watch = Stopwatch.StartNew();
        while (!cancel.IsCancellationRequested)
        {
            if (Stats().GetValueOrDefault("verdicts_sent") >= packets)
                return true;
            if (watch.Elapsed > timeout)
                return false;
            Thread.Sleep(1);
        }
        return false;
    }

    /// <summary>SIGTERM, then up to 15 s for the exit report; SIGKILL after that. Returns the exit status.</summary>
    public int Stop()
    {
        if (_stopped)
            return _process.HasExited ? _process.ExitCode : -1;
        _stopped = true;
        if (!_process.HasExited)
        {
            _ = Interop.Kill(_process.Id, Interop.SigTerm);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(15)))
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
                return -1;
            }
        }
        _process.WaitForExit(); // drains the stderr reader
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            Stop();
        }
        catch (InvalidOperationException)
        {
            // never started or already reaped
        }
        _process.Dispose();
        lock (_logLock)
            _logFile.Dispose();
        _running.Dispose();
        try
        {
            File.Delete(ControlPath); // normally removed by the daemon itself
        }
        catch (IOException)
        {
        }
    }
}
