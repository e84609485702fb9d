using System.Globalization;
using Ctfw.Linux;

namespace Ctfw.Cli.Daemon;

/// <summary>What the watchdog reads of a queue worker (<see cref="QueueWorker"/>).</summary>
internal interface IWorkerProgress
{
    /// <summary>Rounds of the receive loop so far.</summary>
    long Loops { get; }

    /// <summary>Paused for a hand-over: not moving, and not stuck.</summary>
    bool IsPaused { get; }

    /// <summary>The queue number, to name a stuck worker.</summary>
    ushort QueueNumber { get; }
}

/// <summary>
/// systemd's watchdog (<c>WatchdogSec=</c>), driven by the packet workers' progress: every half
/// period it tells the service manager the service is alive only if every queue worker went round
/// its receive loop since the last look (a worker loops at least once per receive timeout, 200 ms,
/// even with no traffic), or is paused for a hand-over. A worker stuck in the pipeline, a verdict
/// send or a lock stops the pings, so systemd restarts ctfw; a timer alone would beat on regardless.
/// </summary>
internal sealed class ServiceWatchdog : IDisposable
{
    private readonly SystemdNotifier _notifier;
    private readonly IReadOnlyList<IWorkerProgress> _workers;
    private readonly TextWriter _err;
    private readonly ManualResetEventSlim _stop = new();
    private readonly long[] _seen;
    private readonly int _intervalMs;
    private Thread? _thread;
    private bool _complained;

    public ServiceWatchdog(SystemdNotifier notifier, IReadOnlyList<IWorkerProgress> workers, TextWriter err)
    {
        _notifier = notifier;
        _workers = workers;
        _err = err;
        _seen = new long[workers.Count];
        // sd_watchdog_enabled(3): ping at half the period. At least 10 ms, so a tiny WatchdogSec cannot spin.
        _intervalMs = (int)Math.Clamp(notifier.WatchdogUsec / 2000, 10, int.MaxValue);
    }

    /// <summary>Pings sent.</summary>
    public long Pings { get; private set; }

    /// <summary>Looks at which a worker had made no progress (no ping sent).</summary>
    public long Stalls { get; private set; }

    public void Start()
    {
        for (int i = 0; i < _workers.Count; i++)
            _seen[i] = _workers[i].Loops;
        _thread = new Thread(Loop) { Name = "ctfw-watchdog", IsBackground = true };
        _thread.Start();
    }

    private void Loop()
    {
        while (!_stop.Wait(_intervalMs))
            Look();
    }

    /// <summary>One look: ping when every worker moved on (or is paused), else count and say which did not.</summary>
    internal bool Look()
    {
        List<int>? stuck = null;
        for (int i = 0; i < _workers.Count; i++)
        {
            long loops = _workers[i].Loops;
            if (loops == _seen[i] && !_workers[i].IsPaused)
                (stuck ??= []).Add(_workers[i].QueueNumber);
            _seen[i] = loops;
        }
        if (stuck is null)
        {
            _notifier.Watchdog();
            Pings++;
            if (_complained)
                _err.WriteLine("ctfw: every queue worker makes progress again; watchdog pings resumed");
            _complained = false;
            return true;
        }
        Stalls++;
        if (!_complained)
        {
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: ALERT: the worker of queue {string.Join(", ", stuck)} made no progress for {_intervalMs} ms; not telling systemd that ctfw is alive (WatchdogSec restarts it if this lasts)"));
            _complained = true;
        }
        return false;
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _stop.Set();
        _thread?.Join();
        _stop.Dispose();
    }
}
