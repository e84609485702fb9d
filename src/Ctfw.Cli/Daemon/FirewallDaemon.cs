using System.Globalization;
using System.Runtime.InteropServices;
using Ctfw.Cli.Control;
using Ctfw.Cli.Metrics;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Linux;
using Ctfw.Linux.Firewall;
using Ctfw.Linux.Netlink;
using Ctfw.Linux.Nfqueue;
using Ctfw.Linux.Offload;
using Ctfw.Packets;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// `ctfw run`: one <see cref="QueueWorker"/> thread per NFQUEUE queue sharing one
/// <see cref="ConntrackEngine"/>, one housekeeper thread calling <see cref="ConntrackEngine.Maintain"/>,
/// optional iptables rules that send traffic to the queues, and an orderly stop on SIGTERM/SIGINT.
/// <para>
/// Setup order makes every failure cheap to undo: queues are bound before iptables is touched (a busy
/// queue changes nothing), and the NFQUEUE jumps go in last. Stop order keeps every packet judged:
/// the jumps are removed while the workers still answer, then the workers drain what is queued,
/// flush their verdicts and close.
/// </para>
/// <para>
/// Nothing but the <see cref="LogWriter"/> thread writes to stderr: LOG, A/B and rescue lines and
/// the daemon's own lines go into one <see cref="LogQueue"/> without waiting, so a stderr that is
/// slow or not read at all costs lines (counted in <c>log.lost</c>), never packets, and the stop
/// gives the writer <see cref="OutputDeadline"/> for what is left before the process exits anyway.
/// </para>
/// </summary>
internal sealed class FirewallDaemon : IDisposable
{
    private const int HousekeepingIntervalMs = 10;
    private const int HousekeepingBudget = 16_384;

    /// <summary>How long the stop waits for queued lines to be written (a blocked stderr gets no more).</summary>
    internal static readonly TimeSpan OutputDeadline = TimeSpan.FromSeconds(2);

    private readonly DaemonOptions _options;
    private readonly LogWriter _output;
    // The daemon's own lines: into the output queue, never waiting for stderr.
    private readonly TextWriter _err;
    private readonly ManualResetEventSlim _shutdown = new();

    // The service manager ($NOTIFY_SOCKET): READY after the queues are bound and the rules in,
    // RELOADING/READY around a SIGHUP, STOPPING at the stop, WATCHDOG from the workers' progress.
    private readonly SystemdNotifier _notifier = SystemdNotifier.FromEnvironment();

    // Set once at stop by the main thread, read by the housekeeper's loop each turn; volatile so the
    // read is fresh and not hoisted out of the loop (the stop is seen ≤ one 10 ms tick late).
    private volatile bool _stopHousekeeper;

    // --metrics: bound first (a busy port fails the start before anything else is touched; after a
    // takeover, once the old process has let go of it), fed by the workers once they exist.
    private readonly LateMetricsSource _metricsSource = new();
    private MetricsServer? _metrics;

    /// <param name="stderr">Where the log writer thread writes every line (the process's fd 2 as a raw stream).</param>
    public FirewallDaemon(DaemonOptions options, Stream stderr)
    {
        _options = options;
        var lines = new LogQueue();
        _output = new LogWriter(lines, stderr) { JournalPriorities = JournalPriority.StderrIsJournal() };
        _err = new LogQueueTextWriter(lines);
    }

    /// <summary>Runs until a signal; returns the exit status (0 after a clean stop, 1 on a setup or socket failure).</summary>
    public int Run()
    {
        _output.Start();
        if (_notifier.SetupProblem is { } notifyProblem)
            _err.WriteLine($"ctfw: warning: {notifyProblem}");
        try
        {
            return Filter();
        }
        finally
        {
            _metrics?.Dispose();
            // The rules are gone and the verdicts flushed by now; the lines get a deadline, then the
            // process ends with the writer still in its write if stderr never drains.
            _output.Stop(OutputDeadline);
        }
    }

    private int Filter()
    {
        // The engine first (its table is allocated here): with --takeover everything that can be ready
        // is ready before the running ctfw pauses, so the gap holds only the hand-over itself.
        if (_options.MetricsEndpoint is { } metricsAt && _options.TakeoverFrom is null)
        {
            try
            {
                _metrics = MetricsServer.Start(metricsAt, _metricsSource);
            }
            catch (IOException e)
            {
                return SetupFailure(e.Message);
            }
        }
        long start = DaemonClock.NowMs();
        var engine = new ConntrackEngine(_options.Settings, start, maxWorkers: Math.Max(8, _options.QueueLast - _options.QueueFirst + 1), rescue: _options.Rescue)
        {
            CollectExpired = _options.ResetOnExpiry,
        };
        OffloadManager? offload = null;
        if (_options.Offload)
        {
            // Before the queues: a kernel without what offload needs stops the start before anything is bound.
            engine.EnableOffload(new OffloadPolicy { DelayMs = _options.OffloadDelayMs });
            try
            {
                offload = new OffloadManager(engine, OffloadSets.Create(new OffloadSetsOptions
                {
                    Table = string.Create(CultureInfo.InvariantCulture, $"ctfw-{Environment.ProcessId}"),
                    Hooks = _options.Install,
                    Mark = _options.OffloadMark,
                    TcpTimeout = TimeSpan.FromSeconds(_options.Settings.TcpTimeout(TcpState.Established)),
                    UdpTimeout = TimeSpan.FromSeconds(_options.Settings.UdpTimeoutStream),
                    // Two elements per flow; a set never holds more flows than the table.
                    MaxElements = (uint)Math.Min(uint.MaxValue, 2L * Math.Max(1, _options.Settings.Max)),
                }), _err);
            }
            catch (OffloadSetupException e)
            {
                return SetupFailure(e.Message);
            }
        }
        SyncService? sync = null;
        if (_options.Sync is { } syncOptions)
        {
            // Before the queues, like offload: an address that cannot be bound stops the start.
            try
            {
                sync = SyncService.Open(engine, syncOptions, _err);
            }
            catch (IOException e)
            {
                offload?.Dispose();
                return SetupFailure(e.Message);
            }
        }
        List<NfqueueSocket> sockets = [];
        IptablesInstaller? installer = null;
        RawIpSender? reject = null;
        HandoverTarget? takeover = null;
        try
        {
            if (_options.TakeoverFrom is { } from)
            {
                takeover = HandoverTarget.Begin(from, _options, QueueOptions);
                sockets.AddRange(takeover.Sockets);
            }
            else
            {
                for (int q = _options.QueueFirst; q <= _options.QueueLast; q++)
                    sockets.Add(NfqueueSocket.Open(QueueOptions((ushort)q)));
            }
        }
        catch (ErrnoException e)
        {
            DisposeAll(sockets);
            offload?.Dispose();
            sync?.Dispose();
            return SetupFailure(e.Message);
        }
        catch (IOException e)
        {
            offload?.Dispose();
            sync?.Dispose();
            return SetupFailure($"--takeover: {e.Message}; the running ctfw goes on filtering");
        }

        ExpiryResetter? resetter = null;
        // Restored before any worker or the housekeeper runs: RestoreState wants an engine nobody else touches yet.
        StateKeeper? state = _options.StatePath is { } statePath ? new StateKeeper(engine, statePath, _options.StateIntervalMs, _err) : null;
        TakeoverReport? takeoverReport = null;
        if (takeover is not null)
        {
            takeoverReport = CompleteTakeover(takeover, engine);
            if (takeoverReport is null)
            {
                takeover.Dispose();
                offload?.Dispose();
                sync?.Dispose();
                return 1;
            }
        }
        else
        {
            state?.Restore();
        }
        AdoptResult? imported = null;
        if (_options.ImportKernel)
        {
            // After the state file (its entries carry windows; the kernel's duplicates are skipped),
            // before the first packet.
            imported = ImportKernel(engine);
            if (imported is null)
            {
                DisposeAll(sockets);
                offload?.Dispose();
                sync?.Dispose();
                return 1;
            }
        }
        var log = new LogSink(_output.Queue);
        AbLog? abLog = _options.AbMark is null ? null : new AbLog(_output.Queue);
        RescueLog? rescueLog = _options.Rescue.Mode == RescueMode.Off ? null : new RescueLog(_output.Queue);
        ShadowMode? shadow = _options.AbMark is { } abMark ? new ShadowMode(abMark, _options.AbEnforceCtfw, abLog!) : null;
        List<QueueWorker> workers = [];
        ControlServer? control = null;
        DaemonControl? target = null;
        Timer? reloadTimer = null;
        Timer? rateTimer = null;
        List<Thread> threads = [];
        Thread? housekeeper = null;
        ServiceWatchdog? watchdog = null;
        List<PosixSignalRegistration> signals = [];
        HandoverSource? handover = null;
        JumpWatch? jumps = null;
        int status = 0;
        try
        {
            reject = RawIpSender.Open();
            if (reject.SetupProblem is { } problem)
                _err.WriteLine($"ctfw: warning: {problem}");
            if (_options.ResetOnExpiry)
            {
                // Its own socket: the housekeeper sends while workers send REJECT answers.
                RawIpSender resets = RawIpSender.Open();
                if (resets.SetupProblem is { } resetProblem)
                    _err.WriteLine($"ctfw: warning: --reset-on-expiry: {resetProblem}");
                resetter = new ExpiryResetter(resets);
            }

            if (LiveSysctls.AutoHelperWarning() is { } helperWarning)
                _err.WriteLine($"ctfw: warning: {helperWarning}");
            var config = new FirewallConfig { Rules = _options.Rules, Shadow = shadow, FailClosed = _options.FailClosed };
            foreach (NfqueueSocket socket in sockets)
            {
                // One environment per worker: the interface-name cache and ICMP source cache are per thread.
                var environment = new FirewallEnvironment { Interfaces = new InterfaceNames(), IcmpSources = new IcmpSourceSelector(), Log = log, RescueLog = rescueLog };
                workers.Add(new QueueWorker(socket, new FirewallPipeline(engine.CreateWorker(), config, environment), reject));
            }
            target = new DaemonControl(engine, workers, log, abLog, start, _options.RebuildSettings, _options.Rules)
            {
                Resetter = resetter,
                Output = _output,
                StalledAfterMs = _options.StalledAfterMs,
                AdoptedFromKernel = imported?.Adopted,
                Offload = offload,
                Sync = sync,
            };
            _metricsSource.Inner = new DaemonMetricsSource(target);
            handover = new HandoverSource(engine, workers, _options, state, () => installer?.Tag, _err, _shutdown.Set);
            target.Handover = handover;
            if (takeover is null)
                target.Control = control = StartControl(target);
            // The rates next to the totals in `ctfw stats`: one sample a second, off the packet path.
            rateTimer = new Timer(_ => target.SampleRates(), null, 0, 1000);
            if (_options.RebuildSettings is not null)
            {
                // Kernel conntrack applies a sysctl write from the next packet on; re-read once a second.
                reloadTimer = new Timer(_ => ReloadQuietly(target), null, SettingsReloadIntervalMs, SettingsReloadIntervalMs);
            }

            // Every signal whose default action would end the process ends it through the same
            // cleanup as SIGTERM (rules removed, verdicts flushed); SIGHUP reloads instead.
            foreach (PosixSignal signal in s_stopSignals)
                signals.Add(PosixSignalRegistration.Create(signal, OnSignal));
            signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true;
                ThreadPool.QueueUserWorkItem(_ => ReloadAndReport(target));
            }));
            if (SignalIgnoredAtStart(1))
            {
                // Inherited SIG_IGN (nohup): the runtime keeps it ignored, and a SIGHUP would do nothing.
                _err.WriteLine("ctfw: warning: SIGHUP is ignored in this process (started under nohup?): it will not reload; use `ctfw reload`");
            }

            List<NfqueueKernelCounters?> countersAtResume = [];
            if (takeover is not null)
            {
                foreach (NfqueueSocket socket in sockets)
                    countersAtResume.Add(socket.TryReadKernelCounters(out NfqueueKernelCounters c) ? c : null);
            }
            long resumedAt = System.Diagnostics.Stopwatch.GetTimestamp();
            foreach (QueueWorker worker in workers)
            {
                var thread = new Thread(() => worker.Run(_shutdown.Set)) { Name = $"ctfw-queue-{worker.Queue.Queue}", IsBackground = true };
                threads.Add(thread);
                thread.Start();
            }
            housekeeper = new Thread(() => Housekeep(engine, resetter)) { Name = "ctfw-housekeeper", IsBackground = true };
            housekeeper.Start();
            offload?.Start();
            if (sync is not null)
            {
                target.AttachSync(sync);
                sync.Start();
            }
            state?.Start();
            if (takeover is not null)
            {
                takeoverReport!.ResumedTimestamp = resumedAt;
                takeoverReport.Counters = countersAtResume;
                _err.WriteLine(takeoverReport.Describe(_options));
                // The old process exits within milliseconds of `bye`; its control socket path and
                // its iptables rules are free to take once it is gone.
                if (!WaitForExit(takeover.Offer.Pid, TimeSpan.FromSeconds(10)))
                    _err.WriteLine($"ctfw: warning: pid {takeover.Offer.Pid} has not exited 10 s after the hand-over");
                target.Control = control = StartControl(target);
                if (_options.MetricsEndpoint is { } metricsAfter)
                {
                    try
                    {
                        _metrics = MetricsServer.Start(metricsAfter, _metricsSource);
                    }
                    catch (IOException e)
                    {
                        _err.WriteLine($"ctfw: warning: no metrics ({e.Message})");
                    }
                }
                takeover.Dispose();
                if (_options.Install.Count == 0 && takeover.Offer.IptablesTag is not null)
                    _err.WriteLine($"ctfw: note: the NFQUEUE rules pid {takeover.Offer.Pid} installed stay in place (this run has no --install); the next run with --install removes them");
            }

            if (_options.Install.Count > 0)
            {
                try
                {
                    var iptablesOptions = new IptablesOptions
                    {
                        Hooks = _options.Install,
                        QueueFirst = _options.QueueFirst,
                        QueueLast = _options.QueueLast == _options.QueueFirst ? null : _options.QueueLast,
                        FailClosed = _options.FailClosed,
                        // ctfw's own REJECT answers must not come back to it through OUTPUT.
                        Match = ["-m", "mark", "!", "--mark", "0x" + RawIpSender.Mark.ToString("x8", CultureInfo.InvariantCulture)],
                        ShadowMark = _options.AbMark,
                        OffloadMark = _options.Offload ? _options.OffloadMark : null,
                    };
                    installer = takeover?.Offer.IptablesTag is { } previousTag
                        ? IptablesInstaller.TakeOver(iptablesOptions, previousTag)
                        : IptablesInstaller.Install(iptablesOptions);
                    if (installer.TakenOver.Count > 0)
                        _err.WriteLine($"ctfw: took over the NFQUEUE rules of pid {takeover!.Offer.Pid} ({installer.TakenOver.Count} rules replaced by this run's, jumps never absent)");
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException or System.ComponentModel.Win32Exception)
                {
                    status = SetupFailure($"installing iptables rules failed: {FirstLine(e.Message)}");
                    _shutdown.Set();
                }
                if (installer is { RemovedLeftovers.Count: > 0 })
                    _err.WriteLine($"ctfw: removed {installer.RemovedLeftovers.Count} iptables rules left by a run that is gone");
                if (installer is not null && status == 0)
                {
                    try
                    {
                        installer.PrepareCheck();
                        jumps = new JumpWatch(installer, _options.OnRulesLost, _err, _shutdown.Set);
                        jumps.Start();
                        target.Jumps = jumps;
                    }
                    catch (Exception e) when (e is InvalidOperationException or TimeoutException)
                    {
                        _err.WriteLine($"ctfw: WARNING: the installed rules cannot be checked ({FirstLine(e.Message)}); a flush of iptables would go unnoticed");
                    }
                }
            }

            if (status == 0)
            {
                _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ctfw: running on queue{(sockets.Count > 1 ? "s" : "")} {Describe()}, {_options.Rules.Rules.Count} rules from {_options.Rules.FileName}{(installer is null ? "" : $", installed on {string.Join(',', _options.Install).ToUpperInvariant()}")}{DescribeShadow()}{DescribeExtras()}{(control is null ? "" : $", control {control.Path}")}{(_metrics is null ? "" : $", metrics {_metrics.Endpoint.Url}")}"));
                // Only now: the queues are bound, the workers run and the jumps send them packets.
                _notifier.Ready(string.Create(CultureInfo.InvariantCulture,
                    $"filtering queue{(sockets.Count > 1 ? "s" : "")} {Describe()} with {_options.Rules.Rules.Count} rules"));
                if (_notifier.Enabled && _notifier.WatchdogUsec > 0)
                {
                    watchdog = new ServiceWatchdog(_notifier, workers, _err);
                    watchdog.Start();
                }
            }
            _shutdown.Wait();
        }
        finally
        {
            _notifier.Stopping("removing the NFQUEUE rules and flushing verdicts");
            watchdog?.Dispose();
            reloadTimer?.Dispose();
            rateTimer?.Dispose();
            control?.Dispose();
            _metrics?.Dispose();
            target?.Dispose(); // after the control server: no new event subscriber comes
            sync?.Dispose();
            // The offload table goes first: from now on every packet of an offloaded flow comes to the
            // queue again, while the workers still judge them.
            offload?.Dispose();
            bool handedOver = handover is { HandedOverTo: > 0 };
            // The way back to kernel filtering: the kernel gets ctfw's entries while ctfw still
            // judges every packet, so no packet meets the kernel's rules before its entry is there.
            if (_options.ExportKernelOnExit && !handedOver)
                ExportKernel(engine);
            // The check ends before the rules go: it must not put back what the stop removes.
            jumps?.Stop(TimeSpan.FromSeconds(10));
            if (installer is not null && !handedOver)
            {
                foreach (string failure in installer.Remove())
                    _err.WriteLine($"ctfw: removing iptables rule failed: {failure}");
            }
            foreach (QueueWorker worker in workers)
                worker.RequestStop();
            foreach (Thread thread in threads)
                thread.Join();
            _stopHousekeeper = true;
            housekeeper?.Join();
            // After the workers: the last packets' state is in the file. After a hand-over the
            // table is the new process's, and so is the file.
            if (handedOver)
                state?.StopWithoutWrite();
            else
                state?.StopAndWrite();
            state?.Dispose();
            foreach (PosixSignalRegistration registration in signals)
                registration.Dispose();
        }

        foreach (QueueWorker worker in workers)
        {
            if (worker.Failure is { } failure)
            {
                _err.WriteLine($"ctfw: {failure}");
                status = 1;
            }
        }
        if (jumps is not null)
        {
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: iptables self-check: checks {jumps.Checks}, failed {jumps.CheckFailures}, rules lost {jumps.Losses} time(s), reinstall commands {jumps.Reinstalls}, reinstall failures {jumps.RepairFailures}, last check {jumps.LastCheckUs / 1000.0:F1} ms, slowest {jumps.MaxCheckUs / 1000.0:F1} ms"));
            if (jumps.GaveUp && status == 0)
                status = JumpWatch.ExitStatus;
            jumps.Dispose();
        }
        PrintCounters(workers, log, abLog, DaemonClock.NowMs() - start, engine.Count);
        if (_options.Rescue.Mode != RescueMode.Off)
        {
            RescueCounters r = engine.RescueStats;
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: rescue ({_options.Rescue.Mode.ToString().ToLowerInvariant()}): fin {r.RescuedFin}, rst {r.RescuedRst}, loose {r.RescuedLoose}, out of window {r.RejectedOutOfWindow}; tombstones stored {r.TombstonesStored}, evicted {r.TombstonesEvicted}, expired {r.TombstonesExpired}, live {r.TombstonesLive}"));
        }
        if (resetter is not null)
        {
            _err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: reset on expiry: flows {resetter.FlowsReset}, RSTs sent {resetter.ResetsSent}, send errors {resetter.SendErrors}, rate-limited {resetter.Suppressed}, feed overflow {engine.ExpiredDropped}"));
            resetter.Dispose();
        }
        DisposeAll(sockets);
        foreach (QueueWorker worker in workers)
            worker.Dispose();
        reject?.Dispose();
        return status;
    }

    public void Dispose()
    {
        _shutdown.Dispose();
        _notifier.Dispose();
    }

    private NfqueueOptions QueueOptions(ushort queue) => new()
    {
        Queue = queue,
        FailOpen = _options.QueueFullAccept,
        CopyRange = _options.CopyRange,
        MaxQueueLength = _options.QueueMaxLength,
        ReceiveBufferBytes = _options.ReceiveBufferBytes,
    };

    private ControlServer? StartControl(DaemonControl target)
    {
        try
        {
            ControlAccess access = ControlAccess.Resolve(_options.ControlGroup, _options.ControlAdminGroup, out string? groupError)
                ?? throw new IOException(groupError);
            ControlServer server = ControlServer.Start(_options.ControlPath ?? ControlPaths.Default(Environment.ProcessId), target, access, _err.WriteLine);
            if (server.SweptStale > 0)
                _err.WriteLine($"ctfw: removed {server.SweptStale} control socket(s) of ctfw runs no longer running from {Path.GetDirectoryName(server.Path)}");
            return server;
        }
        catch (IOException e)
        {
            _err.WriteLine($"ctfw: warning: no control socket ({e.Message}); `ctfw stats` and `ctfw conntrack` cannot reach this run");
            return null;
        }
    }

    /// <summary>
    /// The new process's half of a takeover after the sockets arrived: restore the table, then
    /// `done`/`bye`. Null (after one line saying why) when the old process keeps the queues.
    /// </summary>
    private TakeoverReport? CompleteTakeover(HandoverTarget takeover, ConntrackEngine engine)
    {
        long restoreStart = System.Diagnostics.Stopwatch.GetTimestamp();
        StateRestoreResult restored = takeover.Restore(engine);
        if (restored.Status != StateRestoreStatus.Restored)
        {
            string why = $"the handed-over table did not restore ({restored.Status}: {restored.Message})";
            takeover.Abort(why);
            _err.WriteLine($"ctfw: --takeover: {why}; pid {takeover.Offer.Pid} goes on filtering");
            return null;
        }
        double restoreMs = System.Diagnostics.Stopwatch.GetElapsedTime(restoreStart).TotalMilliseconds;
        if (!takeover.Complete(out string? error))
        {
            takeover.Abort(error ?? "no bye");
            _err.WriteLine($"ctfw: --takeover: the hand-over did not complete ({error}); pid {takeover.Offer.Pid} keeps the queues");
            return null;
        }
        return new TakeoverReport(takeover.Offer, restored, restoreMs);
    }

    /// <summary>`--import-kernel`: the kernel's table of this namespace adopted into the engine; null (after one line) when the dump failed.</summary>
    private AdoptResult? ImportKernel(ConntrackEngine engine)
    {
        CtnetlinkDumpResult dump;
        try
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            dump = ct.Dump();
        }
        catch (ErrnoException e)
        {
            _err.WriteLine($"ctfw: --import-kernel: dumping the kernel's conntrack table failed: {e.Message}");
            return null;
        }
        AdoptResult adopted = engine.Adopt(dump.Entries, DaemonClock.NowMs());
        _err.WriteLine($"ctfw: imported from kernel conntrack: {dump.Message}; {adopted.Message}; adopted TCP entries take their sequence windows from their next packet in each direction");
        if (dump.Incomplete)
            _err.WriteLine("ctfw: warning: --import-kernel: the kernel's dump stayed incomplete (the table changed under it); entries it missed are picked up or refused as new flows");
        return adopted;
    }

    /// <summary>`--export-kernel-on-exit`: ctfw's entries written into the kernel table (replacing the kernel's own for the same tuples).</summary>
    private void ExportKernel(ConntrackEngine engine)
    {
        try
        {
            List<KernelConnection> entries = engine.ExportConnections(DaemonClock.NowMs());
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            CtnetlinkCreateResult result = ct.Create(entries, replaceExisting: true);
            _err.WriteLine($"ctfw: exported {entries.Count} entries to kernel conntrack: {result.Message}");
        }
        catch (ErrnoException e)
        {
            _err.WriteLine($"ctfw: --export-kernel-on-exit: writing the entries into the kernel's table failed: {e.Message}");
        }
    }

    private static bool WaitForExit(int pid, TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (IsRunning(pid))
        {
            if (Environment.TickCount64 > deadline)
                return false;
            Thread.Sleep(5);
        }
        return true;
    }

    /// <summary>False once the process is gone or a zombie (state Z or X in /proc/PID/stat) waiting for its parent.</summary>
    private static bool IsRunning(int pid) => ProcStat.TryRead(pid, out ProcStat stat) && !stat.HasExited;

    // SIGTERM, SIGINT, SIGQUIT, and by number SIGUSR1 (10), SIGUSR2 (12), SIGALRM (14), SIGVTALRM (26),
    // SIGPROF (27), SIGXCPU (24), SIGXFSZ (25): each would otherwise end the process without cleanup.
    private static readonly PosixSignal[] s_stopSignals =
    [
        PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT,
        (PosixSignal)10, (PosixSignal)12, (PosixSignal)14, (PosixSignal)26, (PosixSignal)27, (PosixSignal)24, (PosixSignal)25,
    ];

    private void ReloadAndReport(DaemonControl target)
    {
        _notifier.Reloading();
        ReloadResult result = target.Reload();
        _err.WriteLine(result.Ok ? $"ctfw: reload: {result.Message}" : $"ctfw: reload failed: {result.Message}");
        // A failed reload leaves the old rules in force: the service is as ready as before.
        _notifier.Ready(result.Ok ? $"reloaded: {result.Message}" : $"reload failed, old rules in force: {result.Message}");
    }

    /// <summary>Whether <paramref name="signal"/> was ignored when the process started (SigIgn in /proc/self/status).</summary>
    private static bool SignalIgnoredAtStart(int signal)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
                    return ulong.TryParse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong mask) && (mask & (1UL << (signal - 1))) != 0;
            }
        }
        catch (IOException)
        {
        }
        return false;
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // we exit on our own, after cleaning up
        _shutdown.Set();
    }

    private void Housekeep(ConntrackEngine engine, ExpiryResetter? resetter)
    {
        while (!_stopHousekeeper)
        {
            long now = DaemonClock.NowMs();
            engine.Maintain(now, HousekeepingBudget);
            resetter?.Drain(engine, now);
            Thread.Sleep(HousekeepingIntervalMs);
        }
    }

    private const int SettingsReloadIntervalMs = 1000;

    private void ReloadQuietly(DaemonControl target)
    {
        if (target.ReloadSysctls() is { } error)
            _err.WriteLine($"ctfw: warning: re-reading sysctls failed: {error}");
    }

    private string DescribeExtras() =>
        (_options.Rescue.Mode == RescueMode.Off ? "" : string.Create(CultureInfo.InvariantCulture,
            $", rescue {_options.Rescue.Mode.ToString().ToLowerInvariant()} ({_options.Rescue.WindowSeconds} s window)"))
        + (_options.ResetOnExpiry ? ", reset on expiry" : "")
        + (_options.StatePath is { } path ? string.Create(CultureInfo.InvariantCulture, $", state file {path} (every {_options.StateIntervalMs / 1000} s)") : "");

    private string DescribeShadow() => _options.AbMark is not { } mark ? ""
        : string.Create(CultureInfo.InvariantCulture,
            $", shadow mode against kernel conntrack (mark bits 0x{mark.Mask:x8}, rules use {(_options.AbEnforceCtfw ? "ctfw's" : "the kernel's")} ctstate)");

    private string Describe() => _options.QueueFirst == _options.QueueLast
        ? _options.QueueFirst.ToString(CultureInfo.InvariantCulture)
        : $"{_options.QueueFirst}-{_options.QueueLast}";

    private int SetupFailure(string message)
    {
        _err.WriteLine($"ctfw: {message}");
        return 1;
    }

    private static string FirstLine(string text)
    {
        int newline = text.IndexOf('\n', StringComparison.Ordinal);
        return newline < 0 ? text.Trim() : text[..newline].Trim();
    }

    private static void DisposeAll(List<NfqueueSocket> sockets)
    {
        foreach (NfqueueSocket socket in sockets)
            socket.Dispose();
    }

    private void PrintCounters(List<QueueWorker> workers, LogSink log, AbLog? abLog, long elapsedMs, int entries)
    {
        var total = new FirewallCounters();
        foreach (QueueWorker worker in workers)
            total.Add(worker.Counters);
        var w = _err;
        w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ctfw: stopped after {elapsedMs / 1000.0:F1} s"));
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ctfw: packets {total.Packets}: NEW {total.States[(int)CtState.New]}, ESTABLISHED {total.States[(int)CtState.Established]}, RELATED {total.States[(int)CtState.Related]}, INVALID {total.States[(int)CtState.Invalid]}, UNTRACKED {total.States[(int)CtState.Untracked]}, DROPPED {total.States[(int)CtState.Dropped]}, no-payload {total.NoPayload}"));
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ctfw: verdicts: accept {total.Accepted}, drop {total.Dropped}, reject {total.Rejected} (answers sent {total.RejectsSent}, send errors {total.RejectSendErrors}), confirm-clash drop {total.ConfirmDrops}"));
        List<string> reasons = [];
        for (int i = 1; i < total.InvalidReasons.Length; i++)
        {
            if (total.InvalidReasons[i] > 0)
                reasons.Add(string.Create(CultureInfo.InvariantCulture, $"{((InvalidReason)i).Name()} {total.InvalidReasons[i]}"));
        }
        w.WriteLine($"ctfw: invalid: {(reasons.Count == 0 ? "none" : string.Join(", ", reasons))}");
        if (abLog is not null)
        {
            List<string> pairs = [];
            for (int k = 0; k < FirewallCounters.KernelStates; k++)
            {
                for (int c = 0; c < FirewallCounters.CtfwStates; c++)
                {
                    long n = total.AbMatrix[k * FirewallCounters.CtfwStates + c];
                    if (n > 0 && k != c)
                        pairs.Add(string.Create(CultureInfo.InvariantCulture, $"kernel {DaemonControl.StateName((CtState)k)} / ctfw {DaemonControl.StateName((CtState)c)} {n}"));
                }
            }
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: ab: compared {total.AbCompared}, agreed {total.AbAgreed}, disagreed {total.AbCompared - total.AbAgreed} (direction only {total.AbDirectionMismatch}), unmarked {total.AbUnmarked}{(pairs.Count == 0 ? "" : "; " + string.Join(", ", pairs))}; disagreement lines {abLog.Written}, suppressed {abLog.Suppressed}"));
        }
        foreach (QueueWorker worker in workers)
        {
            NfqueueStatistics s = worker.Queue.Statistics;
            string kernel = worker.Queue.TryReadKernelCounters(out NfqueueKernelCounters k)
                ? string.Create(CultureInfo.InvariantCulture, $"queue_dropped {k.QueueDropped}, user_dropped {k.UserDropped}")
                : "kernel counters unavailable";
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"ctfw: queue {worker.Queue.Queue}: packets {s.Packets}, {kernel}, enobufs {s.EnobufsErrors}, lost verdicts {s.LostVerdicts}, verdict errors {s.VerdictErrors}"));
        }
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ctfw: log lines {log.Written}, suppressed {log.Suppressed}; output lines lost {_output.Queue.Lost} (buffer full: stderr slow or not read), write errors {_output.WriteErrors}; conntrack entries at stop {entries}"));
    }
}
