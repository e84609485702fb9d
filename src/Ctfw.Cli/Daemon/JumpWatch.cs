using System.Diagnostics;
using System.Globalization;
using Ctfw.Linux.Firewall;

namespace Ctfw.Cli.Daemon;

/// <summary>What the daemon does when its iptables rules are gone or displaced (<c>--on-rules-lost</c>).</summary>
internal enum RulesLostAction
{
    /// <summary>Put them back (the default): filtering resumes within a check interval.</summary>
    Reinstall,

    /// <summary>Say so and count it, change nothing: filtering stays off until someone reinstalls (the weak configuration, kept testable).</summary>
    Warn,

    /// <summary>Stop as on SIGTERM (what is left of the rules removed) and exit with <see cref="JumpWatch.ExitStatus"/>.</summary>
    Exit,
}

/// <summary>
/// Checks once per <see cref="IntervalMs"/> that the rules <see cref="IptablesInstaller"/> put in are
/// still there (<see cref="IptablesInstaller.Check"/>), on its own thread: a check spawns iptables
/// processes (milliseconds each), which neither a queue worker nor the housekeeper may wait for.
/// Every loss is one loud line on stderr and a count; by default the rules are put back.
/// </summary>
internal sealed class JumpWatch : IDisposable
{
    public const int IntervalMs = 1000;

    /// <summary>The exit status after <see cref="RulesLostAction.Exit"/>.</summary>
    public const int ExitStatus = 3;

    private readonly IptablesInstaller _installer;
    private readonly RulesLostAction _action;
    private readonly TextWriter _err;
    private readonly Action _stopDaemon;
    private readonly ManualResetEventSlim _stop = new();
    private Thread? _thread;

    // Written by the watch thread only, read by the control thread: Interlocked/Volatile so a
    // `ctfw stats` never sees a torn 64-bit value.
    private long _checks, _checkFailures, _losses, _reinstalls, _repairFailures, _lastCheckUs, _maxCheckUs;
    private int _failing;

    public JumpWatch(IptablesInstaller installer, RulesLostAction action, TextWriter err, Action stopDaemon)
    {
        _installer = installer;
        _action = action;
        _err = err;
        _stopDaemon = stopDaemon;
    }

    /// <summary>True once the rules were found lost with <see cref="RulesLostAction.Exit"/>.</summary>
    public bool GaveUp => _gaveUp;

    // Set by the watch thread before it stops the daemon, read by the main thread after the join.
    private volatile bool _gaveUp;

    public long Checks => Interlocked.Read(ref _checks);

    public long CheckFailures => Interlocked.Read(ref _checkFailures);

    /// <summary>Losses of the rules: checks that found them missing or displaced (a repair refused again and again is one loss).</summary>
    public long Losses => Interlocked.Read(ref _losses);

    /// <summary>Commands run to put rules back (chains created, rules appended, jumps inserted or moved).</summary>
    public long Reinstalls => Interlocked.Read(ref _reinstalls);

    public long RepairFailures => Interlocked.Read(ref _repairFailures);

    public long LastCheckUs => Interlocked.Read(ref _lastCheckUs);

    public long MaxCheckUs => Interlocked.Read(ref _maxCheckUs);

    public void Start()
    {
        _thread = new Thread(Loop) { Name = "ctfw-iptables-check", IsBackground = true };
        _thread.Start();
    }

    /// <summary>
    /// Ends the loop before the stop removes the rules. A check under way finishes (its processes
    /// are bounded by <c>-w</c> and a 5 s timeout); one still running after <paramref name="timeout"/>
    /// is left behind harmlessly: <see cref="IptablesInstaller.Remove"/> waits for it and it repairs nothing afterwards.
    /// </summary>
    public void Stop(TimeSpan timeout)
    {
        _stop.Set();
        if (_thread is not null && !_thread.Join(timeout))
            _err.WriteLine($"ctfw: warning: the iptables check did not end within {timeout.TotalSeconds} s; removing the rules after it");
    }

    /// <summary>After <see cref="Stop"/>; a thread left behind by a timed-out stop still owns the event, so it stays.</summary>
    public void Dispose()
    {
        if (_thread is null || !_thread.IsAlive)
            _stop.Dispose();
    }

    private void Loop()
    {
        while (!_stop.Wait(IntervalMs))
            CheckOnce();
    }

    internal void CheckOnce()
    {
        long started = Stopwatch.GetTimestamp();
        IptablesCheckResult result = _installer.Check(repair: _action == RulesLostAction.Reinstall);
        long us = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        Interlocked.Exchange(ref _lastCheckUs, us);
        if (us > Interlocked.Read(ref _maxCheckUs))
            Interlocked.Exchange(ref _maxCheckUs, us); // only this thread writes it
        Interlocked.Increment(ref _checks);
        switch (result.Outcome)
        {
            case IptablesCheckOutcome.Removed:
                return;
            case IptablesCheckOutcome.CheckFailed:
                Interlocked.Increment(ref _checkFailures);
                // Loud once, then quiet until it works again: a missing iptables fails every second.
                if (_failing++ == 0)
                    _err.WriteLine($"ctfw: WARNING: checking the NFQUEUE rules failed ({result.Error}); ctfw cannot tell whether it still gets the packets. Retrying every {IntervalMs / 1000} s, counted in iptables.check_failures");
                return;
            case IptablesCheckOutcome.Intact:
                _lostInARow = 0;
                break;
            default:
                Lost(result);
                break;
        }
        if (_failing > 0)
        {
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ctfw: checking the NFQUEUE rules works again after {_failing} failed check(s)"));
            _failing = 0;
        }
    }

    private int _lostInARow;
    // Repairs failed in a row (this loss's attempts): the first is alerted, then once a minute.
    private int _repairFailingInARow;

    private void Lost(IptablesCheckResult result)
    {
        if (result.Outcome == IptablesCheckOutcome.RepairFailed && _repairFailingInARow > 0)
        {
            // The same loss, its repair refused again: counted as a failed repair, not a new loss.
            Interlocked.Increment(ref _repairFailures);
            Interlocked.Add(ref _reinstalls, result.Reinstalled);
            if (_repairFailingInARow++ % 60 == 0)
            {
                _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ctfw: ALERT: the NFQUEUE rules of this run are still missing: {string.Join("; ", result.Problems)}; reinstalling them has FAILED {_repairFailingInARow - 1} times ({result.Error}); packets pass unjudged. Retrying every {IntervalMs / 1000} s"));
            }
            return;
        }
        if (result.Outcome == IptablesCheckOutcome.Repaired && _repairFailingInARow > 0)
        {
            Interlocked.Add(ref _reinstalls, result.Reinstalled);
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: the NFQUEUE rules of this run are back after {_repairFailingInARow} failed attempt(s): reinstalled ({result.Reinstalled} commands)"));
            _repairFailingInARow = 0;
            return;
        }
        if (_action == RulesLostAction.Warn && _lostInARow > 0)
        {
            // The same loss seen again: counted once.
            if (_lostInARow++ % 60 == 0)
                _err.WriteLine($"ctfw: ALERT: the NFQUEUE rules of this run are still missing: {string.Join("; ", result.Problems)}");
            return;
        }
        Interlocked.Increment(ref _losses);
        Interlocked.Add(ref _reinstalls, result.Reinstalled);
        string what = string.Join("; ", result.Problems);
        switch (result.Outcome)
        {
            case IptablesCheckOutcome.Repaired:
                _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else (iptables -F, iptables-restore, a firewall reload?): {what}; packets were passing unjudged. Reinstalled ({result.Reinstalled} commands)"));
                break;
            case IptablesCheckOutcome.RepairFailed:
                Interlocked.Increment(ref _repairFailures);
                _repairFailingInARow = 1;
                _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: {what}; reinstalling them FAILED ({result.Error}); packets pass unjudged. Retrying every {IntervalMs / 1000} s"));
                break;
            case IptablesCheckOutcome.Lost when _action == RulesLostAction.Warn:
                // Loud on the first check that finds them lost, then once a minute while they stay lost.
                if (_lostInARow++ % 60 == 0)
                    _err.WriteLine($"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: {what}; packets pass unjudged and stay so (--on-rules-lost warn)");
                return;
            default:
                _gaveUp = true;
                _err.WriteLine($"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: {what}; packets were passing unjudged. Stopping (--on-rules-lost exit), exit status {ExitStatus}");
                _stop.Set();
                _stopDaemon();
                break;
        }
    }
}
