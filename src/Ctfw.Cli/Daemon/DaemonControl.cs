using System.Globalization;
using Ctfw.Linux;
using Ctfw.Cli.Control;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Linux.Nfqueue;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The running daemon as the control socket sees it: live counters, the flow table, flush and
/// sysctl reload, the ruleset in force with its counters. Runs on the control thread (and the reload timer); reads worker counters without
/// stopping the workers (see <see cref="FirewallCounters"/> for what that means for exactness).
/// </summary>
internal sealed class DaemonControl : IControlTarget, IDisposable
{
    private readonly ConntrackEngine _engine;
    private readonly IReadOnlyList<QueueWorker> _workers;
    private readonly LogSink _log;
    private readonly AbLog? _abLog;
    private readonly long _startMs;
    private readonly Func<(ConntrackSettings? Settings, string? Error)>? _rebuild;
    private readonly Lock _reloadLock = new();

    // The ruleset in force: the start's, then each reload's (written and read under _reloadLock).
    private Ruleset _rules;

    public DaemonControl(ConntrackEngine engine, IReadOnlyList<QueueWorker> workers, LogSink log, AbLog? abLog, long startMs,
        Func<(ConntrackSettings? Settings, string? Error)>? rebuild, Ruleset rules)
    {
        _rules = rules;
        _engine = engine;
        _workers = workers;
        _log = log;
        _abLog = abLog;
        _startMs = startMs;
        _rebuild = rebuild;
        _eventStream = new ConntrackEventStream(engine.Events, () => ListingOptions);
    }

    private readonly ConntrackEventStream _eventStream;

    public bool StreamEvents(System.Net.Sockets.Socket client, IReadOnlyList<string> args) => _eventStream.Subscribe(client, args);

    public IReadOnlyList<WorkerCounters> WorkerStatistics() => _engine.WorkerStatistics();

    /// <summary>State sync with the peer gateway (--sync ftfw); null when off.</summary>
    public SyncService? Sync { get; init; }

    /// <summary>Feeds the sync's event intake from the event stream (it then runs for good).</summary>
    public void AttachSync(SyncService sync) => _eventStream.AttachSink(sync);

    /// <summary>`ctfw sync SUB`: the body lines, or null with <paramref name="error"/>.</summary>
    public IReadOnlyList<string>? SyncRequest(string sub, out string? error)
    {
        error = null;
        if (Sync is not { } s)
        {
            error = "state sync is off (start ctfw run with --sync ftfw)";
            return null;
        }
        switch (sub)
        {
            case ControlProtocol.SyncStatus:
                return s.Status();
            case ControlProtocol.SyncExternal:
                return s.ListExternal();
            case ControlProtocol.SyncCommit:
                return [s.Commit()];
            case ControlProtocol.SyncResync:
                return [s.RequestResync()];
            case ControlProtocol.SyncFlush:
                return [s.Flush()];
            case ControlProtocol.SyncBulk:
                return [s.RequestBulk()];
            default:
                error = $"unknown sync request '{sub}' (expected {string.Join(", ", ControlProtocol.SyncRequests)})";
                return null;
        }
    }

    /// <summary>Ends the event subscriptions (the daemon stops; the control server is closed first).</summary>
    public void Dispose() => _eventStream.Dispose();

    /// <summary>Zero-window age from which a flow counts in <c>stalled.flows</c>.</summary>
    public long StalledAfterMs { get; init; } = FlowAges.DefaultStalledAfterSeconds * 1000L;

    /// <summary>Entries adopted from kernel conntrack at start (--import-kernel); null when not asked for.</summary>
    public int? AdoptedFromKernel { get; init; }

    /// <summary>The --reset-on-expiry sender, when enabled.</summary>
    public ExpiryResetter? Resetter { get; init; }

    /// <summary>The stderr writer and its queue: lines lost to a full queue, waiting, failed.</summary>
    public required LogWriter Output { get; init; }

    private long _agesAtMs = long.MinValue / 2;
    private int _halfClosed;
    private int _stalled;

    /// <summary>The self-check of the installed iptables rules; set once they are in (null without --install).</summary>
    public JumpWatch? Jumps
    {
        get => Volatile.Read(ref _jumps);
        set => Volatile.Write(ref _jumps, value); // publishes a started watch to the control thread
    }

    private JumpWatch? _jumps;

    /// <summary>The control socket serving this target, for its <c>control.*</c> counters; set once it listens.</summary>
    public ControlServer? Control
    {
        get => Volatile.Read(ref _control);
        set => Volatile.Write(ref _control, value); // publishes the started server to the control threads
    }

    private ControlServer? _control;

    /// <summary>Sysctl reloads that changed at least one value.</summary>
    public long SettingsReloads { get; private set; }

    /// <summary>The counters <see cref="SampleRates"/> follows: packets, verdicts and ctstates.</summary>
    private static readonly string[] s_rateNames = BuildRateNames();

    private static string[] BuildRateNames()
    {
        List<string> names = ["packets", "verdict.accept", "verdict.drop", "verdict.reject"];
        for (int i = 0; i < FirewallCounters.CtfwStates; i++)
            names.Add("state." + StateName((CtState)i));
        return [.. names];
    }

    private readonly CounterRates _rates = new(s_rateNames);
    // Guards _rates: the sampling timer writes it, the control thread reads it.
    private readonly Lock _ratesLock = new();

    /// <summary>
    /// Records the counters <see cref="CounterRates"/> follows; the daemon calls it once a second
    /// from a timer. Reads the worker counters as <see cref="Stats"/> does, never stopping a worker.
    /// </summary>
    public void SampleRates()
    {
        FirewallCounters total = SumCounters();
        Span<long> values = stackalloc long[s_rateNames.Length];
        values[0] = total.Packets;
        values[1] = total.Accepted;
        values[2] = total.Dropped;
        values[3] = total.Rejected;
        for (int i = 0; i < FirewallCounters.CtfwStates; i++)
            values[4 + i] = total.States[i];
        long now = DaemonClock.NowMs();
        lock (_ratesLock)
            _rates.Sample(now, values);
    }

    private FirewallCounters SumCounters()
    {
        var total = new FirewallCounters();
        foreach (QueueWorker worker in _workers)
            total.Add(worker.Counters);
        return total;
    }

    public IReadOnlyList<KeyValuePair<string, long>> Stats()
    {
        List<KeyValuePair<string, long>> s = Counters(withZeros: false, scanTable: true);
        lock (_ratesLock)
            _rates.Rates(s);
        return s;
    }

    /// <summary>
    /// Every counter, named as `ctfw stats` names them: the answer to `stats` (without the rates) and
    /// what a metrics scrape reads (<see cref="Metrics.DaemonMetricsSource"/>). <paramref name="withZeros"/>
    /// lists the INVALID reasons and the A/B matrix cells that are still 0 (a Prometheus series that exists
    /// from the first scrape gives rate() a start). <paramref name="scanTable"/> refreshes the half-closed
    /// and stalled counts (a full table scan, at most once a second) — only the control thread, which
    /// holds the target lock, may ask for it; without it those two lines are left out. Reads the
    /// per-worker counters and the engine's padded counters whole; takes no lock a worker takes.
    /// </summary>
    internal List<KeyValuePair<string, long>> Counters(bool withZeros, bool scanTable)
    {
        FirewallCounters total = SumCounters();
        List<KeyValuePair<string, long>> s = new(192);
        void Add(string name, long value) => s.Add(new(name, value));

        Add("uptime_ms", DaemonClock.NowMs() - _startMs);
        Add("packets", total.Packets);
        Add("packets.no_payload", total.NoPayload);
        for (int i = 0; i < FirewallCounters.CtfwStates; i++)
            Add("state." + StateName((CtState)i), total.States[i]);
        Add("verdict.accept", total.Accepted);
        Add("verdict.drop", total.Dropped);
        Add("verdict.reject", total.Rejected);
        Add("verdict.confirm_drop", total.ConfirmDrops);
        Add("reject.sent", total.RejectsSent);
        Add("reject.send_errors", total.RejectSendErrors);
        for (int i = 1; i < total.InvalidReasons.Length; i++)
        {
            if (withZeros || total.InvalidReasons[i] > 0)
                Add("invalid." + ((InvalidReason)i).Name(), total.InvalidReasons[i]);
        }
        if (_abLog is not null)
        {
            Add("ab.compared", total.AbCompared);
            Add("ab.agreed", total.AbAgreed);
            Add("ab.disagreed", total.AbCompared - total.AbAgreed);
            Add("ab.dir_mismatch", total.AbDirectionMismatch);
            Add("ab.unmarked", total.AbUnmarked);
            Add("ab.log.written", _abLog.Written);
            Add("ab.log.suppressed", _abLog.Suppressed);
            for (int k = 0; k < FirewallCounters.KernelStates; k++)
            {
                for (int c = 0; c < FirewallCounters.CtfwStates; c++)
                {
                    long n = total.AbMatrix[k * FirewallCounters.CtfwStates + c];
                    if (withZeros || n > 0)
                        Add($"ab.{StateName((CtState)k)}.{StateName((CtState)c)}", n);
                }
            }
        }
        long verdictsSent = 0;
        foreach (QueueWorker worker in _workers)
            verdictsSent += worker.Queue.Statistics.VerdictsSent;
        Add("verdicts_sent", verdictsSent);
        long unjudged = 0;
        foreach (QueueWorker worker in _workers)
        {
            string q = $"queue.{worker.Queue.Queue}.";
            NfqueueStatistics st = worker.Queue.Statistics;
            Add(q + "packets", st.Packets);
            Add(q + "verdicts_sent", st.VerdictsSent);
            Add(q + "recv_calls", st.ReceiveSyscalls);
            Add(q + "recv_batches", st.ReceiveCalls);
            Add(q + "verdict_flushes", st.Flushes);
            Add(q + "verdict_sendmsg", st.SendSyscalls);
            Add(q + "allocated_bytes", worker.AllocatedBytes);
            if (worker.ThreadId != 0 && ResourceUsage.TryGetThreadTimes(worker.ThreadId, out long threadUser, out long threadSys))
            {
                Add(q + "cpu_user_us", threadUser);
                Add(q + "cpu_sys_us", threadSys);
            }
            if (worker.Queue.TryReadKernelCounters(out NfqueueKernelCounters k))
            {
                Add(q + "queue_dropped", k.QueueDropped);
                Add(q + "user_dropped", k.UserDropped);
                unjudged += (long)k.QueueDropped + k.UserDropped;
            }
            Add(q + "enobufs", st.EnobufsErrors);
            Add(q + "verdict_errors", st.VerdictErrors);
            Add(q + "lost_verdicts", st.LostVerdicts);
        }
        // Packets the kernel dropped for want of room in a queue or its socket buffer: never judged,
        // never passed (with --queue-full accept they pass instead and nobody counts them). Since the
        // queues were bound: the kernel keeps these per queue instance, not per process.
        Add("unjudged_dropped", unjudged);
        if (_engine.Rescue.Mode != RescueMode.Off)
        {
            RescueCounters r = _engine.RescueStats;
            Add("rescue.fin", r.RescuedFin);
            Add("rescue.rst", r.RescuedRst);
            Add("rescue.loose", r.RescuedLoose);
            Add("rescue.out_of_window", r.RejectedOutOfWindow);
            Add("rescue.tombstones.live", r.TombstonesLive);
            Add("rescue.tombstones.stored", r.TombstonesStored);
            Add("rescue.tombstones.evicted", r.TombstonesEvicted);
            Add("rescue.tombstones.expired", r.TombstonesExpired);
        }
        if (Resetter is { } resetter)
        {
            Add("reset.flows", resetter.FlowsReset);
            Add("reset.sent", resetter.ResetsSent);
            Add("reset.send_errors", resetter.SendErrors);
            Add("reset.rate_limited", resetter.Suppressed);
            Add("reset.feed_overflow", _engine.ExpiredDropped);
        }
        if (scanTable)
        {
            // A full table scan: at most once a second, however often stats are polled (the lab polls per packet).
            long now = DaemonClock.NowMs();
            if (now - _agesAtMs >= 1000)
            {
                (_halfClosed, _stalled) = FlowAges.Count(_engine, now, StalledAfterMs);
                _agesAtMs = now;
            }
            Add("halfclosed.flows", _halfClosed);
            Add("stalled.flows", _stalled);
        }
        Add("table.entries", _engine.Count);
        Add("table.max", _engine.Settings.Max);
        Add("table.early_drops", _engine.EarlyDrops);
        Add("table.alloc_failures", _engine.AllocFailures);
        Add("table.full_drops", _engine.FullDrops);
        Add("table.slot_shortages", _engine.SlotShortages);
        Add("table.insert_failed", _engine.InsertFailed);
        Add("table.reclaims_on_demand", _engine.ReclaimsOnDemand);
        if (AdoptedFromKernel is { } adopted)
            Add("table.adopted_from_kernel", adopted);
        for (int g = 0; g <= GC.MaxGeneration; g++)
            Add("gc.gen" + g.ToString(CultureInfo.InvariantCulture), GC.CollectionCount(g));
        Add("gc.allocated_bytes", GC.GetTotalAllocatedBytes(precise: false));
        Add("gc.pause_us", (long)GC.GetTotalPauseDuration().TotalMicroseconds);
        Add("gc.heap_bytes", GC.GetTotalMemory(forceFullCollection: false));
        if (ResourceUsage.TryGetProcessTimes(out long user, out long sys))
        {
            Add("process.cpu_user_us", user);
            Add("process.cpu_sys_us", sys);
        }
        Add("process.rss_bytes", ResourceUsage.ResidentBytes());
        Add("process.rss_anon_bytes", ResourceUsage.AnonymousResidentBytes());
        Add("log.written", _log.Written);
        Add("log.suppressed", _log.Suppressed);
        Add("log.lost", Output.Queue.Lost);
        Add("log.pending", Output.Queue.Pending);
        Add("log.write_errors", Output.WriteErrors);
        if (Jumps is { } jumps)
        {
            Add("iptables.checks", jumps.Checks);
            Add("iptables.check_failures", jumps.CheckFailures);
            Add("iptables.losses", jumps.Losses);
            Add("iptables.reinstalls", jumps.Reinstalls);
            Add("iptables.reinstall_failures", jumps.RepairFailures);
            Add("iptables.check_last_us", jumps.LastCheckUs);
            Add("iptables.check_max_us", jumps.MaxCheckUs);
        }
        if (Control is { } control)
        {
            foreach (KeyValuePair<string, long> counter in control.Counters())
                s.Add(counter);
        }
        Add("events.subscribers", _eventStream.Subscribers);
        Add("events.dropped", _engine.Events.DroppedTotal);
        foreach (KeyValuePair<string, long> d in _engine.Events.Dropped)
            Add("events.dropped." + d.Key, d.Value);
        Add("events.lost", _eventStream.Lost);
        if (Offload is { } o)
        {
            Add("offload.flows", o.Flows);
            Add("offload.adds", o.Adds);
            Add("offload.removes", o.Removes);
            Add("offload.expired", o.Expired);
            Add("offload.packets", o.Packets);
            Add("offload.bytes", o.Bytes);
            Add("offload.errors", o.Errors);
            Add("offload.discarded", o.Discarded);
            Add("offload.ring_dropped", _engine.Offload?.Dropped ?? 0);
            Add("offload.relearned", _engine.Offload?.Relearned ?? 0);
            Add("offload.batches", o.Batches);
            Add("offload.observations", o.Observations);
            Add("offload.observe_last_us", o.LastObserveUs);
        }
        if (Sync is { } sync)
        {
            foreach (KeyValuePair<string, long> kv in sync.Stats())
                Add(kv.Key, kv.Value);
        }
        Add("settings.reloads", SettingsReloads);
        Add("rules.reloads", RulesReloads);
        Add("rules.reload_failures", RulesReloadFailures);
        return s;
    }

    // One bool read of the live settings (reloaded once a second): a benign race with a reload.
    public ListingOptions ListingOptions => _engine.Settings.Acct ? ListingOptions.Accounting : ListingOptions.None;

    public List<FlowInfo> Snapshot(out long nowMs)
    {
        Offload?.Sync(); // the kernel's counters until now, into the flows' accounting
        nowMs = DaemonClock.NowMs();
        return _engine.Snapshot(nowMs);
    }

    public List<ExpectationInfo> Expectations() => _engine.ListExpectations(DaemonClock.NowMs());

    public int FlushExpectations() => _engine.FlushExpectations(DaemonClock.NowMs());

    public int Flush()
    {
        // The kernel stops forwarding past ctfw before the entries go (docs/OFFLOAD.md).
        OffloadFirst(() => Offload!.RemoveAll(), "flush");
        return _engine.Flush(DaemonClock.NowMs());
    }

    public List<FlowInfo> Delete(Func<FlowInfo, long, bool> match, out long nowMs)
    {
        long now = DaemonClock.NowMs();
        nowMs = now;
        if (Offload is { Flows: > 0 } offload)
        {
            var doomed = new HashSet<ConnTuple>();
            _engine.ForEachFlow(now, f =>
            {
                if ((f.Status & CtStatus.Offload) != 0 && match(f, now))
                    doomed.Add(f.Original);
            });
            if (doomed.Count > 0)
                OffloadFirst(() => offload.Remove(doomed.Contains), "delete");
        }
        return _engine.Kill(now, flow => match(flow, now));
    }

    /// <summary>The offload manager (<c>--offload established</c>); null when off.</summary>
    public OffloadManager? Offload { get; init; }

    private void OffloadFirst(Func<bool> removal, string what)
    {
        if (Offload is null)
            return;
        if (!removal())
            Output.Queue.TryEnqueue($"ctfw: WARNING: {what}: the offload manager did not confirm the removal of offloaded flows within 10 s");
    }

    public string? ReloadSysctls()
    {
        if (_rebuild is null)
            return "this ctfw was not started from live sysctls";
        lock (_reloadLock)
            return ReloadSysctlsLocked();
    }

    private string? ReloadSysctlsLocked()
    {
        (ConntrackSettings? fresh, string? error) = _rebuild!();
        if (fresh is null)
            return error ?? "reading the sysctls failed";
        if (_engine.ReloadSettings(fresh).Count > 0)
            SettingsReloads++;
        return null;
    }

    /// <summary>Rules reloads that took effect (<c>rules.reloads</c>) and that failed and left the old rules (<c>rules.reload_failures</c>).</summary>
    public long RulesReloads { get; private set; }

    public long RulesReloadFailures { get; private set; }

    /// <summary>
    /// SIGHUP and `ctfw reload`: re-reads the rules file and the sysctls. A ruleset that loads goes
    /// live in every worker at its next batch, existing flows keep their state, and unchanged rules
    /// keep their counters; a ruleset with an error leaves the old one in force and the error (every
    /// <c>file:line:col: message</c>) is returned. Serialised: two reloads never interleave.
    /// </summary>
    /// <summary>The hand-over to a `ctfw run --takeover`; null until the daemon has set it up.</summary>
    public HandoverSource? Handover { get; set; }

    public void HandOver(System.Net.Sockets.Socket client, IReadOnlyList<string> args)
    {
        if (Handover is { } source)
            source.Serve(client, args);
        else
            HandoverProtocol.WriteLine(client, "error: this ctfw is not ready to hand over yet");
    }

    public ReloadResult Reload()
    {
        lock (_reloadLock)
        {
            Ruleset current = _rules;
            string path = current.FileName;
            if (!Ruleset.TryLoadFile(path, out Ruleset? fresh, out IReadOnlyList<RuleError> errors) || fresh is null)
            {
                RulesReloadFailures++;
                string detail = errors.Count == 0 ? "unreadable" : string.Join("; ", errors.Select(e => e.ToString()));
                return new ReloadResult(false, $"{path}: {errors.Count} error{(errors.Count == 1 ? "" : "s")}, the old rules stay in force: {detail}");
            }
            int carried = fresh.CarryCountersFrom(current);
            foreach (QueueWorker worker in _workers)
            {
                FirewallConfig old = worker.Pipeline.Config;
                worker.Pipeline.Reconfigure(new FirewallConfig { Rules = fresh, Shadow = old.Shadow, FailClosed = old.FailClosed, Generation = (int)RulesReloads + 1 });
            }
            // Offloaded flows were accepted by the old rules: out of the kernel's sets, and what the
            // old rules accepted but the manager has not taken yet is discarded. Flows the new rules
            // accept are offloaded again by their next packet.
            OffloadFirst(() => Offload!.RemoveAll((int)RulesReloads + 1), "reload");
            _rules = fresh;
            RulesReloads++;
            string sysctls = _rebuild is null ? "" : ReloadSysctlsLocked() is { } sysctlError ? $"; sysctls not re-read: {sysctlError}" : "; sysctls re-read";
            string warnings = fresh.Warnings.Count == 0 ? "" : $"; warnings: {string.Join("; ", fresh.Warnings.Select(w => w.ToString()))}";
            return new ReloadResult(true, string.Create(CultureInfo.InvariantCulture,
                $"{fresh.Rules.Count} rules from {path} in force from the next batch; counters kept for {carried} unchanged rules{sysctls}{warnings}"));
        }
    }

    public string ListRules(bool verbose, bool exact, bool zero)
    {
        // The lock keeps a reload from swapping _rules between reading and zeroing (it never waits on workers).
        lock (_reloadLock)
        {
            string listing = RuleListing.Format(_rules, exact, verbose);
            if (zero)
                ZeroLocked();
            return listing;
        }
    }

    public void ZeroCounters()
    {
        lock (_reloadLock)
            ZeroLocked();
    }

    /// <summary>
    /// Zeroes the counters of the ruleset in force while the workers keep adding to them: no lock on
    /// the packet path, one atomic exchange per counter (<see cref="Ruleset.ZeroCounters"/>). A packet
    /// counted while the zero sweeps may be kept or lost, its packet and its bytes independently
    /// (counted before the exchange of that counter: lost; after: kept). A worker still on the previous ruleset until its next batch (after a
    /// reload) adds there, not to the zeroed one. One log line, as a reload has.
    /// </summary>
    private void ZeroLocked()
    {
        _rules.ZeroCounters();
        Output.Queue.TryEnqueue($"ctfw: rules: counters of {_rules.FileName} zeroed (ctfw rules -Z)");
    }

    /// <summary>The ctstate as counter names spell it (iptables' names; conntrack's own drop as DROPPED).</summary>
    internal static string StateName(CtState state) => state.Name();
}
