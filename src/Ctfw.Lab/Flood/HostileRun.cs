using System.Diagnostics;
using System.Globalization;
using System.Net;
using Ctfw.Lab.Bench;
using Ctfw.Lab.Network;
using Ctfw.Lab.Traffic;
using Ctfw.Linux;

namespace Ctfw.Lab.Flood;

/// <summary>
/// One hostile-load run on a fresh <see cref="HostileLab"/>: puts the firewall on the gateway, opens
/// the conversations, then for the load's duration floods the allowed ports from the client while
/// the new-connection probe and the forbidden-port probe run and the firewall is sampled; afterwards
/// drains the conversations, reads what reached the server, and stops the daemon with SIGTERM (timed).
/// Figures are collected, never judged here: the tests assert the targets on them, the bench
/// prints them. Everything the run changed outside the lab's namespaces (the kernel's global
/// nf_conntrack_max, temp files) is put back on every way out; the rest goes with the namespaces.
/// </summary>
public static class HostileRun
{
    private static readonly TimeSpan s_ready = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_conversationStart = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan s_stopBound = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_inFlight = TimeSpan.FromMilliseconds(500);

    /// <exception cref="InvalidOperationException">The firewall did not come up, or no path crossed it before the flood.</exception>
    public static async Task<HostileResult> RunAsync(HostileLab lab, HostileFirewall firewall, HostileLoad load, TextWriter? progress, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(lab);
        ArgumentNullException.ThrowIfNull(firewall);
        ArgumentNullException.ThrowIfNull(load);
        DirectoryInfo scratch = Directory.CreateTempSubdirectory("ctfw-hostile-");
        string rulesPath = Path.Combine(scratch.FullName, "hostile.rules");
        string control = Path.Combine(scratch.FullName, "ctfw.sock");
        File.WriteAllText(rulesPath, HostileRules.Ruleset(firewall.LogFlood));
        KernelConntrackMax? kernelMax = null;
        ChildProcess? daemon = null;
        List<EchoConversation> conversations = [];
        try
        {
            using var server = new HostileServer(lab.Server);
            if (firewall.Kind == HostileFirewallKind.Kernel)
            {
                Tool.RunIn(lab.Gateway, "iptables-restore", rulesPath);
                Tool.RunIn(lab.Gateway, "ip6tables-restore", rulesPath);
                kernelMax = KernelConntrackMax.Override(firewall.TableMax);
            }
            else
            {
                daemon = StartDaemon(lab, firewall, rulesPath, control, token);
            }
            progress?.WriteLine($"hostile: {firewall.Name} up; opening {load.Conversations} conversations");

            IPAddress serverAddress = HostileLab.ServerOf(load.Family);
            var echoEndPoint = new IPEndPoint(serverAddress, HostileRules.TcpPort);
            for (int i = 0; i < load.Conversations; i++)
            {
                EchoConversation c = EchoConversation.Open(lab.Client, echoEndPoint, s_conversationStart);
                conversations.Add(c);
                if (!c.WaitForEchoes(1, s_conversationStart))
                    throw new InvalidOperationException($"no path through {firewall.Name}: conversation {i + 1} got no echo within {s_conversationStart.TotalSeconds:0} s");
            }

            using var sampler = new Sampler(lab, firewall, control, daemon?.Pid);
            long? rssBefore = daemon is null ? null : ProcStats.ReadRssBytes(daemon.Pid);
            ServerCounts arrivedBefore = server.ReadCounts();
            long gatewayRxBefore = HostileServer.RxPackets(lab.Gateway, HostileLab.GatewayClientDevice);
            long serverRxBefore = HostileServer.RxPackets(lab.Server, HostileLab.ServerDevice);

            progress?.WriteLine($"hostile: {firewall.Name}: {load.Describe()}");
            sampler.Start();
            IPAddress client = HostileLab.ClientOf(load.Family);
            // The forbidden probe outlasts the flood by 2 s: packets still queued when it ends are judged too.
            TimeSpan forbiddenLength = load.Duration + TimeSpan.FromSeconds(2);
            await using FloodGenerator forbiddenTcp = FloodGenerator.Start(lab.Client,
                new FloodSpec(FloodKind.Syn, serverAddress, HostileRules.ForbiddenPort) { Source = client, RatePps = load.ForbiddenRatePps, Duration = forbiddenLength });
            await using FloodGenerator forbiddenUdp = FloodGenerator.Start(lab.Client,
                new FloodSpec(FloodKind.Udp, serverAddress, HostileRules.ForbiddenPort) { Source = client, RatePps = load.ForbiddenRatePps, Duration = forbiddenLength });
            sampler.MarkFloodStart();
            await using FloodGenerator? syn = load.SynFlood
                ? FloodGenerator.Start(lab.Client, new FloodSpec(FloodKind.Syn, serverAddress, HostileRules.TcpPort)
                    { SourceNetwork = HostileLab.FloodNetworkOf(load.Family), RatePps = load.SynRatePps, Burst = load.Burst, Duration = load.Duration })
                : null;
            await using FloodGenerator? udp = load.UdpOverload
                ? FloodGenerator.Start(lab.Client, new FloodSpec(FloodKind.Udp, serverAddress, HostileRules.UdpPort)
                    { Source = client, RatePps = load.UdpRatePps, Burst = load.Burst, Duration = load.Duration })
                : null;
            using var probing = new CancellationTokenSource(load.Duration);
            Task<ProbeFigures> probe = new NewConnectionProbe(lab.Client, echoEndPoint).RunAsync(probing.Token);

            FloodResult? synResult = syn is null ? null : await syn.WaitAsync(token);
            FloodResult? udpResult = udp is null ? null : await udp.WaitAsync(token);
            ProbeFigures probeFigures = await probe;
            progress?.WriteLine($"hostile: {firewall.Name}: flood over; draining the conversations (up to {load.Drain.TotalSeconds:0} s)");
            ConversationFigures[] talks = await Task.WhenAll(conversations.Select(c => Task.Run(() => c.StopAndDrain(load.Drain), token)));
            FloodResult forbiddenTcpResult = await forbiddenTcp.WaitAsync(token);
            FloodResult forbiddenUdpResult = await forbiddenUdp.WaitAsync(token);
            await Task.Delay(s_inFlight, token);

            ServerCounts arrived = server.ReadCounts() - arrivedBefore;
            long gatewayRx = HostileServer.RxPackets(lab.Gateway, HostileLab.GatewayClientDevice) - gatewayRxBefore;
            long serverRx = HostileServer.RxPackets(lab.Server, HostileLab.ServerDevice) - serverRxBefore;
            IReadOnlyDictionary<string, long>? finalStats = daemon is null ? null : firewall.ReadStats(control);
            sampler.Stop();
            bool alive = daemon is null || !daemon.HasExited;
            double? stopSeconds = null;
            int? exitCode = null;
            string? note = null;
            if (daemon is not null)
            {
                if (alive)
                {
                    var stopping = Stopwatch.StartNew();
                    daemon.Signal(ChildProcess.SigTerm);
                    exitCode = await daemon.WaitForExitAsync(s_stopBound);
                    if (exitCode is not null)
                        stopSeconds = stopping.Elapsed.TotalSeconds;
                }
                else
                {
                    exitCode = daemon.ExitCode;
                }
                if (!alive || exitCode is not 0)
                    note = "ctfw stderr: " + HttpLoadResult.Excerpt(daemon.StdErr);
            }

            return new HostileResult
            {
                Firewall = firewall.Name,
                Load = load.Describe(),
                Syn = synResult,
                Udp = udpResult,
                ForbiddenTcpSent = forbiddenTcpResult,
                ForbiddenUdpSent = forbiddenUdpResult,
                Arrived = arrived,
                GatewayRxPackets = gatewayRx,
                ServerRxPackets = serverRx,
                Conversations = talks,
                Probe = probeFigures,
                Samples = sampler.Samples,
                FinalStats = finalStats,
                RssBeforeBytes = rssBefore,
                RssMaxBytes = sampler.Samples.Max(s => s.RssBytes),
                DaemonAlive = alive,
                StopSeconds = stopSeconds,
                ExitCode = exitCode,
                Note = note,
            };
        }
        finally
        {
            foreach (EchoConversation c in conversations)
                c.Dispose();
            daemon?.Dispose();
            kernelMax?.Dispose();
            if (firewall.Kind == HostileFirewallKind.Kernel)
            {
                // The namespace goes with the lab; its entries would count against the restored global max until then.
                Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "iptables", "-w", "-F"));
                Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "ip6tables", "-w", "-F"));
                Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "conntrack", "-F"));
            }
            scratch.Delete(recursive: true);
        }
    }

    private static ChildProcess StartDaemon(HostileLab lab, HostileFirewall firewall, string rulesPath, string control, CancellationToken token)
    {
        string[] argv = Tool.InNetns(lab.Gateway, [.. firewall.CtfwCommand, .. firewall.RunArgs(rulesPath, control)]);
        if (firewall.StderrPath is string stderr)
            argv = ["sh", "-c", "f=$1; shift; exec \"$@\" 2>\"$f\"", "sh", stderr, .. argv];
        ChildProcess daemon = ChildProcess.Start(argv, new ChildProcessOptions { Name = "ctfw", DisposeGrace = TimeSpan.FromSeconds(15) });
        try
        {
            // Ready = the control socket answers and the NFQUEUE jumps are in place (stderr may be a pipe nobody reads).
            var clock = Stopwatch.StartNew();
            while (!(firewall.ReadStats(control) is not null
                && Tool.RunIn(lab.Gateway, "iptables-save").Contains("NFQUEUE", StringComparison.Ordinal)))
            {
                token.ThrowIfCancellationRequested();
                if (daemon.HasExited)
                    throw new InvalidOperationException($"ctfw exited with {daemon.ExitCode} while starting: {HttpLoadResult.Excerpt(daemon.StdErr + daemon.StdOut)}");
                if (clock.Elapsed > s_ready)
                    throw new InvalidOperationException($"ctfw did not come up within {s_ready.TotalSeconds:0} s: {HttpLoadResult.Excerpt(daemon.StdErr)}");
                Thread.Sleep(100);
            }
            return daemon;
        }
        catch
        {
            daemon.Dispose();
            throw;
        }
    }

    /// <summary>Samples the firewall on a thread of its own every <see cref="HostileLoad.SampleEvery"/> until stopped.</summary>
    private sealed class Sampler : IDisposable
    {
        private static readonly TimeSpan s_every = TimeSpan.FromMilliseconds(500);

        private readonly HostileLab _lab;
        private readonly HostileFirewall _firewall;
        private readonly string _control;
        private readonly int? _pid;
        private readonly Stopwatch _clock = new();
        private readonly ManualResetEventSlim _stop = new();
        private readonly List<HostileSample> _samples = [];
        private readonly Lock _lock = new();
        private Thread? _thread;
        private double _floodStartMs;

        public Sampler(HostileLab lab, HostileFirewall firewall, string control, int? pid)
        {
            _lab = lab;
            _firewall = firewall;
            _control = control;
            _pid = pid;
        }

        public IReadOnlyList<HostileSample> Samples
        {
            get
            {
                lock (_lock)
                    return [.. _samples.Select(s => s with { Seconds = (s.Seconds - _floodStartMs) / 1000 })];
            }
        }

        public void Start()
        {
            _clock.Start();
            _thread = new Thread(Loop) { Name = "hostile-sampler", IsBackground = true };
            _thread.Start();
        }

        public void MarkFloodStart()
        {
            lock (_lock)
                _floodStartMs = _clock.Elapsed.TotalMilliseconds;
        }

        public void Stop()
        {
            _stop.Set();
            _thread?.Join();
            Take();
        }

        public void Dispose()
        {
            _stop.Set();
            _thread?.Join();
            _stop.Dispose();
        }

        private void Loop()
        {
            do
                Take();
            while (!_stop.Wait(s_every));
        }

        private void Take()
        {
            double at = _clock.Elapsed.TotalMilliseconds; // made relative to the flood's start in Samples
            HostileSample sample;
            if (_firewall.Kind == HostileFirewallKind.Kernel)
            {
                long? count = ReadKernelCount();
                sample = new HostileSample(at, count, Try(KernelConntrackMax.Read), null, null, null, null);
            }
            else
            {
                IReadOnlyDictionary<string, long>? stats = _firewall.ReadStats(_control);
                long? queueDrops = null;
                if (stats is not null)
                {
                    foreach (KeyValuePair<string, long> kv in stats)
                    {
                        if (kv.Key.StartsWith("queue.", StringComparison.Ordinal)
                            && (kv.Key.EndsWith(".queue_dropped", StringComparison.Ordinal) || kv.Key.EndsWith(".user_dropped", StringComparison.Ordinal)))
                        {
                            queueDrops = (queueDrops ?? 0) + kv.Value;
                        }
                    }
                }
                sample = new HostileSample(at, Get(stats, "table.entries"), Get(stats, "table.max"),
                    _pid is int pid ? ProcStats.ReadRssBytes(pid) : null, Get(stats, "packets"), queueDrops, Get(stats, "unjudged_dropped"));
            }
            lock (_lock)
                _samples.Add(sample);
        }

        private long? ReadKernelCount()
        {
            try
            {
                // /proc/sys/net is the reading thread's namespace's.
                return NetworkNamespace.Run(NetworkNamespace.PathOf(_lab.Gateway),
                    () => long.Parse(File.ReadAllText("/proc/sys/net/netfilter/nf_conntrack_count").Trim(), NumberStyles.None, CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or FormatException or ErrnoException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        private static long? Try(Func<long> read)
        {
            try
            {
                return read();
            }
            catch (Exception e) when (e is IOException or FormatException)
            {
                return null;
            }
        }

        private static long? Get(IReadOnlyDictionary<string, long>? stats, string name) =>
            stats is not null && stats.TryGetValue(name, out long v) ? v : null;
    }
}
