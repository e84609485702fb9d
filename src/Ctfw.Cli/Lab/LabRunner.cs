using System.Diagnostics;
using System.Globalization;
using Ctfw.Cli.Control;
using Ctfw.Lab.Network;
using Ctfw.Lab.Scenarios;
using Ctfw.Lab.Traffic;

namespace Ctfw.Cli.Lab;

/// <summary>What `ctfw lab` was asked to do; <paramref name="Offload"/> runs ctfw with <c>--offload established</c>.</summary>
internal sealed record LabOptions(string RulesPath, string? ScenarioFilter, bool Scenarios, TimeSpan Traffic, int TableChecks, TrafficOptions Load, bool Offload = false);

/// <summary>One row of the lab's table.</summary>
/// <param name="Bypassed">
/// With <c>--offload</c>: packets of the row the kernel forwarded without ctfw (offloaded flows), which
/// ctfw cannot compare; counted in <paramref name="Sent"/>. Always 0 without offload.
/// </param>
internal sealed record LabRow(string Name, long Sent, long Compared, long Agreed, string? Note = null, long Missed = 0, long Bypassed = 0)
{
    public long Disagreed => Compared - Agreed;

    /// <summary>
    /// Every packet sent either reached ctfw with the kernel's answer or was offloaded (forwarded by
    /// the kernel past ctfw by design), none passed the gateway without reaching ctfw otherwise
    /// (<see cref="Missed"/>: queue overflow, dropped after kernel conntrack saw it), and every packet
    /// ctfw compared agreed.
    /// </summary>
    public bool Passed => Note is null && Missed == 0 && Compared == Agreed && (Sent < 0 || Compared + Bypassed == Sent);
}

/// <summary>
/// Packet counters of ctfw's iptables rules in the gateway (<c>iptables-save -c</c>, IPv4 + IPv6 summed).
/// </summary>
/// <param name="Marked">Through the mangle FORWARD jump to ctfw's marking chain: every forwarded packet, kernel conntrack has classified it.</param>
/// <param name="Queued">Through ctfw's filter NFQUEUE rule: every packet sent to ctfw's queue (received, or lost at a full queue).</param>
internal readonly record struct KernelCounters(long Marked, long Queued)
{
    /// <summary>
    /// Forwarded without being sent to the queue: with <c>--offload</c>, the offloaded flows' packets,
    /// which ctfw's chain accepts before its NFQUEUE rule. Meaningful only as a difference of two readings.
    /// </summary>
    public long Bypassed => Marked - Queued;

    public static KernelCounters operator -(KernelCounters a, KernelCounters b) => new(a.Marked - b.Marked, a.Queued - b.Queued);

    /// <summary>
    /// Sums the counters of the lines of one or more <c>iptables-save -c</c> outputs: in *mangle,
    /// <c>[p:b] -A FORWARD … -j CTFW</c>; in *filter, <c>[p:b] -A CTFW … -j NFQUEUE …</c>.
    /// </summary>
    public static KernelCounters Parse(string save)
    {
        long marked = 0, queued = 0;
        string table = "";
        foreach (string line in save.Split('\n'))
        {
            if (line.StartsWith('*'))
            {
                table = line[1..].Trim();
                continue;
            }
            // [packets:bytes] -A FORWARD -m comment --comment "ctfw:…" -j CTFW
            if (!line.StartsWith('[') || Packets(line) is not long n)
                continue;
            if (table == "mangle" && line.Contains("-A FORWARD ", StringComparison.Ordinal) && line.EndsWith("-j CTFW", StringComparison.Ordinal))
                marked += n;
            else if (table == "filter" && line.Contains("] -A CTFW ", StringComparison.Ordinal) && line.Contains(" -j NFQUEUE", StringComparison.Ordinal))
                queued += n;
        }
        return new KernelCounters(marked, queued);
    }

    private static long? Packets(string line)
    {
        int colon = line.IndexOf(':', StringComparison.Ordinal);
        return colon > 1 && long.TryParse(line.AsSpan(1, colon - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;
    }
}

/// <summary>
/// `ctfw lab`: client / gateway / server namespaces, ctfw in shadow mode in the gateway, the scenario
/// corpus played with crafted packets, real traffic from real programs, then the table. Everything
/// it creates lives in its three namespaces and one child process; <see cref="Run"/> removes them on
/// every path (the namespaces take their iptables rules and sysctls with them).
/// </summary>
internal sealed class LabRunner
{
    private static readonly TimeSpan s_packetTimeout = TimeSpan.FromSeconds(3);

    /// <summary>Exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it), distinct from a failed comparison.</summary>
    public const int InterruptedExit = 130;

    private readonly LabOptions _options;
    private readonly TextWriter _out;
    private readonly CancellationToken _cancel;
    private readonly List<LabRow> _rows = [];
    private readonly List<FlowTableResult> _tables = [];
    private int _tablesSkipped;
    private TrafficReport? _traffic;

    /// <summary>ctfw's own <c>offload.packets</c> over the run (from its start to just before it stops), for the summary; null without offload.</summary>
    private long? _offloadStat;

    public LabRunner(LabOptions options, TextWriter output, CancellationToken cancel)
    {
        _options = options;
        _out = output;
        _cancel = cancel;
    }

    public int Run()
    {
        var watch = Stopwatch.StartNew();
        string logPath = Path.Combine(Path.GetTempPath(), $"ctfw-lab-{Environment.ProcessId}.log");
        _out.WriteLine("ctfw lab: building client / gateway / server namespaces (IPv4 + IPv6, veth)");
        using var lab = new KernelLab();
        string offloadArgs = _options.Offload ? " --offload established" : "";
        _out.WriteLine($"ctfw lab: starting `ctfw run --ab kernel --install FORWARD --rules {_options.RulesPath}{offloadArgs}` in {lab.Gateway} (log: {logPath})");
        using LabDaemon daemon = LabDaemon.Start(lab.Gateway, _options.RulesPath, logPath, _options.Offload, _cancel);
        long offloadStart = _options.Offload ? daemon.Stats().GetValueOrDefault("offload.packets") : 0;

        string? interrupted = null;
        try
        {
            if (_options.Scenarios)
                PlayScenarios(lab, daemon);
            if (_options.Traffic > TimeSpan.Zero && !_cancel.IsCancellationRequested)
                RunTraffic(lab, daemon);
        }
        catch (OperationCanceledException)
        {
            interrupted = "interrupted";
        }
        if (_cancel.IsCancellationRequested)
            interrupted = "interrupted";

        if (_options.Offload && !daemon.HasExited)
        {
            try
            {
                _offloadStat = daemon.Stats().GetValueOrDefault("offload.packets") - offloadStart;
            }
            catch (InvalidOperationException)
            {
                // Only the summary's cross-check is lost; the kernel's counters are what the rows use.
            }
        }
        int daemonExit = daemon.Stop();
        PrintReport(daemon, daemonExit, watch.Elapsed, interrupted);
        bool passed = interrupted is null && daemonExit == 0 && _rows.Count > 0 && _rows.All(r => r.Passed) && _tables.All(t => t.Agree)
            && (_options.Traffic == TimeSpan.Zero || _traffic is { Succeeded: true });
        return interrupted is not null ? InterruptedExit : passed ? 0 : 1;
    }

    private void PlayScenarios(KernelLab lab, LabDaemon daemon)
    {
        IEnumerable<KernelScenario> scenarios = KernelScenarios.All;
        if (_options.ScenarioFilter is { } filter)
            scenarios = scenarios.Where(s => s.Name.Contains(filter, StringComparison.Ordinal));
        List<KernelScenario> list = [.. scenarios];
        _out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ctfw lab: playing {list.Count} scenarios ({list.Sum(s => s.Packets.Count)} crafted packets, {list.Sum(s => s.TotalSleep.TotalSeconds):0} s of scripted idle time)"));
        foreach (KernelScenario scenario in list)
        {
            _cancel.ThrowIfCancellationRequested();
            _rows.Add(PlayScenario(lab, daemon, scenario));
        }
    }

    private LabRow PlayScenario(KernelLab lab, LabDaemon daemon, KernelScenario scenario)
    {
        // Same start for both trackers: this scenario's sysctls in the gateway (ctfw re-reads them
        // there), and empty tables.
        lab.SetGatewaySysctls(scenario.GatewaySysctls);
        daemon.Request(ControlProtocol.ReloadSysctls);
        FlushBoth(lab, daemon);

        Dictionary<string, long> before = daemon.Stats();
        long packets = before.GetValueOrDefault("verdicts_sent");
        KernelCounters kernelBefore = _options.Offload ? ReadCounters(lab) : default;
        long bypassedSoFar = 0;
        string? note = null;
        int sent = 0;
        foreach (ScenarioStep step in scenario.Steps)
        {
            if (step is SleepStep sleep)
            {
                if (_cancel.WaitHandle.WaitOne(sleep.Duration))
                    throw new OperationCanceledException();
                continue;
            }
            var send = (SendStep)step;
            lab.Send(send.Packet.From, send.Packet.ToBytes());
            sent++;
            // One packet at a time, as the recorder does: the next one leaves only after ctfw's
            // verdict has reached the kernel, so both trackers see the same order and the kernel
            // has confirmed a NEW entry before the answer arrives (as on a real network).
            bool through = _options.Offload
                ? WaitForPacketOrBypass(lab, daemon, packets, kernelBefore, sent, ref bypassedSoFar)
                : daemon.WaitForVerdicts(packets + sent, s_packetTimeout, _cancel);
            if (!through)
            {
                _cancel.ThrowIfCancellationRequested();
                note = $"packet {sent} ({send.Packet.Describe()}) did not reach ctfw within {s_packetTimeout.TotalSeconds} s";
                break;
            }
        }
        Dictionary<string, long> after = daemon.Stats();
        long bypassed = _options.Offload ? (ReadCounters(lab) - kernelBefore).Bypassed : 0;
        return new LabRow(scenario.Name, sent, Delta(before, after, "ab.compared"), Delta(before, after, "ab.agreed"), note, Bypassed: bypassed);
    }

    /// <summary>
    /// With offload: waits until the <paramref name="sent"/> packets of this scenario are all accounted
    /// for, each either judged by ctfw (its verdict sent) or forwarded by the kernel past ctfw's queue
    /// (offloaded; kernel counters). A bypass counts only if a second reading 2 ms later still shows
    /// it, so a packet caught between the mangle jump and the NFQUEUE rule is not taken for one.
    /// <paramref name="bypassedSoFar"/> carries the scenario's confirmed bypasses from packet to
    /// packet, so a packet ctfw judges after an offloaded one is seen from ctfw's counters alone.
    /// </summary>
    private bool WaitForPacketOrBypass(KernelLab lab, LabDaemon daemon, long verdictsBefore, KernelCounters kernelBefore, int sent, ref long bypassedSoFar)
    {
        long Verdicts() => daemon.Stats().GetValueOrDefault("verdicts_sent") - verdictsBefore;
        long Bypassed() => (ReadCounters(lab) - kernelBefore).Bypassed;

        var watch = Stopwatch.StartNew();
        TimeSpan nextKernelCheck = TimeSpan.FromMilliseconds(5);
        while (!_cancel.IsCancellationRequested && watch.Elapsed <= s_packetTimeout)
        {
            if (Verdicts() + bypassedSoFar >= sent)
                return true;
            if (watch.Elapsed >= nextKernelCheck)
            {
                // iptables-save is two process starts: read the kernel's counters only now and then.
                nextKernelCheck = watch.Elapsed + TimeSpan.FromMilliseconds(20);
                if (Verdicts() + Bypassed() >= sent && !_cancel.WaitHandle.WaitOne(2))
                {
                    long bypassed = Bypassed();
                    if (Verdicts() + bypassed >= sent)
                    {
                        bypassedSoFar = bypassed;
                        return true;
                    }
                }
            }
            Thread.Sleep(1);
        }
        return false;
    }

    private static void FlushBoth(KernelLab lab, LabDaemon daemon)
    {
        // conntrack -F exits 1 when the table of that family is empty already; both outcomes are fine.
        Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "conntrack", "-F", "-f", "ipv4"));
        Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "conntrack", "-F", "-f", "ipv6"));
        daemon.Request(ControlProtocol.Flush);
    }

    private void RunTraffic(KernelLab lab, LabDaemon daemon)
    {
        // Real programs talk for real: the endpoints' stacks answer again, timeouts are the kernel's defaults.
        TrafficMix.Unmute(lab.Client);
        TrafficMix.Unmute(lab.Server);
        lab.SetGatewaySysctls(ConntrackSysctls.All);
        daemon.Request(ControlProtocol.ReloadSysctls);
        FlushBoth(lab, daemon);

        _out.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ctfw lab: real traffic for {_options.Traffic.TotalSeconds:0} s: HTTP connection churn (nginx + wrk), bulk TCP and small-packet UDP (iperf3), ping; IPv4 and IPv6"));
        KernelCounters countersBefore = ReadCounters(lab);
        long kernelBefore = ToCtfw(countersBefore);
        Dictionary<string, long> before = daemon.Stats();
        // Packets the kernel classified on the way to the queue minus packets ctfw has finished with
        // (verdict sent): how far behind ctfw is. Zero here (nothing in flight); the table comparison
        // waits for it to return.
        long lagBaseline = kernelBefore - before.GetValueOrDefault("verdicts_sent");
        var traffic = Task.Run(() => TrafficMix.Run(lab.Client, lab.Server, _options.Traffic, _options.Load, TextWriter.Null, _cancel));

        // While it runs: compare the two tables, interleaved (kernel, ctfw, kernel, ctfw).
        TimeSpan interval = _options.Traffic / (_options.TableChecks + 1);
        for (int i = 0; i < _options.TableChecks && !traffic.IsCompleted; i++)
        {
            if (_cancel.WaitHandle.WaitOne(interval))
                break;
            if (traffic.IsCompleted)
                break;
            if (CompareTables(lab, daemon, lagBaseline) is { } result)
                _tables.Add(result);
            else if (!_cancel.IsCancellationRequested)
                _tablesSkipped++;
        }
        try
        {
            _traffic = traffic.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is InvalidOperationException or IOException)
        {
            _out.WriteLine($"ctfw lab: traffic failed: {e.Message}");
        }
        _cancel.ThrowIfCancellationRequested();
        // Let the last packets through the queue before reading the counters.
        long last = -1;
        for (int i = 0; i < 50; i++)
        {
            long now = daemon.Stats().GetValueOrDefault("packets");
            if (now == last)
                break;
            last = now;
            Thread.Sleep(100);
        }
        Dictionary<string, long> after = daemon.Stats();
        long compared = Delta(before, after, "ab.compared");
        long packets = Delta(before, after, "packets");
        // The mangle jump counts every packet the kernel classified on its way to the queue; what
        // ctfw did not receive was dropped at the full queue or socket buffer (kernel conntrack had
        // already seen it, so the two trackers saw different traffic). With offload, the NFQUEUE
        // rule's count takes the mangle jump's place: offloaded packets never go to the queue, by design.
        KernelCounters countersAfter = ReadCounters(lab);
        long missed = Math.Max(0, ToCtfw(countersAfter) - kernelBefore - packets);
        long bypassed = _options.Offload ? Math.Max(0, (countersAfter - countersBefore).Bypassed) : 0;
        _rows.Add(new LabRow("real traffic", packets + bypassed, compared, Delta(before, after, "ab.agreed"),
            _traffic is { Succeeded: true } ? null : "traffic generators failed", missed, bypassed));
    }

    /// <summary>
    /// One table comparison (<see cref="FlowTableComparison"/>): the four interleaved listings, and
    /// four more if a flow disagreed. Null when ctfw did not catch up within 10 s for the first four
    /// (packets went past it, which the traffic row reports).
    /// </summary>
    private FlowTableResult? CompareTables(KernelLab lab, LabDaemon daemon, long lagBaseline)
    {
        InterleavedListings? first = ListBoth(lab, daemon, lagBaseline);
        return first is null ? null : FlowTableComparison.Compare(first, () => ListBoth(lab, daemon, lagBaseline));
    }

    /// <summary>
    /// Kernel listing, then ctfw's once ctfw has caught up with every packet the kernel had
    /// classified when its listing ended (under load ctfw's queue runs behind the kernel by up to its
    /// length), twice. Null when ctfw did not catch up within 10 s.
    /// </summary>
    private InterleavedListings? ListBoth(KernelLab lab, LabDaemon daemon, long lagBaseline)
    {
        var watch = Stopwatch.StartNew();
        IReadOnlyList<ConntrackEntry> k1 = KernelTable(lab);
        if (!CatchUp(lab, daemon, lagBaseline))
            return null;
        IReadOnlyList<ConntrackEntry> c1 = daemon.List();
        IReadOnlyList<ConntrackEntry> k2 = KernelTable(lab);
        if (!CatchUp(lab, daemon, lagBaseline))
            return null;
        IReadOnlyList<ConntrackEntry> c2 = daemon.List();
        return new InterleavedListings(k1, c1, k2, c2, watch.Elapsed.TotalSeconds);
    }

    private bool CatchUp(KernelLab lab, LabDaemon daemon, long lagBaseline)
    {
        long target = ToCtfw(ReadCounters(lab)) - lagBaseline;
        var watch = Stopwatch.StartNew();
        // verdicts_sent, not packets: the packets counter moves when a packet is taken, before its
        // table update, so a listing could still miss the update of the last packet counted.
        while (daemon.Stats().GetValueOrDefault("verdicts_sent") < target)
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(10) || _cancel.WaitHandle.WaitOne(5))
                return false;
        }
        // Packets between the kernel's conntrack (PREROUTING) and the counted mangle rule (FORWARD)
        // when the counter was read: give them a moment to be counted and judged too.
        return !_cancel.WaitHandle.WaitOne(50);
    }

    private static IReadOnlyList<ConntrackEntry> KernelTable(KernelLab lab)
    {
        string v4 = Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "conntrack", "-L", "-f", "ipv4")).StdOut;
        string v6 = Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "conntrack", "-L", "-f", "ipv6")).StdOut;
        return [.. ConntrackEntry.ParseAll(v4), .. ConntrackEntry.ParseAll(v6)];
    }

    /// <summary>
    /// ctfw's rule counters in the gateway, IPv4 + IPv6. Without offload only the mangle table is read
    /// (the jump count is all the lab needs); with it, mangle and filter in one listing per family.
    /// </summary>
    private KernelCounters ReadCounters(KernelLab lab)
    {
        var sum = new KernelCounters(0, 0);
        foreach (string tool in (string[])["iptables-save", "ip6tables-save"])
        {
            KernelCounters c = KernelCounters.Parse(_options.Offload ? lab.InGateway(tool, "-c") : lab.InGateway(tool, "-c", "-t", "mangle"));
            sum = new KernelCounters(sum.Marked + c.Marked, sum.Queued + c.Queued);
        }
        return sum;
    }

    /// <summary>
    /// Packets the kernel sent on to ctfw: without offload every packet through the mangle jump;
    /// with it, those through the NFQUEUE rule (offloaded packets are accepted before it).
    /// </summary>
    private long ToCtfw(KernelCounters c) => _options.Offload ? c.Queued : c.Marked;

    private int TableMismatches => _tables.Sum(x => x.Mismatches.Count);

    /// <summary>How many disagreeing flows were listed again, and how many of them were not judged because they changed.</summary>
    private string TableSummary() => string.Create(CultureInfo.InvariantCulture,
        $"{_tables.Sum(x => x.Disagreed)} re-checked, {_tables.Sum(x => x.NotJudged.Count)} of them not judged (changed between listings)");

    private static long Delta(Dictionary<string, long> before, Dictionary<string, long> after, string name) =>
        after.GetValueOrDefault(name) - before.GetValueOrDefault(name);

    private void PrintReport(LabDaemon daemon, int daemonExit, TimeSpan elapsed, string? interrupted)
    {
        TextWriter w = _out;
        int width = Math.Max(24, _rows.Count == 0 ? 0 : _rows.Max(r => r.Name.Length));
        w.WriteLine();
        // With offload, a fourth column: packets the kernel forwarded past ctfw (not compared, by design).
        bool offload = _options.Offload;
        w.WriteLine($"{"scenario".PadRight(width)}  {"packets",9}  {"agreed",9}  {"disagreed",9}{(offload ? $"  {"offloaded",9}" : "")}");
        w.WriteLine(new string('-', width + 2 + 9 * 3 + 4 + (offload ? 11 : 0)));
        foreach (LabRow r in _rows)
        {
            string mark = r.Passed ? "" : "   <-- " + (r.Note
                ?? (r.Missed > 0 ? $"{r.Missed} packets never reached ctfw (queue full): the trackers saw different traffic"
                : r.Compared + r.Bypassed != r.Sent && r.Sent >= 0 ? $"{r.Compared} of {r.Sent - r.Bypassed} compared" : "disagreement"));
            string bypassed = offload ? string.Create(CultureInfo.InvariantCulture, $"  {r.Bypassed,9}") : "";
            w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Name.PadRight(width)}  {r.Compared,9}  {r.Agreed,9}  {r.Disagreed,9}{bypassed}{mark}"));
        }
        w.WriteLine();
        if (_traffic is { } t)
            w.WriteLine($"real traffic: {t.Summary}");
        if (_tables.Count > 0)
        {
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"conntrack -L vs ctfw conntrack -L during the traffic: {_tables.Count} comparisons, {_tables.Sum(x => x.KernelStableChecked)} kernel flows and {_tables.Sum(x => x.CtfwStableChecked)} ctfw flows checked, {TableMismatches} mismatches, {TableSummary()}"));
            foreach (string m in _tables.SelectMany(x => x.Mismatches).Take(10))
                w.WriteLine("  mismatch: " + m);
            // Why each forgiven flow was forgiven, so an operator can judge the re-check too.
            foreach (RecheckedFlow f in _tables.SelectMany(x => x.NotJudged).Take(10))
                w.WriteLine($"  re-checked, not judged ({f.Why}):\n    {f.FirstRound}");
        }
        if (_tablesSkipped > 0)
            w.WriteLine($"table comparisons skipped: {_tablesSkipped} (ctfw did not catch up with the kernel within 10 s)");
        if (daemon.Disagreements.Count > 0)
        {
            w.WriteLine($"first disagreements (all in {daemon.LogPath}):");
            foreach (string line in daemon.Disagreements.Take(10))
                w.WriteLine("  " + line);
        }
        if (daemonExit != 0)
        {
            w.WriteLine($"ctfw run exited with {daemonExit}; its last lines:");
            foreach (string line in daemon.Tail.TakeLast(10))
                w.WriteLine("  " + line);
        }

        if (offload && _rows.Sum(r => r.Bypassed) == 0 && _offloadStat > 0)
        {
            // ctfw's nft elements counted packets, yet every one of them still went to its queue.
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"offload: ctfw's offload.packets counted {_offloadStat} packets of offloaded flows, but none passed the gateway without going to ctfw's queue (iptables counters): the marked packets are not accepted before the NFQUEUE rule"));
        }

        long scenarioPackets = _rows.Where(r => r.Name != "real traffic").Sum(r => r.Compared);
        long trafficPackets = _rows.Where(r => r.Name == "real traffic").Sum(r => r.Compared);
        long disagreed = _rows.Sum(r => r.Disagreed);
        int failedRows = _rows.Count(r => !r.Passed);
        string tables = _tables.Count == 0 ? "" : string.Create(CultureInfo.InvariantCulture,
            $" (tables: {_tables.Count} comparisons, {_tables.Sum(x => x.KernelStableChecked + x.CtfwStableChecked)} flows checked, {TableMismatches} mismatches, {TableSummary()})");
        string verdict = interrupted is not null ? $"INTERRUPTED ({interrupted})"
            : failedRows == 0 && _tables.All(x => x.Agree) && daemonExit == 0 && _rows.Count > 0 ? (offload ? "PASS: every packet ctfw saw agreed with kernel conntrack" : "PASS: every packet agreed with kernel conntrack") + tables
            : $"FAIL: {disagreed} packets disagreed, {failedRows} rows failed, {TableMismatches} table mismatches" + tables;
        w.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ctfw lab: {_rows.Count(r => r.Name != "real traffic")} scenarios, {scenarioPackets} crafted + {trafficPackets} real packets compared{OffloadSummary()} in {elapsed.TotalSeconds:0} s: {verdict}"));
    }

    /// <summary>
    /// With offload: how many packets passed the gateway without ctfw (kernel rule counters), with
    /// ctfw's own count beside them (offload.packets, the nftables element counters), so the two can
    /// be held against each other. Empty without offload.
    /// </summary>
    private string OffloadSummary()
    {
        if (!_options.Offload)
            return "";
        long crafted = _rows.Where(r => r.Name != "real traffic").Sum(r => r.Bypassed);
        long real = _rows.Where(r => r.Name == "real traffic").Sum(r => r.Bypassed);
        string stat = _offloadStat is long n ? n.ToString(CultureInfo.InvariantCulture) : "?";
        return string.Create(CultureInfo.InvariantCulture,
            $", {crafted} crafted + {real} real packets offloaded (forwarded by the kernel without ctfw; ctfw's offload.packets {stat})");
    }
}
