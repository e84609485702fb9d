using System.CommandLine;
using System.Globalization;
using Ctfw.Cli.Commands;
using System.Runtime.InteropServices;
using Ctfw.Cli.Control;
using Ctfw.Lab.Bench;
using Ctfw.Lab.Flood;
using Ctfw.Lab.Network;
using Ctfw.Lab.Traffic;

namespace Ctfw.Cli.Bench;

/// <summary>`ctfw bench`: the end-to-end line-rate benchmark (see <see cref="BenchRunner"/>).</summary>
internal static class BenchCommand
{
    internal const int InterruptedExit = 130;

    public static CtfwCommand Create() => Create(new Options());

    private static CtfwCommand Create(Options options)
    {
        var command = new CtfwCommand("bench", "line-rate benchmark: plain, kernel conntrack, a C NFQUEUE loop and ctfw, side by side", "[OPTIONS]")
        {
            Details = """
                Builds client / gateway / server network namespaces (ctfwb-PID-*) joined by veth pairs and
                measures, in one run and alternating the set-ups so that machine drift hits them alike, what the
                gateway forwards under each set-up:
                  plain   no rules, no conntrack (the machine's limit)
                  kernel  kernel conntrack with rules/bench.rules loaded by iptables-restore
                  cloop   the plain C NFQUEUE accept-all loop (bench/nfq-c-loop), kernel conntrack bypassed
                  ctfw1   ctfw run --rules rules/bench.rules on one queue, kernel conntrack bypassed
                  ctfw2   the same on two queues (two worker threads)
                  offload ctfw2 with --offload established: packets of established, accepted flows without
                          SYN/FIN/RST are marked by an nftables chain and forwarded by the kernel without
                          reaching ctfw (the report counts them, from offload.packets)
                  ctfw1m  (only when named; not in all) ctfw1 with --metrics 127.0.0.1:9469 and /metrics
                          scraped every 100 ms from the gateway namespace: what scraping costs
                and workloads (client → server, IPv4):
                  tcp     iperf3 TCP bulk, 2 streams: Gbit/s
                  udp     iperf3 UDP, 64-byte payloads, unpaced, 2 streams: packets/s received, loss
                  conn    wrk against nginx with Connection: close: new connections/s, errors
                  lat     ping every 2 ms under a paced 1 Gbit/s TCP load: RTT p50 / p99 / max
                  flood   (only when named; not in the default or in all) the hostile load, on namespaces
                          of its own (ctfwh-PID-*): 15 s random-source SYN flood + 64-byte UDP overload at
                          nf_conntrack_max=5000 (the kernel's global value is set for its run and restored)
                          with 3 conversations, a new connection every 100 ms and a forbidden-port probe;
                          under kernel, ctfw1 and ctfw2 (others have no table), figures side by side, once
                          in bursts (200 ms flat out every 1.5 s) and once as a steady flat-out stream
                          (about 2 minutes). Named alone, only the flood runs (no line-rate part, soak or scale)
                then a steady-state soak of ctfw1 under mixed load (GC counts, allocations per packet) and
                ctfw1's memory with 1 M concurrent flows in its table. Prints progress on stderr and a markdown
                report on stdout. Needs root; installs missing tools with apt-get. Removes everything it made.
                """,
            ExitCodes =
            [
                (0, "every measurement ran (missed targets are reported, not an error)"),
                (1, "a measurement failed, not root, the checkout or a tool is missing"),
                (CommandLine.UsageExit, "usage error"),
                (InterruptedExit, "interrupted (SIGINT, SIGTERM) after removing what it made"),
            ],
        };
        options.AddTo(command);
        command.SetAction(r => Run(options.Read(r)));
        return command;
    }

    /// <summary>Parses `bench ARGS…` (args[0] is "bench"); null with <paramref name="error"/> on a bad option (tests).</summary>
    internal static BenchOptions? TryParse(string[] args, out string? error, out bool help)
    {
        var options = new Options();
        ParseResult result = CommandLine.Parse(CommandLine.Root(Create(options)), args);
        help = result.Action is { ClearsParseErrors: true };
        error = help ? null : CommandLine.FirstError(result);
        return error is null ? options.Read(result) : null;
    }

    /// <summary>bench's options and how they make a <see cref="BenchOptions"/>.</summary>
    private sealed class Options
    {
        private readonly Option<int> _reps = Opt.Int("--reps", "N", "repetitions of every measurement (default 3)", 1, 100);
        private readonly Option<int> _seconds = Opt.Value("--seconds", "S", "length of each measurement (default 10)",
            (string t, out int v) => Opt.TryInt(t, 1, 3600, out v), "whole seconds 1..3600");
        private readonly Option<IReadOnlyList<BenchSetup>> _setups = Opt.Value("--setups", "LIST", "comma list of set-ups (default all)",
            (string t, out IReadOnlyList<BenchSetup> v) => TryNames(t, BenchNames.ParseSetups, out v, out _),
            (used, t) => $"{used} {t}: {Why(t, BenchNames.ParseSetups)}");
        private readonly Option<IReadOnlyList<BenchWorkload>> _workloads = Opt.Value("--workloads", "LIST",
            "comma list of workloads (default tcp,udp,conn,lat; flood only when named)",
            (string t, out IReadOnlyList<BenchWorkload> v) => TryNames(t, BenchNames.ParseWorkloads, out v, out _),
            (used, t) => $"{used} {t}: {Why(t, BenchNames.ParseWorkloads)}");
        private readonly Option<int> _soak = Opt.Value("--soak", "S", "length of the ctfw1 soak, 0 to skip (default 60)",
            (string t, out int v) => Opt.TryInt(t, 0, 86400, out v), "whole seconds 0..86400");
        private readonly Option<int> _scale = Opt.Value("--scale", "FLOWS",
            "concurrent UDP flows put into ctfw1's table to measure its memory, 0 to skip (default 1000000)",
            (string t, out int v) => Opt.TryInt(t, 0, 4_000_000, out v), "a number of flows 0..4000000");
        private readonly Option<bool> _quick = Opt.Flag("--quick",
            $"{BenchOptions.Quick.Reps} rep of {BenchOptions.Quick.Seconds.TotalSeconds:0} s, soak {BenchOptions.Quick.Soak.TotalSeconds:0} s, "
            + $"scale {BenchOptions.Quick.ScaleFlows} flows (options given explicitly win)");
        private readonly Option<int> _copyRange = Opt.Value("--copy-range", "B",
            "NFQUEUE copy range for both the C loop and ctfw (default: whole packets)",
            (string t, out int v) => Opt.TryInt(t, 64, 65535, out v), "bytes 64..65535");
        private readonly Option<int> _queue = Opt.Value("--queue", "N", "NFQUEUE number (ctfw2 and offload also use N+1; default 7)",
            (string t, out int v) => Opt.TryInt(t, 0, 65534, out v), "0..65534 (ctfw2 and offload also use the next queue)");
        private readonly Option<string> _output = Opt.Text("--output", "FILE", "also write the report to FILE");

        public void AddTo(CtfwCommand command)
        {
            foreach (Option option in (Option[])[_reps, _seconds, _setups, _workloads, _soak, _scale, _quick, _copyRange, _queue, _output])
                command.Add(option, null);
        }

        public BenchOptions Read(ParseResult r)
        {
            BenchOptions o = new();
            if (r.GetValue(_quick))
                o = o with { Reps = BenchOptions.Quick.Reps, Seconds = BenchOptions.Quick.Seconds, Soak = BenchOptions.Quick.Soak, ScaleFlows = BenchOptions.Quick.ScaleFlows };
            if (r.Given(_reps))
                o = o with { Reps = r.GetValue(_reps) };
            if (r.Given(_seconds))
                o = o with { Seconds = TimeSpan.FromSeconds(r.GetValue(_seconds)) };
            if (r.Given(_soak))
                o = o with { Soak = TimeSpan.FromSeconds(r.GetValue(_soak)) };
            if (r.Given(_scale))
                o = o with { ScaleFlows = r.GetValue(_scale) };
            if (r.Given(_copyRange))
                o = o with { CopyRange = r.GetValue(_copyRange) };
            if (r.Given(_queue))
                o = o with { Queue = r.GetValue(_queue) };
            if (r.GetValue(_setups) is { } setups)
                o = o with { Setups = setups };
            if (r.GetValue(_workloads) is { } workloads)
                o = o with { Workloads = workloads };
            if (r.GetValue(_output) is { } output)
                o = o with { Output = output };
            return o;
        }

        // BenchNames says what is wrong in its exception.
        private static bool TryNames<T>(string text, Func<string, IReadOnlyList<T>> parse, out IReadOnlyList<T> value, out string? why)
        {
            try
            {
                value = parse(text);
                why = null;
                return true;
            }
            catch (FormatException e)
            {
                value = [];
                why = e.Message;
                return false;
            }
        }

        private static string? Why<T>(string text, Func<string, IReadOnlyList<T>> parse) =>
            TryNames(text, parse, out _, out string? why) ? null : why;
    }

    private static int Run(BenchOptions options)
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
        {
            Console.Error.WriteLine("ctfw bench: needs root (it creates network namespaces, iptables rules and NFQUEUE consumers); run `sudo ./ctfw bench`");
            return 1;
        }
        string? root = FindCheckout();
        if (root is null)
        {
            Console.Error.WriteLine("ctfw bench: cannot find rules/bench.rules and bench/nfq-c-loop/nfq_accept.c above this build; run it from the checkout (./ctfw bench)");
            return 1;
        }
        if (!EnsureTools())
            return 1;

        using var cancel = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // clean up first, then exit 130
            if (!cancel.IsCancellationRequested)
                Console.Error.WriteLine("ctfw bench: interrupted; stopping the traffic and removing the namespaces");
            cancel.Cancel();
        }
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        var host = new BenchHost(
            Path.Combine(root, "rules", "bench.rules"),
            Path.Combine(root, "bench", "nfq-c-loop", "nfq_accept.c"),
            SelfCommand(),
            Path.Combine(ControlPaths.RunDirectory, $"ctfw-bench-{Environment.ProcessId}.sock"),
            ReadStats);
        RemoveStaleSockets();
        try
        {
            // The flood runs on namespaces of its own after the line-rate part (see HostileBench).
            BenchOptions lineRate = options with { Workloads = [.. options.Workloads.Where(w => w != BenchWorkload.Flood)] };
            bool flood = options.Workloads.Contains(BenchWorkload.Flood);
            string report = "";
            bool complete = true;
            if (lineRate.Workloads.Count > 0)
            {
                BenchRun run = new BenchRunner(lineRate, host, Console.Error, cancel.Token).Run();
                report = BenchReport.Render(run);
                complete = run.Complete;
            }
            if (flood)
            {
                HostileLab.RemoveLeftovers();
                IReadOnlyList<HostileBench.Entry> entries = HostileBench.Run(options.Setups, host.CtfwCommand, ReadStats, options.Queue, Console.Error, cancel.Token);
                if (entries.Count == 0)
                    Console.Error.WriteLine("ctfw bench: flood: none of the set-ups has a conntrack (kernel, ctfw1, ctfw2)");
                report += (report.Length > 0 ? "\n" : "") + HostileBench.Render(entries);
                complete &= entries.All(e => e.Result is not null);
            }
            Console.Out.Write(report);
            if (options.Output is { } output)
                File.WriteAllText(output, report);
            if (!complete)
                Console.Error.WriteLine("ctfw bench: some measurements failed (see Failures in the report)");
            return complete ? 0 : 1;
        }
        catch (Exception e) when (cancel.IsCancellationRequested || e is OperationCanceledException)
        {
            Console.Error.WriteLine("ctfw bench: interrupted");
            return InterruptedExit;
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"ctfw bench: {e.Message}");
            return 1;
        }
    }

    /// <summary>This ctfw: the apphost, or dotnet with ctfw.dll (as LabDaemon starts `ctfw run`).</summary>
    private static List<string> SelfCommand()
    {
        string self = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell where the ctfw binary is");
        List<string> argv = [self];
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            argv.Add(typeof(BenchCommand).Assembly.Location);
        return argv;
    }

    private static Dictionary<string, long>? ReadStats(string controlPath)
    {
        if (!ControlClient.TryGetStats(controlPath, out List<KeyValuePair<string, long>> stats, out _))
            return null;
        var map = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach ((string k, long v) in stats)
            map[k] = v;
        return map;
    }

    /// <summary>Control sockets of bench runs whose process has died (killed with SIGKILL).</summary>
    private static void RemoveStaleSockets()
    {
        try
        {
            foreach (string path in Directory.EnumerateFiles(ControlPaths.RunDirectory, "ctfw-bench-*.sock"))
            {
                string pid = Path.GetFileNameWithoutExtension(path)["ctfw-bench-".Length..];
                if (int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int p) && !Directory.Exists($"/proc/{p}"))
                    File.Delete(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No run directory yet, or not ours to clean.
        }
    }

    /// <summary>The checkout this binary was built from (the launcher builds into .build/ctfw), or the working directory's.</summary>
    private static string? FindCheckout()
    {
        foreach (string start in (string[])[AppContext.BaseDirectory, Environment.CurrentDirectory])
        {
            for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "rules", "bench.rules")) && File.Exists(Path.Combine(dir.FullName, "bench", "nfq-c-loop", "nfq_accept.c")))
                    return dir.FullName;
            }
        }
        return null;
    }

    private static readonly (string Check, string Package)[] s_tools =
    [
        ("ip", "iproute2"), ("nsenter", "util-linux"), ("iptables", "iptables"), ("iptables-restore", "iptables"), ("sysctl", "procps"),
        ("ethtool", "ethtool"), ("gcc", "gcc"), ("iperf3", "iperf3"), ("nginx", "nginx"), ("wrk", "wrk"), ("ping", "iputils-ping"), ("ss", "iproute2"),
        ("/usr/include/libnetfilter_queue/libnetfilter_queue.h", "libnetfilter-queue-dev"), ("/usr/include/libmnl/libmnl.h", "libmnl-dev"),
    ];

    private static bool EnsureTools()
    {
        List<string> packages = [];
        foreach ((string check, string package) in s_tools)
        {
            bool present = check.StartsWith('/') ? File.Exists(check) : Tool.Find(check) is not null;
            if (!present && !packages.Contains(package))
                packages.Add(package);
        }
        if (packages.Count == 0)
            return true;
        Console.Error.WriteLine($"ctfw bench: installing {string.Join(' ', packages)} (apt-get)");
        TimeSpan timeout = TimeSpan.FromMinutes(10);
        string[] install = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends", .. packages];
        ToolResult result = Tool.Run(checkExit: false, timeout, install);
        if (result.ExitCode != 0 && TrafficTools.IsMissingListsError(result.StdOut + result.StdErr))
        {
            _ = Tool.Run(checkExit: false, timeout, "apt-get", "update");
            result = Tool.Run(checkExit: false, timeout, install);
        }
        if (result.ExitCode != 0)
        {
            Console.Error.WriteLine($"ctfw bench: apt-get install {string.Join(' ', packages)} failed: {result.StdErr.Trim()}");
            return false;
        }
        return true;
    }
}
