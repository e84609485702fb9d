using System.Diagnostics;
using System.Globalization;
using Ctfw.Lab.Network;
using Ctfw.Lab.Traffic;

namespace Ctfw.Lab.Bench;

/// <summary>
/// What the runner needs from the ctfw binary that hosts it: how to start <c>ctfw run</c> (the same
/// binary), where its control socket goes, and how to read the socket's counters.
/// </summary>
/// <param name="RulesPath">rules/bench.rules: loaded by iptables-restore (kernel) and by ctfw (ctfw1, ctfw2).</param>
/// <param name="CLoopSource">bench/nfq-c-loop/nfq_accept.c, compiled with gcc into the run's temp directory.</param>
/// <param name="CtfwCommand">The argv prefix that runs this ctfw (the binary, or dotnet and ctfw.dll).</param>
/// <param name="ControlPath">The control socket given to <c>ctfw run --control</c>.</param>
/// <param name="ReadStats">The daemon's counters by name (<c>ctfw stats --raw</c>), or null when it does not answer.</param>
public sealed record BenchHost(
    string RulesPath,
    string CLoopSource,
    IReadOnlyList<string> CtfwCommand,
    string ControlPath,
    Func<string, IReadOnlyDictionary<string, long>?> ReadStats);

/// <summary>
/// Runs the line-rate benchmark: builds a <see cref="BenchLab"/>, starts the servers once (nginx on
/// :80, iperf3 on :5201 and :5202), then for each rep, each workload and each set-up (rotated per
/// rep) configures the gateway, starts its NFQUEUE consumer, runs the client for the measurement's
/// length and records the figures and the consumer's costs. Every process is a child in a
/// <see cref="ChildGroup"/>, so a signal ends them all; the namespaces (and with them every iptables
/// rule) and the temp directory are removed on every way out.
/// </summary>
public sealed class BenchRunner
{
    private const int HttpPort = 80;
    private const int IperfPort = 5201;
    private const int SecondIperfPort = 5202;

    /// <summary>Traffic through a freshly started consumer before its measured interval (ctfw's JIT tiers up here).</summary>
    private static readonly TimeSpan s_warmUp = TimeSpan.FromSeconds(3);
    private const string WorkerThreadPrefix = "ctfw-queue-";

    private static readonly TimeSpan s_clientGrace = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan s_ctfwStart = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_cloopStart = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(50);

    private readonly BenchOptions _options;
    private readonly BenchHost _host;
    private readonly TextWriter _progress;
    private readonly CancellationToken _cancel;
    private readonly List<string> _problems = [];

    private BenchLab _lab = null!;
    private ChildGroup _group = null!;
    private CancellationToken _stop;
    private string _scratch = "";
    private string _cloop = "";
    private HttpSite _site = null!;

    public BenchRunner(BenchOptions options, BenchHost host, TextWriter progress, CancellationToken cancel)
    {
        _options = options;
        _host = host;
        _progress = progress;
        _cancel = cancel;
    }

    /// <summary>Runs every measurement and the soak. Failures of single measurements are recorded in the result, not thrown.</summary>
    /// <exception cref="OperationCanceledException">Cancelled, or this process got SIGINT/SIGTERM; everything is cleaned up by then.</exception>
    /// <exception cref="InvalidOperationException">The lab, the C loop or the servers could not be set up.</exception>
    public BenchRun Run()
    {
        BenchMachine machine = BenchMachine.Current();
        DirectoryInfo scratch = Directory.CreateTempSubdirectory("ctfw-bench-");
        _scratch = scratch.FullName;
        try
        {
            using var group = new ChildGroup { AfterSignal = Cleanup };
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(_cancel, group.Interrupted);
            _group = group;
            _stop = stop.Token;
            PrepareFiles();
            Say("building client / gateway / server namespaces (ctfwb-*)");
            using var lab = new BenchLab();
            _lab = lab;
            StartServers();
            CheckPath();

            List<BenchMeasurement> measurements = [];
            int total = _options.Reps * _options.Workloads.Count * _options.Setups.Count;
            for (int rep = 1; rep <= _options.Reps; rep++)
            {
                foreach (BenchWorkload workload in _options.Workloads)
                {
                    foreach (BenchSetup setup in _options.SetupOrder(rep))
                    {
                        BenchMeasurement m = Measure(setup, workload, rep);
                        measurements.Add(m);
                        Say($"[{measurements.Count}/{total}] rep {rep} {BenchNames.Of(workload)} {BenchNames.Of(setup)}: {Describe(m)}");
                    }
                }
            }

            SoakResult? soak = null;
            if (_options.Soak > TimeSpan.Zero)
            {
                soak = Soak();
                Say(soak.Failure is null
                    ? $"soak: {soak.Packets} packets, gc gen0/1/2 {soak.Gen0?.ToString(CultureInfo.InvariantCulture) ?? "-"}/{soak.Gen1?.ToString(CultureInfo.InvariantCulture) ?? "-"}/{soak.Gen2?.ToString(CultureInfo.InvariantCulture) ?? "-"}, worker {(soak.WorkerBytesPerPacket is double b ? b.ToString("0.00", CultureInfo.InvariantCulture) : "-")} B/packet"
                    : $"soak FAILED: {soak.Failure}");
            }
            ScaleResult? scale = null;
            if (_options.ScaleFlows > 0)
            {
                scale = Scale();
                Say(scale.Failure is null
                    ? Invariant($"scale: {scale.TableEntries} entries in ctfw's table, RSS {ReportBytes(scale.RssAfterBytes)} (before the fill {ReportBytes(scale.RssBeforeBytes)}), filled at {scale.FillPacketsPerSecond / 1000:0} kpps")
                    : $"scale FAILED: {scale.Failure}");
            }
            _stop.ThrowIfCancellationRequested();
            group.StopServers();
            return new BenchRun(machine, _options, measurements, soak) { Problems = [.. _problems], Scale = scale };
        }
        finally
        {
            Cleanup();
        }
    }

    private void Cleanup()
    {
        try
        {
            Directory.Delete(_scratch, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort, and already gone after a signal.
        }
        try
        {
            File.Delete(_host.ControlPath); // ctfw removes it itself unless it was killed
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    private void Say(string line)
    {
        lock (_progress)
            _progress.WriteLine($"bench: {line}");
    }

    private string Scratch(string name) => Path.Combine(_scratch, name);

    /// <summary>The C loop binary, the nginx site and the iptables-restore files of the gateway set-ups.</summary>
    private void PrepareFiles()
    {
        if (_options.Setups.Contains(BenchSetup.CLoop))
        {
            _cloop = Scratch("nfq_accept");
            ToolResult cc = Tool.Run(checkExit: false, TimeSpan.FromMinutes(2),
                "gcc", "-O2", "-Wall", "-o", _cloop, _host.CLoopSource, "-lnetfilter_queue", "-lmnl");
            if (cc.ExitCode != 0)
                throw new InvalidOperationException($"gcc could not build {_host.CLoopSource} (need libnetfilter-queue-dev, libmnl-dev): {cc.StdErr.Trim()}");
        }
        _site = new HttpSite(Scratch("www"));
        _site.Write([Invariant($"{LabAddresses.ServerV4}:{HttpPort}")], workers: 1, largeEvery: 0);

        // iptables-restore flushes every table it names, so "reset" names both tables we touch.
        File.WriteAllText(Scratch("reset.rules"), """
            *raw
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT

            """);
        File.WriteAllText(Scratch("notrack.rules"), """
            *raw
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A PREROUTING -j NOTRACK
            -A OUTPUT -j NOTRACK
            COMMIT

            """);
        File.WriteAllText(Scratch("cloop.rules"), Invariant($"""
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A FORWARD -j NFQUEUE --queue-num {_options.Queue} --queue-bypass
            COMMIT

            """));
    }

    /// <summary>The iptables-restore calls of each set-up, in order (after the reset).</summary>
    public static IReadOnlyList<string[]> GatewayCommands(BenchSetup setup, string rulesPath, string notrackPath, string cloopPath) => setup switch
    {
        BenchSetup.Plain => [],
        BenchSetup.Kernel => [["iptables-restore", rulesPath]],
        BenchSetup.CLoop => [["iptables-restore", notrackPath], ["iptables-restore", "--noflush", cloopPath]],
        BenchSetup.Ctfw1 or BenchSetup.Ctfw2 or BenchSetup.Ctfw1Scraped or BenchSetup.Offload => [["iptables-restore", notrackPath]],
        _ => throw new ArgumentOutOfRangeException(nameof(setup), setup, null),
    };

    /// <summary>The NFQUEUE consumer's command line (after the nsenter into the gateway), or null for none.</summary>
    public static IReadOnlyList<string>? DaemonArgs(BenchSetup setup, int queue, string cloopBinary, IReadOnlyList<string> ctfw, string rulesPath, string controlPath,
        int? copyRange = null) => setup switch
    {
        BenchSetup.Plain or BenchSetup.Kernel => null,
        // The loop's defaults are ctfw's queue settings: copy range all, maxlen 4096, 8 MiB rcvbuf, GSO, fail-open.
        BenchSetup.CLoop => [cloopBinary, "-q", Invariant($"{queue}"), .. CopyArgs("-r", copyRange)],
        BenchSetup.Ctfw1 => [.. ctfw, "run", "--rules", rulesPath, "--queue", Invariant($"{queue}"), "--install", "FORWARD", "--control", controlPath, .. CopyArgs("--copy-range", copyRange)],
        BenchSetup.Ctfw1Scraped => [.. DaemonArgs(BenchSetup.Ctfw1, queue, cloopBinary, ctfw, rulesPath, controlPath, copyRange)!, "--metrics", MetricsScraper.Endpoint],
        BenchSetup.Ctfw2 => [.. ctfw, "run", "--rules", rulesPath, "--queues", Invariant($"{queue}-{queue + 1}"), "--install", "FORWARD", "--control", controlPath, .. CopyArgs("--copy-range", copyRange)],
        BenchSetup.Offload => [.. DaemonArgs(BenchSetup.Ctfw2, queue, cloopBinary, ctfw, rulesPath, controlPath, copyRange)!, "--offload", "established"],
        _ => throw new ArgumentOutOfRangeException(nameof(setup), setup, null),
    };

    private static string[] CopyArgs(string flag, int? copyRange) => copyRange is int n ? [flag, Invariant($"{n}")] : [];

    private void StartServers()
    {
        _group.StartServer("nginx", _lab.Server, _site.NginxArgs());
        _group.StartServer("iperf3 -s", _lab.Server, ["iperf3", "-s", "-B", LabAddresses.ServerV4, "-p", Invariant($"{IperfPort}")]);
        // The second iperf3 server carries the UDP half of the warm-up and of the soak.
        _group.StartServer("iperf3 -s (udp)", _lab.Server, ["iperf3", "-s", "-B", LabAddresses.ServerV4, "-p", Invariant($"{SecondIperfPort}")]);
        List<string> endpoints = [Invariant($"{LabAddresses.ServerV4}:{HttpPort}"), Invariant($"{LabAddresses.ServerV4}:{IperfPort}"),
            Invariant($"{LabAddresses.ServerV4}:{SecondIperfPort}")];
        var clock = Stopwatch.StartNew();
        while (true)
        {
            _stop.ThrowIfCancellationRequested();
            foreach (ChildProcess s in _group.Servers)
            {
                if (s.HasExited)
                    throw new InvalidOperationException($"{s.Name} exited with {s.ExitCode} while starting: {HttpLoadResult.Excerpt(s.StdErr + s.StdOut)}");
            }
            IReadOnlySet<string> listening = TrafficMix.ParseListening(Tool.RunIn(_lab.Server, "ss", "-Hltn"));
            if (endpoints.All(listening.Contains))
                break;
            if (clock.Elapsed > TimeSpan.FromSeconds(15))
                throw new InvalidOperationException($"servers not listening on {string.Join(", ", endpoints.Where(e => !listening.Contains(e)))} after 15 s");
            _stop.WaitHandle.WaitOne(s_poll);
        }
        Say($"servers listening on {string.Join(", ", endpoints)}");
    }

    private void CheckPath()
    {
        ResetGateway();
        ToolResult ping = Tool.Run(checkExit: false, Tool.InNetns(_lab.Client, "ping", "-n", "-c", "1", "-W", "2", LabAddresses.ServerV4));
        if (ping.ExitCode != 0)
            throw new InvalidOperationException($"no path client → gateway → server: {ping.StdOut.Trim()} {ping.StdErr.Trim()}");
    }

    private void ResetGateway() => Tool.RunIn(_lab.Gateway, "iptables-restore", Scratch("reset.rules"));

    private BenchMeasurement Measure(BenchSetup setup, BenchWorkload workload, int rep)
    {
        var m = new BenchMeasurement(setup, workload, rep);
        ChildProcess? daemon = null;
        try
        {
            daemon = StartSetup(setup);
            // Scraping from before the warm-up: the scrape path is compiled and tiered up by the
            // measured interval, as under a Prometheus that has been scraping all along.
            using MetricsScraper? scraper = setup == BenchSetup.Ctfw1Scraped ? MetricsScraper.Start(_lab.Gateway, TimeSpan.FromMilliseconds(100)) : null;
            if (daemon is not null)
                WarmUp();

            Snapshot before = Snap(setup, daemon);
            WorkloadFigures figures = RunWorkload(workload);
            Snapshot after = Snap(setup, daemon);
            if (scraper is not null)
            {
                MetricsScraper.Result scrapes = scraper.Stop();
                Say(Invariant($"{BenchNames.Of(setup)} {BenchNames.Of(workload)}: {scrapes.Scrapes} scrapes of /metrics, {scrapes.Failures} failed, {scrapes.MeanMs:0.00} ms mean, {scrapes.MaxMs:0.0} ms max, {scrapes.Bytes / Math.Max(1, scrapes.Scrapes)} bytes each"));
                if (scrapes.Scrapes == 0 || scrapes.Failures > 0)
                    throw new InvalidOperationException($"the /metrics scraper failed: {scrapes.LastError}");
            }
            string daemonOutput = "";
            if (daemon is not null)
            {
                // A consumer that died mid-run left the queue to --queue-bypass: the figures would be plain forwarding's.
                if (daemon.HasExited)
                    throw new InvalidOperationException($"{BenchNames.Of(setup)} exited with {daemon.ExitCode} during the measurement");
                daemon.Stop(Interop.SigTerm, TimeSpan.FromSeconds(15));
                daemonOutput = daemon.StdOut;
                _stop.ThrowIfCancellationRequested();
            }
            return m with
            {
                Value = figures.Value,
                LossPercent = figures.LossPercent,
                Errors = figures.Errors,
                P50Us = figures.P50Us,
                P99Us = figures.P99Us,
                MaxUs = figures.MaxUs,
                StealPercent = after.System.StealPercentSince(before.System),
                Profile = daemon is null ? null : Profile(setup, before, after, daemonOutput),
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or TimeoutException or IOException && !_stop.IsCancellationRequested)
        {
            string tail = daemon is null ? "" : $" (daemon stderr: {HttpLoadResult.Excerpt(daemon.StdErr)})";
            return m with { Failure = e.Message + tail };
        }
        finally
        {
            if (daemon is not null && !daemon.HasExited)
                daemon.Stop(Interop.SigTerm, TimeSpan.FromSeconds(15));
        }
    }

    /// <summary>Resets the gateway, installs <paramref name="setup"/>'s rules and starts its consumer (null for none).</summary>
    private ChildProcess? StartSetup(BenchSetup setup, IReadOnlyList<string>? extra = null)
    {
        ResetGateway();
        foreach (string[] command in GatewayCommands(setup, _host.RulesPath, Scratch("notrack.rules"), Scratch("cloop.rules")))
            Tool.RunIn(_lab.Gateway, command);
        return StartDaemon(setup, extra);
    }

    private ChildProcess? StartDaemon(BenchSetup setup, IReadOnlyList<string>? extra = null)
    {
        IReadOnlyList<string>? args = DaemonArgs(setup, _options.Queue, _cloop, _host.CtfwCommand, _host.RulesPath, _host.ControlPath, _options.CopyRange);
        if (args is null)
            return null;
        if (extra is not null)
            args = [.. args, .. extra];
        ChildProcess daemon = _group.StartClient(BenchNames.Of(setup), _lab.Gateway, args);
        bool ctfw = setup != BenchSetup.CLoop;
        string ready = ctfw ? "ctfw: running" : "nfq_accept: queue";
        TimeSpan timeout = ctfw ? s_ctfwStart : s_cloopStart;
        var clock = Stopwatch.StartNew();
        while (!(daemon.StdErr.Contains(ready, StringComparison.Ordinal) || daemon.StdOut.Contains(ready, StringComparison.Ordinal)))
        {
            _stop.ThrowIfCancellationRequested();
            if (daemon.HasExited)
                throw new InvalidOperationException($"{BenchNames.Of(setup)} exited with {daemon.ExitCode} while starting: {HttpLoadResult.Excerpt(daemon.StdErr + daemon.StdOut)}");
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"{BenchNames.Of(setup)} did not report ready within {timeout.TotalSeconds:0} s");
            _stop.WaitHandle.WaitOne(s_poll);
        }
        return daemon;
    }

    /// <summary>
    /// One second of paced TCP and 64-byte UDP at once through a consumer that has just started, so
    /// that ctfw's measured interval runs optimised code (tiered JIT) rather than its first-call
    /// tier; the C loop gets the same second so both start their measurement alike.
    /// </summary>
    private void WarmUp()
    {
        ChildProcess tcp = Client("warm-up tcp", ["iperf3", "-c", LabAddresses.ServerV4, "-p", Invariant($"{IperfPort}"), "-t", "1", "-b", "500M", "--connect-timeout", "3000"]);
        ChildProcess udp = Client("warm-up udp", ["iperf3", "-c", LabAddresses.ServerV4, "-p", Invariant($"{SecondIperfPort}"), "-t", "1", "-u", "-l", "64", "-b", "20M", "--connect-timeout", "3000"]);
        Wait(tcp, s_warmUp);
        Wait(udp, s_warmUp);
        if (tcp.ExitCode != 0 || udp.ExitCode != 0)
            throw new InvalidOperationException($"warm-up traffic failed: {HttpLoadResult.Excerpt(tcp.StdErr + tcp.StdOut + udp.StdErr + udp.StdOut)}");
    }

    private sealed record Snapshot(
        SystemCpu System,
        CpuTicks? Process,
        IReadOnlyList<ThreadCpu> Threads,
        IReadOnlyDictionary<string, long>? Stats,
        IReadOnlyList<KernelQueueRow> Queues,
        CLoopExit? Loop = null);

    private Snapshot Snap(BenchSetup setup, ChildProcess? daemon)
    {
        SystemCpu system = ProcStats.ReadSystemCpu();
        if (daemon is null)
            return new Snapshot(system, null, [], null, []);
        var proc = ProcStats.ReadProcess(daemon.Pid);
        IReadOnlyDictionary<string, long>? stats = BenchNames.IsCtfw(setup) ? _host.ReadStats(_host.ControlPath) : null;
        CLoopExit? loop = setup == BenchSetup.CLoop ? CLoopSnapshot(daemon) : null;
        List<KernelQueueRow> queues = ProcStats.ParseKernelQueues(
            Tool.Run(checkExit: false, Tool.InNetns(_lab.Gateway, "cat", "/proc/net/netfilter/nfnetlink_queue")).StdOut);
        return new Snapshot(system, proc?.Process, proc?.Threads ?? [], stats, queues, loop);
    }

    /// <summary>The C loop's counters so far: SIGUSR1 makes it print its counter line (it keeps running).</summary>
    private CLoopExit CLoopSnapshot(ChildProcess loop)
    {
        static int Lines(string s) => s.Split('\n').Count(l => l.StartsWith("packets=", StringComparison.Ordinal));
        int seen = Lines(loop.StdOut);
        if (Interop.Kill(loop.Pid, Interop.SigUsr1) != 0)
            throw new InvalidOperationException("could not signal the C loop for its counters");
        var clock = Stopwatch.StartNew();
        while (Lines(loop.StdOut) <= seen)
        {
            if (loop.HasExited || clock.Elapsed > TimeSpan.FromSeconds(5))
                throw new TimeoutException("the C loop did not print its counters after SIGUSR1");
            _stop.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(5));
        }
        return CLoopExit.Parse(loop.StdOut);
    }

    /// <summary>
    /// The consumer's costs between two snapshots. ctfw: packets and syscalls from its control
    /// counters; the C loop: from its exit line (it runs only for this measurement).
    /// </summary>
    private DaemonProfile Profile(BenchSetup setup, Snapshot before, Snapshot after, string daemonStdout)
    {
        IReadOnlyList<int> queues = [.. Enumerable.Range(_options.Queue, BenchNames.QueueCount(setup))];
        long drops = 0;
        foreach (KernelQueueRow row in after.Queues)
        {
            if (queues.Contains(row.Queue))
                drops += row.Drops - (before.Queues.FirstOrDefault(r => r.Queue == row.Queue).Drops);
        }
        CpuTicks? cpu = after.Process is { } a && before.Process is { } b ? a - b : null;
        CpuTicks workers = default;
        bool anyWorker = false;
        foreach (ThreadCpu t in after.Threads)
        {
            bool worker = setup == BenchSetup.CLoop || t.Name.StartsWith(WorkerThreadPrefix, StringComparison.Ordinal);
            if (!worker)
                continue;
            anyWorker = true;
            ThreadCpu start = before.Threads.FirstOrDefault(x => x.Tid == t.Tid);
            workers += t.Cpu - start.Cpu;
        }

        long packets;
        long? offloaded = null;
        double? syscalls = null, batch = null, allocated = null;
        if (setup == BenchSetup.CLoop)
        {
            // Counter snapshots around the measurement (SIGUSR1), so the warm-up is not counted; the
            // exit line is only the fallback of a loop that could not be asked.
            CLoopExit end = after.Loop ?? CLoopExit.Parse(daemonStdout);
            CLoopExit start = before.Loop ?? new CLoopExit(0, 0, 0, 0, 0, 0);
            packets = end.Packets - start.Packets;
            long batches = end.Batches - start.Batches;
            if (end.RecvCalls is long r1 && end.SendCalls is long s1 && start.RecvCalls is long r0 && start.SendCalls is long s0 && packets > 0)
                syscalls = (double)(r1 - r0 + s1 - s0) / packets;
            batch = batches > 0 ? (double)packets / batches : null;
        }
        else
        {
            packets = StatsDelta(before, after, "packets") ?? 0;
            // Forwarded by the kernel without reaching ctfw: the offloaded flows' nftables element counters.
            if (setup == BenchSetup.Offload)
                offloaded = StatsDelta(before, after, "offload.packets");
            long? recv = SumQueues(before, after, queues, "recv_calls");
            long? flushes = SumQueues(before, after, queues, "verdict_flushes");
            long? queuePackets = SumQueues(before, after, queues, "packets");
            long? bytes = SumQueues(before, after, queues, "allocated_bytes");
            if (recv is long r && flushes is long f && packets > 0)
                syscalls = (double)(r + f) / packets;
            if (flushes is long fl && fl > 0 && queuePackets is long qp)
                batch = (double)qp / fl;
            if (bytes is long by && packets > 0)
                allocated = (double)by / packets;
        }
        double? PerPacket(long? ticks) => MicrosecondsPerPacket(ticks, packets);
        return new DaemonProfile
        {
            Packets = packets,
            OffloadedPackets = offloaded,
            UserUsPerPacket = PerPacket(cpu?.User),
            SysUsPerPacket = PerPacket(cpu?.System),
            WorkerUserUsPerPacket = anyWorker ? PerPacket(workers.User) : null,
            WorkerSysUsPerPacket = anyWorker ? PerPacket(workers.System) : null,
            SyscallsPerPacket = syscalls,
            AverageBatch = batch,
            KernelQueueDrops = after.Queues.Count > 0 ? drops : null,
            AllocatedBytesPerPacket = allocated,
        };
    }

    private static double? MicrosecondsPerPacket(long? ticks, long packets) =>
        ticks is long t && packets > 0 ? t * CpuTicks.Microseconds / packets : null;

    private static long? StatsDelta(Snapshot before, Snapshot after, string name) =>
        before.Stats is { } b && after.Stats is { } a && a.TryGetValue(name, out long x) && b.TryGetValue(name, out long y) ? x - y : null;

    /// <summary>Σ over <paramref name="queues"/> of the delta of <c>queue.N.name</c>; null when any queue lacks the counter.</summary>
    private static long? SumQueues(Snapshot before, Snapshot after, IReadOnlyList<int> queues, string name)
    {
        long sum = 0;
        foreach (int q in queues)
        {
            if (StatsDelta(before, after, Invariant($"queue.{q}.{name}")) is not long d)
                return null;
            sum += d;
        }
        return sum;
    }

    private sealed record WorkloadFigures(double Value, double? LossPercent = null, long? Errors = null, double? P50Us = null, double? P99Us = null, double? MaxUs = null);

    private string Seconds => Invariant($"{(long)Math.Max(1, Math.Ceiling(_options.Seconds.TotalSeconds))}");

    private WorkloadFigures RunWorkload(BenchWorkload workload)
    {
        string server = LabAddresses.ServerV4;
        switch (workload)
        {
            case BenchWorkload.Tcp:
            {
                ChildProcess c = Client("iperf3 tcp", ["iperf3", "-c", server, "-p", Invariant($"{IperfPort}"), "-t", Seconds, "-P", "2", "-J", "--connect-timeout", "3000"]);
                Wait(c);
                TcpBulkResult r = TcpBulkResult.Parse(c.StdOut);
                return new WorkloadFigures(r.ReceivedGbitPerSecond);
            }
            case BenchWorkload.Udp:
            {
                ChildProcess c = Client("iperf3 udp", ["iperf3", "-c", server, "-p", Invariant($"{IperfPort}"), "-t", Seconds, "-u", "-l", "64", "-b", "0", "-P", "2", "-J", "--connect-timeout", "3000"]);
                Wait(c);
                UdpStreamResult r = UdpStreamResult.Parse(c.StdOut);
                double seconds = r.Elapsed.TotalSeconds > 0 ? r.Elapsed.TotalSeconds : _options.Seconds.TotalSeconds;
                return new WorkloadFigures(r.PacketsReceived / seconds, LossPercent: r.LossPercent);
            }
            case BenchWorkload.Conn:
            {
                ChildProcess c = Client("wrk", ConnArgs(threads: 2, connections: 32, Seconds));
                Wait(c);
                HttpLoadResult r = HttpLoadResult.Parse(c.StdOut);
                if (r.Requests == 0)
                    throw new InvalidOperationException($"wrk completed no request ({r.Errors} errors)");
                return new WorkloadFigures(r.RequestsPerSecond, Errors: r.Errors);
            }
            case BenchWorkload.Lat:
            {
                long seconds = (long)Math.Max(1, Math.Ceiling(_options.Seconds.TotalSeconds));
                ChildProcess load = Client("iperf3 paced", ["iperf3", "-c", server, "-p", Invariant($"{IperfPort}"), "-t", Invariant($"{seconds + 1}"), "-b", "1G", "-J", "--connect-timeout", "3000"]);
                _stop.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(500)); // the load is flowing before the first probe
                ChildProcess ping = Client("ping", ["ping", "-n", "-i", "0.002", "-c", Invariant($"{seconds * 500}"), "-W", "1", server]);
                Wait(ping);
                Wait(load);
                PingResult p = PingResult.Parse(ping.StdOut);
                if (p.Received == 0 || p.RttP99 is null)
                    throw new InvalidOperationException($"no ping reply ({p.Transmitted} sent)");
                double Us(TimeSpan? t) => t!.Value.TotalMicroseconds;
                return new WorkloadFigures(Us(p.RttP99), P50Us: Us(p.RttP50), P99Us: Us(p.RttP99), MaxUs: Us(p.RttMax));
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(workload), workload, null);
        }
    }

    private string[] ConnArgs(int threads, int connections, string seconds) =>
        ["wrk", "-t", Invariant($"{threads}"), "-c", Invariant($"{connections}"), "-d", seconds + "s", "-H", "Connection: close",
         "-s", _site.WrkScriptPath, Invariant($"http://{LabAddresses.ServerV4}:{HttpPort}/")];

    private ChildProcess Client(string name, IReadOnlyList<string> args) => _group.StartClient(name, _lab.Client, args);

    /// <summary>Waits for a client to finish by itself; SIGINT (its summary) then SIGKILL after the grace period.</summary>
    private void Wait(ChildProcess client, TimeSpan? length = null)
    {
        TimeSpan limit = (length ?? _options.Seconds) + s_clientGrace;
        var clock = Stopwatch.StartNew();
        while (!client.HasExited)
        {
            _stop.ThrowIfCancellationRequested();
            if (clock.Elapsed > limit)
            {
                client.Stop(ChildProcess.SigInt, TimeSpan.FromSeconds(3));
                _problems.Add($"{client.Name}: still running {s_clientGrace.TotalSeconds:0} s past its length; interrupted");
                break;
            }
            _stop.WaitHandle.WaitOne(s_poll);
        }
        client.WaitForExit(Timeout.InfiniteTimeSpan);
        _stop.ThrowIfCancellationRequested(); // a signal may have killed the client we just saw exit
    }

    private static string ReportBytes(long? b) => BenchReport.Bytes(b);

    /// <summary>Source addresses of the scale step's flows: the client's /24 from .100 on (nothing answers to them).</summary>
    private const string ScaleSourceBase = "10.99.1.100";

    /// <summary>
    /// ctfw1 with room for the flows (nf_conntrack_max a little above them, a 65 536-packet queue and a
    /// large socket buffer so pacing never overflows it), then one UDP datagram per flow; the UDP
    /// unreplied timeout (30 s) outlives the fill, so every flow is in the table when it is read.
    /// </summary>
    private ScaleResult Scale()
    {
        int flows = _options.ScaleFlows;
        var result = new ScaleResult { Flows = flows };
        ChildProcess? daemon = null;
        try
        {
            int max = flows; // exactly: the target is 1 M flows in a table sized for 1 M (nf_conntrack_max = 1 000 000)
            daemon = StartSetup(BenchSetup.Ctfw1, ["--set", Invariant($"nf_conntrack_max={max}"), "--queue-maxlen", "65536", "--rcvbuf", "268435456"])!;
            Say(Invariant($"scale: {flows:N0} UDP flows into ctfw1's table (nf_conntrack_max {max:N0})"));
            IReadOnlyDictionary<string, long>? before = _host.ReadStats(_host.ControlPath);
            long Packets() => _host.ReadStats(_host.ControlPath)?.GetValueOrDefault("packets") ?? -1;
            ScaleFill fill = ScaleProbe.Fill(_lab.Client, System.Net.IPAddress.Parse(ScaleSourceBase), System.Net.IPAddress.Parse(LabAddresses.ServerV4),
                SecondIperfPort, flows, Packets, maxInFlight: 32_768, TimeSpan.FromSeconds(25), _stop);
            _stop.ThrowIfCancellationRequested();
            IReadOnlyDictionary<string, long>? after = _host.ReadStats(_host.ControlPath);
            daemon.Stop(Interop.SigTerm, TimeSpan.FromSeconds(15));
            long? entries = after?.GetValueOrDefault("table.entries");
            return result with
            {
                Sent = fill.Sent,
                DaemonPackets = fill.DaemonPackets,
                TableEntries = entries,
                RssBeforeBytes = before?.GetValueOrDefault("process.rss_bytes"),
                RssAfterBytes = after?.GetValueOrDefault("process.rss_bytes"),
                RssAnonAfterBytes = after?.GetValueOrDefault("process.rss_anon_bytes") is long anon and > 0 ? anon : null,
                HeapBytes = after?.GetValueOrDefault("gc.heap_bytes"),
                FillPacketsPerSecond = fill.PacketsPerSecond,
                Failure = fill.TimedOut ? Invariant($"ctfw saw {fill.DaemonPackets} of {fill.Sent} datagrams in time")
                    : entries is not long n || n < flows ? Invariant($"ctfw's table holds {entries?.ToString(CultureInfo.InvariantCulture) ?? "?"} entries after {flows} flows")
                    : null,
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or TimeoutException or IOException or System.Net.Sockets.SocketException && !_stop.IsCancellationRequested)
        {
            return result with { Failure = e.Message };
        }
        finally
        {
            if (daemon is not null && !daemon.HasExited)
                daemon.Stop(Interop.SigTerm, TimeSpan.FromSeconds(15));
        }
    }

    /// <summary>ctfw1 under mixed load for the soak length: paced TCP bulk, 64-byte UDP and HTTP churn at once.</summary>
    private SoakResult Soak()
    {
        var result = new SoakResult { Duration = _options.Soak };
        ChildProcess? daemon = null;
        try
        {
            daemon = StartSetup(BenchSetup.Ctfw1)!;
            WarmUp();
            Say($"soak: ctfw1 under mixed load for {_options.Soak.TotalSeconds:0} s");
            string seconds = Invariant($"{(long)Math.Max(1, Math.Ceiling(_options.Soak.TotalSeconds))}");
            Snapshot before = Snap(BenchSetup.Ctfw1, daemon);
            ChildProcess tcp = Client("soak iperf3 tcp", ["iperf3", "-c", LabAddresses.ServerV4, "-p", Invariant($"{IperfPort}"), "-t", seconds, "-b", "500M", "-J", "--connect-timeout", "3000"]);
            ChildProcess udp = Client("soak iperf3 udp", ["iperf3", "-c", LabAddresses.ServerV4, "-p", Invariant($"{SecondIperfPort}"), "-t", seconds, "-u", "-l", "64", "-b", "16M", "-J", "--connect-timeout", "3000"]);
            ChildProcess http = Client("soak wrk", ConnArgs(threads: 1, connections: 8, seconds));
            foreach (ChildProcess c in (ChildProcess[])[tcp, udp, http])
                Wait(c, _options.Soak);
            Snapshot after = Snap(BenchSetup.Ctfw1, daemon);
            long? rss = after.Stats?.GetValueOrDefault("process.rss_bytes") is long r and > 0 ? r : ProcStats.ReadRssBytes(daemon.Pid);
            daemon.Stop(Interop.SigTerm, TimeSpan.FromSeconds(15));
            _stop.ThrowIfCancellationRequested();

            long packets = StatsDelta(before, after, "packets") ?? 0;
            CpuTicks? cpu = after.Process is { } a && before.Process is { } b ? a - b : null;
            double? PerPacket(long? ticks) => MicrosecondsPerPacket(ticks, packets);
            string load = string.Join(", ",
                Try(() => Invariant($"tcp {TcpBulkResult.Parse(tcp.StdOut).ReceivedGbitPerSecond:0.00} Gbit/s (paced 500 Mbit/s)")),
                Try(() => UdpStreamResult.Parse(udp.StdOut) is var u ? Invariant($"udp {u.PacketsReceived / Math.Max(0.001, u.Elapsed.TotalSeconds) / 1000:0.0} kpps (loss {u.LossPercent:0.0} %)") : ""),
                Try(() => HttpLoadResult.Parse(http.StdOut) is var h ? Invariant($"http {h.RequestsPerSecond:0} conn/s ({h.Errors} errors)") : ""));
            return result with
            {
                Packets = packets,
                Gen0 = StatsDelta(before, after, "gc.gen0"),
                Gen1 = StatsDelta(before, after, "gc.gen1"),
                Gen2 = StatsDelta(before, after, "gc.gen2"),
                GcPauseUs = StatsDelta(before, after, "gc.pause_us"),
                WorkerAllocatedBytes = SumQueues(before, after, [_options.Queue], "allocated_bytes"),
                ProcessAllocatedBytes = StatsDelta(before, after, "gc.allocated_bytes"),
                UserUsPerPacket = PerPacket(cpu?.User),
                SysUsPerPacket = PerPacket(cpu?.System),
                RssBytes = rss,
                StealPercent = after.System.StealPercentSince(before.System),
                Load = load,
                Failure = packets > 0 ? null : "ctfw handled no packets (or its control socket did not answer)",
            };
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or TimeoutException or IOException && !_stop.IsCancellationRequested)
        {
            return result with { Failure = e.Message };
        }
        finally
        {
            if (daemon is not null && !daemon.HasExited)
                daemon.Stop(Interop.SigTerm, TimeSpan.FromSeconds(15));
        }
    }

    private static string Try(Func<string> f)
    {
        try
        {
            return f();
        }
        catch (FormatException e)
        {
            return $"({e.Message})";
        }
    }

    /// <summary>One progress line's figures.</summary>
    internal static string Describe(BenchMeasurement m)
    {
        if (m.Failure is not null)
            return "FAILED: " + m.Failure;
        string value = m.Workload switch
        {
            BenchWorkload.Tcp => Invariant($"{m.Value:0.00} Gbit/s"),
            BenchWorkload.Udp => Invariant($"{m.Value / 1000:0.0} kpps received, loss {m.LossPercent:0.0} %"),
            BenchWorkload.Conn => Invariant($"{m.Value:0} conn/s, {m.Errors} errors"),
            _ => Invariant($"p50 {m.P50Us:0} µs, p99 {m.P99Us:0} µs, max {m.MaxUs:0} µs"),
        };
        string offloaded = m.Profile?.OffloadedPackets is long o ? Invariant($" + {o} offloaded ({BenchReport.Percent(m.Profile.OffloadedShare)} bypassed ctfw)") : "";
        string profile = m.Profile is { } p
            ? Invariant($"; {p.Packets} packets{offloaded}, {(p.UserUsPerPacket ?? 0) + (p.SysUsPerPacket ?? 0):0.00} µs CPU/packet, {(p.SyscallsPerPacket is double s ? s.ToString("0.00", CultureInfo.InvariantCulture) : "-")} syscalls/packet, drops {p.KernelQueueDrops?.ToString(CultureInfo.InvariantCulture) ?? "-"}")
            : "";
        return Invariant($"{value}{profile} (steal {m.StealPercent:0.0} %)");
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
