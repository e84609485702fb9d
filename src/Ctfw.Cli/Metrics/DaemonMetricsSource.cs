using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Linux;
using Ctfw.Linux.Nfqueue;
using Ctfw.Packets;

namespace Ctfw.Cli.Metrics;

/// <summary>
/// The running daemon's counters for a scrape, named as `ctfw stats` names them. Unlike
/// <see cref="DaemonControl.Stats"/> it never scans the flow table (no half-closed/stalled counts):
/// it reads the per-worker counters (each worker's own object, plain 64-bit reads; a set may be a few
/// packets apart, see <see cref="FirewallCounters"/>), the queue sockets' statistics, the engine's
/// padded counters, /proc, and the GC. It takes no lock a worker takes, and the packet path calls
/// nothing here: a scrape costs the workers only the cache misses of those reads.
/// </summary>
internal sealed class DaemonMetricsSource : IMetricsSource
{
    private readonly ConntrackEngine _engine;
    private readonly IReadOnlyList<QueueWorker> _workers;
    private readonly DaemonControl _control;
    private readonly long _startMs;
    private readonly LogSink _log;
    private readonly AbLog? _abLog;

    public DaemonMetricsSource(ConntrackEngine engine, IReadOnlyList<QueueWorker> workers, DaemonControl control, long startMs, LogSink log, AbLog? abLog)
    {
        _log = log;
        _abLog = abLog;
        _engine = engine;
        _workers = workers;
        _control = control;
        _startMs = startMs;
    }

    public IReadOnlyList<KeyValuePair<string, long>> Read()
    {
        var total = new FirewallCounters();
        foreach (QueueWorker worker in _workers)
            total.Add(worker.Counters);
        List<KeyValuePair<string, long>> s = new(160);
        void Add(string name, long value) => s.Add(new(name, value));

        Add("uptime_ms", DaemonClock.NowMs() - _startMs);
        Add("packets", total.Packets);
        Add("packets.no_payload", total.NoPayload);
        for (int i = 0; i < FirewallCounters.CtfwStates; i++)
            Add("state." + DaemonControl.StateName((CtState)i), total.States[i]);
        Add("verdict.accept", total.Accepted);
        Add("verdict.drop", total.Dropped);
        Add("verdict.reject", total.Rejected);
        Add("verdict.confirm_drop", total.ConfirmDrops);
        Add("reject.sent", total.RejectsSent);
        Add("reject.send_errors", total.RejectSendErrors);
        // Every reason, zeros too: a series that exists from the first scrape gives rate() a start.
        for (int i = 1; i < total.InvalidReasons.Length; i++)
            Add("invalid." + ((InvalidReason)i).Name(), total.InvalidReasons[i]);
        if (_abLog is not null)
        {
            Add("ab.log.written", _abLog.Written);
            Add("ab.log.suppressed", _abLog.Suppressed);
            Add("ab.compared", total.AbCompared);
            Add("ab.agreed", total.AbAgreed);
            Add("ab.dir_mismatch", total.AbDirectionMismatch);
            Add("ab.unmarked", total.AbUnmarked);
            for (int k = 0; k < FirewallCounters.KernelStates; k++)
            {
                for (int c = 0; c < FirewallCounters.CtfwStates; c++)
                    Add($"ab.{DaemonControl.StateName((CtState)k)}.{DaemonControl.StateName((CtState)c)}", total.AbMatrix[k * FirewallCounters.CtfwStates + c]);
            }
        }
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
            Add(q + "enobufs", st.EnobufsErrors);
            Add(q + "verdict_errors", st.VerdictErrors);
            Add(q + "lost_verdicts", st.LostVerdicts);
            if (worker.ThreadId != 0 && ResourceUsage.TryGetThreadTimes(worker.ThreadId, out long threadUser, out long threadSys))
            {
                Add(q + "cpu_user_us", threadUser);
                Add(q + "cpu_sys_us", threadSys);
            }
            // /proc/net/netfilter/nfnetlink_queue: the kernel's own counts, read from a file.
            if (worker.Queue.TryReadKernelCounters(out NfqueueKernelCounters k))
            {
                Add(q + "queue_dropped", k.QueueDropped);
                Add(q + "user_dropped", k.UserDropped);
            }
        }
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
        if (_control.Resetter is { } resetter)
        {
            Add("reset.flows", resetter.FlowsReset);
            Add("reset.sent", resetter.ResetsSent);
            Add("reset.send_errors", resetter.SendErrors);
            Add("reset.rate_limited", resetter.Suppressed);
            Add("reset.feed_overflow", _engine.ExpiredDropped);
        }
        Add("table.entries", _engine.Count);
        Add("table.max", _engine.Settings.Max);
        Add("table.early_drops", _engine.EarlyDrops);
        Add("table.alloc_failures", _engine.AllocFailures);
        Add("table.full_drops", _engine.FullDrops);
        Add("table.slot_shortages", _engine.SlotShortages);
        Add("table.insert_failed", _engine.InsertFailed);
        Add("table.reclaims_on_demand", _engine.ReclaimsOnDemand);
        if (_control.AdoptedFromKernel is { } adopted)
            Add("table.adopted_from_kernel", adopted);
        for (int g = 0; g <= GC.MaxGeneration; g++)
            Add("gc.gen" + g, GC.CollectionCount(g));
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
        Add("log.lost", _control.Output.Queue.Lost);
        Add("log.pending", _control.Output.Queue.Pending);
        Add("log.write_errors", _control.Output.WriteErrors);
        if (_control.Jumps is { } jumps)
        {
            Add("iptables.checks", jumps.Checks);
            Add("iptables.check_failures", jumps.CheckFailures);
            Add("iptables.losses", jumps.Losses);
            Add("iptables.reinstalls", jumps.Reinstalls);
            Add("iptables.reinstall_failures", jumps.RepairFailures);
        }
        Add("settings.reloads", _control.SettingsReloads);
        Add("rules.reloads", _control.RulesReloads);
        Add("rules.reload_failures", _control.RulesReloadFailures);
        return s;
    }
}
