namespace Ctfw.Cli.Metrics;

/// <summary>Counter or gauge, as Prometheus' <c># TYPE</c> line says.</summary>
internal enum MetricKind
{
    Counter,
    Gauge,
}

/// <summary>One exported family: its Prometheus name, kind, help text and label names.</summary>
internal sealed record MetricFamily(string Name, MetricKind Kind, string Help, params string[] Labels);

/// <summary>Where one `ctfw stats` counter goes: its family, the label values, and the factor to the family's unit.</summary>
internal readonly record struct MetricTarget(MetricFamily Family, string[] LabelValues, double Scale);

/// <summary>
/// The mapping from `ctfw stats` names to Prometheus families (names per
/// https://prometheus.io/docs/practices/naming/: <c>ctfw_</c> prefix, <c>_total</c> on counters,
/// base units — seconds, bytes). One table, so the exposition, the docs and the tests agree. The
/// values of a label partition its family (no "all" value): a sum over a label is a total.
/// Names a source gives that are not here are not exported (a new stats counter needs a line here).
/// </summary>
internal static class MetricFamilies
{
    private const double Microseconds = 1e-6;
    private const double Milliseconds = 1e-3;

    public static readonly MetricFamily Uptime = new("ctfw_uptime_seconds", MetricKind.Gauge, "Seconds since this ctfw started.");
    public static readonly MetricFamily PacketsSeen = new("ctfw_packets_seen_total", MetricKind.Counter, "Packets the firewall pipeline judged.");
    public static readonly MetricFamily NoPayload = new("ctfw_packets_no_payload_total", MetricKind.Counter, "Queued packets that came without payload (accepted unjudged).");
    public static readonly MetricFamily Packets = new("ctfw_packets_total", MetricKind.Counter, "Packets by the ctstate ctfw gave them (dropped: ctfw's own drop before the rules, as the kernel's).", "state");
    public static readonly MetricFamily Verdicts = new("ctfw_verdicts_total", MetricKind.Counter, "Packets by verdict.", "verdict");
    public static readonly MetricFamily RejectsSent = new("ctfw_rejects_sent_total", MetricKind.Counter, "REJECT answers sent.");
    public static readonly MetricFamily RejectSendErrors = new("ctfw_reject_send_errors_total", MetricKind.Counter, "REJECT answers that could not be sent.");
    public static readonly MetricFamily Invalid = new("ctfw_invalid_packets_total", MetricKind.Counter, "INVALID packets by reason.", "reason");
    public static readonly MetricFamily AbCompared = new("ctfw_ab_compared_total", MetricKind.Counter, "Shadow mode: packets whose kernel ctstate was compared with ctfw's.");
    public static readonly MetricFamily AbAgreed = new("ctfw_ab_agreed_total", MetricKind.Counter, "Shadow mode: packets on which kernel and ctfw agreed (state and direction).");
    public static readonly MetricFamily AbDirection = new("ctfw_ab_direction_mismatches_total", MetricKind.Counter, "Shadow mode: same ctstate, different direction.");
    public static readonly MetricFamily AbUnmarked = new("ctfw_ab_unmarked_total", MetricKind.Counter, "Shadow mode: packets without the kernel's mark.");
    public static readonly MetricFamily AbMatrix = new("ctfw_ab_packets_total", MetricKind.Counter, "Shadow mode agreement matrix: packets by the kernel's ctstate and ctfw's.", "kernel", "ctfw");
    public static readonly MetricFamily AbLog = new("ctfw_ab_log_lines_total", MetricKind.Counter, "Shadow mode disagreement log lines, written or suppressed by the rate limit.", "outcome");
    public static readonly MetricFamily QueuePackets = new("ctfw_queue_packets_total", MetricKind.Counter, "Packets received from the queue.", "queue");
    public static readonly MetricFamily QueueVerdicts = new("ctfw_queue_verdicts_sent_total", MetricKind.Counter, "Verdicts sent to the queue.", "queue");
    public static readonly MetricFamily QueueReceiveSyscalls = new("ctfw_queue_receive_syscalls_total", MetricKind.Counter, "recvmmsg/recvmsg calls on the queue socket.", "queue");
    public static readonly MetricFamily QueueReceiveBatches = new("ctfw_queue_receive_batches_total", MetricKind.Counter, "Batches of packets received.", "queue");
    public static readonly MetricFamily QueueFlushes = new("ctfw_queue_verdict_flushes_total", MetricKind.Counter, "Verdict batches flushed.", "queue");
    public static readonly MetricFamily QueueSendSyscalls = new("ctfw_queue_verdict_syscalls_total", MetricKind.Counter, "sendmsg calls carrying verdicts.", "queue");
    public static readonly MetricFamily QueueAllocated = new("ctfw_queue_allocated_bytes_total", MetricKind.Counter, "Managed bytes the queue's worker thread allocated since it started (0 in steady state).", "queue");
    public static readonly MetricFamily QueueCpu = new("ctfw_queue_cpu_seconds_total", MetricKind.Counter, "CPU time of the queue's worker thread.", "queue", "mode");
    public static readonly MetricFamily QueueDropped = new("ctfw_queue_dropped_total", MetricKind.Counter, "Packets the kernel dropped unjudged: the queue full (queue_full) or the socket buffer full (socket_full).", "queue", "cause");
    public static readonly MetricFamily QueueEnobufs = new("ctfw_queue_enobufs_total", MetricKind.Counter, "ENOBUFS on the queue socket (the kernel could not deliver to it).", "queue");
    public static readonly MetricFamily QueueVerdictErrors = new("ctfw_queue_verdict_errors_total", MetricKind.Counter, "Verdict sends that failed.", "queue");
    public static readonly MetricFamily QueueLostVerdicts = new("ctfw_queue_lost_verdicts_total", MetricKind.Counter, "Verdicts lost with a failed send.", "queue");
    public static readonly MetricFamily Rescued = new("ctfw_rescued_total", MetricKind.Counter, "--rescue: late packets let through by the tombstone of an expired entry.", "kind");
    public static readonly MetricFamily RescueOutOfWindow = new("ctfw_rescue_out_of_window_total", MetricKind.Counter, "--rescue: late packets refused, out of the remembered window.");
    public static readonly MetricFamily Tombstones = new("ctfw_rescue_tombstones", MetricKind.Gauge, "--rescue: tombstones held now.");
    public static readonly MetricFamily TombstoneEvents = new("ctfw_rescue_tombstones_total", MetricKind.Counter, "--rescue: tombstones stored, evicted (no room) or expired.", "event");
    public static readonly MetricFamily ResetFlows = new("ctfw_expiry_reset_flows_total", MetricKind.Counter, "--reset-on-expiry: expired flows reset.");
    public static readonly MetricFamily ResetsSent = new("ctfw_expiry_resets_sent_total", MetricKind.Counter, "--reset-on-expiry: RST segments sent.");
    public static readonly MetricFamily ResetSendErrors = new("ctfw_expiry_reset_send_errors_total", MetricKind.Counter, "--reset-on-expiry: RST segments that could not be sent.");
    public static readonly MetricFamily ResetRateLimited = new("ctfw_expiry_resets_rate_limited_total", MetricKind.Counter, "--reset-on-expiry: flows not reset because of the rate limit.");
    public static readonly MetricFamily ResetFeedOverflow = new("ctfw_expiry_feed_overflow_total", MetricKind.Counter, "--reset-on-expiry: expired entries lost to a full feed.");
    public static readonly MetricFamily OffloadFlows = new("ctfw_offload_flows", MetricKind.Gauge, "--offload: flows whose data packets the kernel forwards past the queue now.");
    public static readonly MetricFamily OffloadChanges = new("ctfw_offload_changes_total", MetricKind.Counter, "--offload: flows put into the kernel's sets (add), taken out (remove; expired: idle on both sides).", "change");
    public static readonly MetricFamily OffloadPackets = new("ctfw_offload_packets_total", MetricKind.Counter, "--offload: packets the kernel forwarded past the queue (element counters, read once a second).");
    public static readonly MetricFamily OffloadBytes = new("ctfw_offload_bytes_total", MetricKind.Counter, "--offload: bytes (IP total length) the kernel forwarded past the queue.");
    public static readonly MetricFamily OffloadErrors = new("ctfw_offload_errors_total", MetricKind.Counter, "--offload: nf_tables transactions or dumps that failed.");
    public static readonly MetricFamily OffloadDropped = new("ctfw_offload_requests_dropped_total", MetricKind.Counter, "--offload: requests lost to a full worker ring (nominated again by a later packet).");
    public static readonly MetricFamily OffloadRelearned = new("ctfw_offload_relearned_total", MetricKind.Counter, "--offload: segments ahead of ctfw's window that re-learned it (data the kernel forwarded unseen).");
    public static readonly MetricFamily SyncPeerUp = new("ctfw_sync_peer_up", MetricKind.Gauge, "--sync: 1 while the peer has answered this run's HELLO (it tracks our sequence numbers).");
    public static readonly MetricFamily SyncExternal = new("ctfw_sync_external_entries", MetricKind.Gauge, "--sync: connections the peer sent, held in the external cache for a commit.");
    public static readonly MetricFamily SyncMessages = new("ctfw_sync_messages_total", MetricKind.Counter, "--sync: FTFW messages sent to and received from the peer (data and control).", "direction");
    public static readonly MetricFamily SyncBytes = new("ctfw_sync_bytes_total", MetricKind.Counter, "--sync: UDP payload bytes sent to and received from the peer.", "direction");
    public static readonly MetricFamily SyncResent = new("ctfw_sync_resent_total", MetricKind.Counter, "--sync: messages sent again because the peer NACKed them.");
    public static readonly MetricFamily SyncDropped = new("ctfw_sync_dropped_total", MetricKind.Counter,
        "--sync: what was not synced or not taken: queue_overflow (events the sync queue had no room for; repaired by a bulk send), "
        + "events_lost (the engine's event rings overflowed; repaired likewise), malformed and unsupported (peer messages dropped), "
        + "stranger (datagrams from another address than the peer's), external_full (peer entries beyond nf_conntrack_max), lost (gaps in the peer's sequence).", "reason");
    public static readonly MetricFamily SyncBulkSends = new("ctfw_sync_bulk_sends_total", MetricKind.Counter, "--sync: bulk sends of the whole table (peer's RESYNC, `ctfw sync bulk`, repairs).");
    public static readonly MetricFamily SyncCommitted = new("ctfw_sync_committed_total", MetricKind.Counter, "--sync: external entries made live by `ctfw sync commit`.");
    public static readonly MetricFamily Entries = new("ctfw_conntrack_entries", MetricKind.Gauge, "Entries in the connection table.");
    public static readonly MetricFamily Max = new("ctfw_conntrack_max", MetricKind.Gauge, "Maximum entries (nf_conntrack_max).");
    public static readonly MetricFamily EarlyDrops = new("ctfw_conntrack_early_drops_total", MetricKind.Counter, "Entries evicted to make room for a new one (early_drop).");
    public static readonly MetricFamily AllocFailures = new("ctfw_conntrack_alloc_failures_total", MetricKind.Counter, "New entries that found no room.");
    public static readonly MetricFamily FullDrops = new("ctfw_conntrack_full_drops_total", MetricKind.Counter, "Packets dropped because the table was full (the kernel's 'table full, dropping packet').");
    public static readonly MetricFamily SlotShortages = new("ctfw_conntrack_slot_shortages_total", MetricKind.Counter, "Inserts that found no free slot below the max.");
    public static readonly MetricFamily InsertFailed = new("ctfw_conntrack_insert_failed_total", MetricKind.Counter, "Inserts that failed (the kernel's insert_failed).");
    public static readonly MetricFamily ReclaimsOnDemand = new("ctfw_conntrack_reclaims_on_demand_total", MetricKind.Counter, "Reclamation passes a worker ran for want of room.");
    public static readonly MetricFamily Adopted = new("ctfw_conntrack_adopted_from_kernel", MetricKind.Gauge, "Entries adopted from kernel conntrack at start (--import-kernel).");
    public static readonly MetricFamily GcCollections = new("ctfw_gc_collections_total", MetricKind.Counter, ".NET garbage collections by generation.", "generation");
    public static readonly MetricFamily GcAllocated = new("ctfw_gc_allocated_bytes_total", MetricKind.Counter, "Managed bytes allocated by the process.");
    public static readonly MetricFamily GcPause = new("ctfw_gc_pause_seconds_total", MetricKind.Counter, "Time the process spent paused for garbage collection.");
    public static readonly MetricFamily GcHeap = new("ctfw_gc_heap_bytes", MetricKind.Gauge, "Managed heap size.");
    public static readonly MetricFamily Cpu = new("ctfw_process_cpu_seconds_total", MetricKind.Counter, "CPU time of the process.", "mode");
    public static readonly MetricFamily Rss = new("ctfw_process_resident_memory_bytes", MetricKind.Gauge, "Resident memory of the process.");
    public static readonly MetricFamily RssAnon = new("ctfw_process_resident_anonymous_memory_bytes", MetricKind.Gauge, "Anonymous resident memory of the process.");
    public static readonly MetricFamily LogLines = new("ctfw_log_lines_total", MetricKind.Counter, "LOG lines written, or suppressed by the rate limit.", "outcome");
    public static readonly MetricFamily LogLost = new("ctfw_log_lines_lost_total", MetricKind.Counter, "Lines lost to a full output queue (stderr not keeping up).");
    public static readonly MetricFamily LogPending = new("ctfw_log_pending_lines", MetricKind.Gauge, "Log lines waiting to be written.");
    public static readonly MetricFamily LogWriteErrors = new("ctfw_log_write_errors_total", MetricKind.Counter, "Failed writes to stderr.");
    public static readonly MetricFamily IptablesChecks = new("ctfw_iptables_checks_total", MetricKind.Counter, "Self-checks of the installed iptables rules.");
    public static readonly MetricFamily IptablesCheckFailures = new("ctfw_iptables_check_failures_total", MetricKind.Counter, "Self-checks that could not run.");
    public static readonly MetricFamily IptablesLosses = new("ctfw_iptables_losses_total", MetricKind.Counter, "Checks that found the installed rules gone or moved.");
    public static readonly MetricFamily IptablesReinstalls = new("ctfw_iptables_reinstall_commands_total", MetricKind.Counter, "Commands run to put lost rules back.");
    public static readonly MetricFamily IptablesReinstallFailures = new("ctfw_iptables_reinstall_failures_total", MetricKind.Counter, "Reinstalls that failed.");
    public static readonly MetricFamily SettingsReloads = new("ctfw_settings_reloads_total", MetricKind.Counter, "Sysctl re-reads that changed a value.");
    public static readonly MetricFamily RulesReloads = new("ctfw_rules_reloads_total", MetricKind.Counter, "Rules reloads, by result.", "result");

    public static readonly MetricFamily EventSubscribers = new("ctfw_event_subscribers", MetricKind.Gauge, "`ctfw conntrack -E` subscribers connected.");
    public static readonly MetricFamily EventsDropped = new("ctfw_events_dropped_total", MetricKind.Counter, "Conntrack events dropped because a producer's ring was full.");
    public static readonly MetricFamily EventsLost = new("ctfw_events_lost_total", MetricKind.Counter, "Conntrack events a slow subscriber lost (its backlog was full).");
    public static readonly MetricFamily ControlConnections = new("ctfw_control_connections_total", MetricKind.Counter, "Connections accepted on the control socket.");
    public static readonly MetricFamily ControlActive = new("ctfw_control_connections_active", MetricKind.Gauge, "Control connections being served.");
    public static readonly MetricFamily ControlRefusals = new("ctfw_control_refusals_total", MetricKind.Counter, "Control connections or requests turned away: busy (no free slot), refused (not allowed to connect), denied (a change without the admin role).", "reason");

    public static readonly IReadOnlyList<MetricFamily> All =
    [
        Uptime, PacketsSeen, NoPayload, Packets, Verdicts, RejectsSent, RejectSendErrors, Invalid,
        AbCompared, AbAgreed, AbDirection, AbUnmarked, AbMatrix, AbLog,
        QueuePackets, QueueVerdicts, QueueReceiveSyscalls, QueueReceiveBatches, QueueFlushes, QueueSendSyscalls,
        QueueAllocated, QueueCpu, QueueDropped, QueueEnobufs, QueueVerdictErrors, QueueLostVerdicts,
        Rescued, RescueOutOfWindow, Tombstones, TombstoneEvents,
        ResetFlows, ResetsSent, ResetSendErrors, ResetRateLimited, ResetFeedOverflow,
        Entries, Max, EarlyDrops, AllocFailures, FullDrops, SlotShortages, InsertFailed, ReclaimsOnDemand, Adopted,
        GcCollections, GcAllocated, GcPause, GcHeap, Cpu, Rss, RssAnon,
        LogLines, LogLost, LogPending, LogWriteErrors, IptablesChecks, IptablesCheckFailures, IptablesLosses, IptablesReinstalls, IptablesReinstallFailures,
        SettingsReloads, RulesReloads,
        EventSubscribers, EventsDropped, EventsLost, ControlConnections, ControlActive, ControlRefusals,
        OffloadFlows, OffloadChanges, OffloadPackets, OffloadBytes, OffloadErrors, OffloadDropped, OffloadRelearned,
        SyncPeerUp, SyncExternal, SyncMessages, SyncBytes, SyncResent, SyncDropped, SyncBulkSends, SyncCommitted,
    ];

    /// <summary>Every family a stats name can map to (each must be in <see cref="All"/>, or a scrape finds no collector).</summary>
    internal static IEnumerable<MetricFamily> Mapped => s_exact.Values.Select(t => t.Family).Concat(s_queue.Values.Select(q => q.Family));

    private static readonly Dictionary<string, MetricTarget> s_exact = new(StringComparer.Ordinal)
    {
        ["uptime_ms"] = new(Uptime, [], Milliseconds),
        ["packets"] = new(PacketsSeen, [], 1),
        ["packets.no_payload"] = new(NoPayload, [], 1),
        ["verdict.accept"] = new(Verdicts, ["accept"], 1),
        ["verdict.drop"] = new(Verdicts, ["drop"], 1),
        ["verdict.reject"] = new(Verdicts, ["reject"], 1),
        ["verdict.confirm_drop"] = new(Verdicts, ["confirm_drop"], 1),
        ["reject.sent"] = new(RejectsSent, [], 1),
        ["reject.send_errors"] = new(RejectSendErrors, [], 1),
        ["ab.compared"] = new(AbCompared, [], 1),
        ["ab.agreed"] = new(AbAgreed, [], 1),
        ["ab.dir_mismatch"] = new(AbDirection, [], 1),
        ["ab.unmarked"] = new(AbUnmarked, [], 1),
        ["ab.log.written"] = new(AbLog, ["written"], 1),
        ["ab.log.suppressed"] = new(AbLog, ["suppressed"], 1),
        ["rescue.fin"] = new(Rescued, ["fin"], 1),
        ["rescue.rst"] = new(Rescued, ["rst"], 1),
        ["rescue.loose"] = new(Rescued, ["loose"], 1),
        ["rescue.out_of_window"] = new(RescueOutOfWindow, [], 1),
        ["rescue.tombstones.live"] = new(Tombstones, [], 1),
        ["rescue.tombstones.stored"] = new(TombstoneEvents, ["stored"], 1),
        ["rescue.tombstones.evicted"] = new(TombstoneEvents, ["evicted"], 1),
        ["rescue.tombstones.expired"] = new(TombstoneEvents, ["expired"], 1),
        ["reset.flows"] = new(ResetFlows, [], 1),
        ["reset.sent"] = new(ResetsSent, [], 1),
        ["reset.send_errors"] = new(ResetSendErrors, [], 1),
        ["reset.rate_limited"] = new(ResetRateLimited, [], 1),
        ["reset.feed_overflow"] = new(ResetFeedOverflow, [], 1),
        ["sync.peer_up"] = new(SyncPeerUp, [], 1),
        ["sync.external"] = new(SyncExternal, [], 1),
        ["sync.sent.messages"] = new(SyncMessages, ["sent"], 1),
        ["sync.received.messages"] = new(SyncMessages, ["received"], 1),
        ["sync.sent.bytes"] = new(SyncBytes, ["sent"], 1),
        ["sync.received.bytes"] = new(SyncBytes, ["received"], 1),
        ["sync.resent"] = new(SyncResent, [], 1),
        ["sync.queue.overflows"] = new(SyncDropped, ["queue_overflow"], 1),
        ["sync.events_lost"] = new(SyncDropped, ["events_lost"], 1),
        ["sync.received.malformed"] = new(SyncDropped, ["malformed"], 1),
        ["sync.received.unsupported"] = new(SyncDropped, ["unsupported"], 1),
        ["sync.from_strangers"] = new(SyncDropped, ["stranger"], 1),
        ["sync.external_full"] = new(SyncDropped, ["external_full"], 1),
        ["sync.received.lost"] = new(SyncDropped, ["lost"], 1),
        ["sync.bulk_sends"] = new(SyncBulkSends, [], 1),
        ["sync.committed"] = new(SyncCommitted, [], 1),
        ["offload.flows"] = new(OffloadFlows, [], 1),
        ["offload.adds"] = new(OffloadChanges, ["add"], 1),
        ["offload.removes"] = new(OffloadChanges, ["remove"], 1),
        ["offload.expired"] = new(OffloadChanges, ["expired"], 1),
        ["offload.packets"] = new(OffloadPackets, [], 1),
        ["offload.bytes"] = new(OffloadBytes, [], 1),
        ["offload.errors"] = new(OffloadErrors, [], 1),
        ["offload.ring_dropped"] = new(OffloadDropped, [], 1),
        ["offload.relearned"] = new(OffloadRelearned, [], 1),
        ["table.entries"] = new(Entries, [], 1),
        ["table.max"] = new(Max, [], 1),
        ["table.early_drops"] = new(EarlyDrops, [], 1),
        ["table.alloc_failures"] = new(AllocFailures, [], 1),
        ["table.full_drops"] = new(FullDrops, [], 1),
        ["table.slot_shortages"] = new(SlotShortages, [], 1),
        ["table.insert_failed"] = new(InsertFailed, [], 1),
        ["table.reclaims_on_demand"] = new(ReclaimsOnDemand, [], 1),
        ["table.adopted_from_kernel"] = new(Adopted, [], 1),
        ["gc.allocated_bytes"] = new(GcAllocated, [], 1),
        ["gc.pause_us"] = new(GcPause, [], Microseconds),
        ["gc.heap_bytes"] = new(GcHeap, [], 1),
        ["process.cpu_user_us"] = new(Cpu, ["user"], Microseconds),
        ["process.cpu_sys_us"] = new(Cpu, ["system"], Microseconds),
        ["process.rss_bytes"] = new(Rss, [], 1),
        ["process.rss_anon_bytes"] = new(RssAnon, [], 1),
        ["log.written"] = new(LogLines, ["written"], 1),
        ["log.suppressed"] = new(LogLines, ["suppressed"], 1),
        ["log.lost"] = new(LogLost, [], 1),
        ["log.pending"] = new(LogPending, [], 1),
        ["log.write_errors"] = new(LogWriteErrors, [], 1),
        ["iptables.checks"] = new(IptablesChecks, [], 1),
        ["iptables.check_failures"] = new(IptablesCheckFailures, [], 1),
        ["iptables.losses"] = new(IptablesLosses, [], 1),
        ["iptables.reinstalls"] = new(IptablesReinstalls, [], 1),
        ["iptables.reinstall_failures"] = new(IptablesReinstallFailures, [], 1),
        ["settings.reloads"] = new(SettingsReloads, [], 1),
        ["rules.reloads"] = new(RulesReloads, ["ok"], 1),
        ["rules.reload_failures"] = new(RulesReloads, ["failed"], 1),
        ["events.subscribers"] = new(EventSubscribers, [], 1),
        ["events.dropped"] = new(EventsDropped, [], 1),
        ["events.lost"] = new(EventsLost, [], 1),
        ["control.connections"] = new(ControlConnections, [], 1),
        ["control.active"] = new(ControlActive, [], 1),
        ["control.busy"] = new(ControlRefusals, ["busy"], 1),
        ["control.refused"] = new(ControlRefusals, ["refused"], 1),
        ["control.denied"] = new(ControlRefusals, ["denied"], 1),
    };

    private static readonly Dictionary<string, (MetricFamily Family, string? Second, double Scale)> s_queue = new(StringComparer.Ordinal)
    {
        ["packets"] = (QueuePackets, null, 1),
        ["verdicts_sent"] = (QueueVerdicts, null, 1),
        ["recv_calls"] = (QueueReceiveSyscalls, null, 1),
        ["recv_batches"] = (QueueReceiveBatches, null, 1),
        ["verdict_flushes"] = (QueueFlushes, null, 1),
        ["verdict_sendmsg"] = (QueueSendSyscalls, null, 1),
        ["allocated_bytes"] = (QueueAllocated, null, 1),
        ["cpu_user_us"] = (QueueCpu, "user", Microseconds),
        ["cpu_sys_us"] = (QueueCpu, "system", Microseconds),
        ["queue_dropped"] = (QueueDropped, "queue_full", 1),
        ["user_dropped"] = (QueueDropped, "socket_full", 1),
        ["enobufs"] = (QueueEnobufs, null, 1),
        ["verdict_errors"] = (QueueVerdictErrors, null, 1),
        ["lost_verdicts"] = (QueueLostVerdicts, null, 1),
    };

    /// <summary>Where the stats counter <paramref name="name"/> goes; false for names not exported.</summary>
    public static bool TryMap(string name, out MetricTarget target)
    {
        if (s_exact.TryGetValue(name, out target))
            return true;
        int dot = name.IndexOf('.', StringComparison.Ordinal);
        if (dot > 0)
        {
            string head = name[..dot];
            string rest = name[(dot + 1)..];
            switch (head)
            {
                case "state" when rest.Length > 0:
                    target = new(Packets, [StateLabel(rest)], 1);
                    return true;
                case "invalid" when rest.Length > 0:
                    target = new(Invalid, [rest], 1);
                    return true;
                case "gc" when rest.StartsWith("gen", StringComparison.Ordinal) && rest.Length > 3 && rest[3..].All(char.IsAsciiDigit):
                    target = new(GcCollections, [rest[3..]], 1);
                    return true;
                case "ab":
                    // ab.KERNEL.CTFW: the agreement matrix (ctstate names are upper case; the other ab.* are lower).
                    int second = rest.IndexOf('.', StringComparison.Ordinal);
                    if (second > 0 && IsStateName(rest[..second]) && IsStateName(rest[(second + 1)..]))
                    {
                        target = new(AbMatrix, [StateLabel(rest[..second]), StateLabel(rest[(second + 1)..])], 1);
                        return true;
                    }
                    break;
                case "queue":
                    int end = rest.IndexOf('.', StringComparison.Ordinal);
                    if (end > 0 && rest[..end].All(char.IsAsciiDigit) && s_queue.TryGetValue(rest[(end + 1)..], out var q))
                    {
                        string queue = rest[..end];
                        target = new(q.Family, q.Second is null ? [queue] : [queue, q.Second], q.Scale);
                        return true;
                    }
                    break;
            }
        }
        target = default;
        return false;
    }

    private static bool IsStateName(string s) => s.Length > 0 && s.All(c => char.IsAsciiLetterUpper(c) || c == '_');

    /// <summary>Label values are lower case, as Prometheus labels usually are: <c>state="established"</c>.</summary>
    private static string StateLabel(string name) => name.ToLowerInvariant();
}
