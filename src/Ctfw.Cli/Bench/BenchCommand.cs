using System.Globalization;
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

    private const string Usage = """
        Usage: ctfw bench [--reps N] [--seconds S] [--setups LIST] [--workloads LIST] [--soak S] [--scale FLOWS] [--quick]
                          [--copy-range BYTES] [--queue N] [--output FILE]

        Builds client / gateway / server network namespaces (ctfwb-PID-*) joined by veth pairs and
        measures, in one run and alternating the set-ups so that machine drift hits them alike, what the
        gateway forwards under each set-up:
          plain   no rules, no conntrack (the machine's limit)
          kernel  kernel conntrack with rules/bench.rules loaded by iptables-restore
          cloop   the plain C NFQUEUE accept-all loop (bench/nfq-c-loop), kernel conntrack bypassed
          ctfw1   ctfw run --rules rules/bench.rules on one queue, kernel conntrack bypassed
          ctfw2   the same on two queues (two worker threads)
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
        ctfw1's memory with 1 M concurrent flows in its table. Prints
        progress on stderr and a markdown report on stdout. Exit status 0 when every measurement ran
        (missed targets are reported, not an error), 1 on failure, 2 on bad options, 130 when
        interrupted. Needs root; installs missing tools with apt-get. Removes everything it made.

          --reps N          repetitions of every measurement (default 3)
          --seconds S       length of each measurement (default 10)
          --setups LIST     comma list of set-ups (default all)
          --workloads LIST  comma list of workloads (default tcp,udp,conn,lat; flood when named)
          --soak S          length of the ctfw1 soak, 0 to skip (default 60)
          --scale FLOWS     concurrent UDP flows put into ctfw1's table to measure its memory,
                            0 to skip (default 1000000)
          --quick           1 rep of 2 s, soak 5 s (flags after it still apply)
          --copy-range B    NFQUEUE copy range for both the C loop and ctfw (default: whole packets)
          --queue N         NFQUEUE number (ctfw2 also uses N+1; default 7)
          --output FILE     also write the report to FILE
        """;

    public static int Run(string[] args)
    {
        BenchOptions? options = TryParse(args, out string? error, out bool help);
        if (help)
        {
            Console.Out.WriteLine(Usage);
            return 0;
        }
        if (options is null)
            return Program.Fail(error ?? "bad options for bench");

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

    /// <summary>Parses the options after `bench`; null with <paramref name="error"/> on a bad one.</summary>
    internal static BenchOptions? TryParse(string[] args, out string? error, out bool help)
    {
        var cl = new CommandLine(args, 1);
        help = false;
        BenchOptions o = new();
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                help = true;
                error = null;
                return o;
            }
            if (arg == "--quick")
            {
                o = o with { Reps = BenchOptions.Quick.Reps, Seconds = BenchOptions.Quick.Seconds, Soak = BenchOptions.Quick.Soak, ScaleFlows = BenchOptions.Quick.ScaleFlows };
            }
            else if (cl.TryValue(arg, "--reps", out string reps))
            {
                if (Int(reps, 1, 100) is int n)
                    o = o with { Reps = n };
                else
                    cl.Fail($"--reps {reps}: expected 1..100");
            }
            else if (cl.TryValue(arg, "--seconds", out string seconds))
            {
                if (Int(seconds, 1, 3600) is int n)
                    o = o with { Seconds = TimeSpan.FromSeconds(n) };
                else
                    cl.Fail($"--seconds {seconds}: expected whole seconds 1..3600");
            }
            else if (cl.TryValue(arg, "--soak", out string soak))
            {
                if (Int(soak, 0, 86400) is int n)
                    o = o with { Soak = TimeSpan.FromSeconds(n) };
                else
                    cl.Fail($"--soak {soak}: expected whole seconds 0..86400");
            }
            else if (cl.TryValue(arg, "--scale", out string scale))
            {
                if (Int(scale, 0, 4_000_000) is int n)
                    o = o with { ScaleFlows = n };
                else
                    cl.Fail($"--scale {scale}: expected a number of flows 0..4000000");
            }
            else if (cl.TryValue(arg, "--copy-range", out string copy))
            {
                if (Int(copy, 64, 65535) is int n)
                    o = o with { CopyRange = n };
                else
                    cl.Fail($"--copy-range {copy}: expected bytes 64..65535");
            }
            else if (cl.TryValue(arg, "--queue", out string queue))
            {
                if (Int(queue, 0, 65534) is int n)
                    o = o with { Queue = n };
                else
                    cl.Fail($"--queue {queue}: expected 0..65534 (ctfw2 also uses the next queue)");
            }
            else if (cl.TryValue(arg, "--setups", out string setups))
            {
                try
                {
                    o = o with { Setups = BenchNames.ParseSetups(setups) };
                }
                catch (FormatException e)
                {
                    cl.Fail($"--setups {setups}: {e.Message}");
                }
            }
            else if (cl.TryValue(arg, "--workloads", out string workloads))
            {
                try
                {
                    o = o with { Workloads = BenchNames.ParseWorkloads(workloads) };
                }
                catch (FormatException e)
                {
                    cl.Fail($"--workloads {workloads}: {e.Message}");
                }
            }
            else if (cl.TryValue(arg, "--output", out string output))
            {
                if (output.Length == 0)
                    cl.Fail("--output needs a file name");
                o = o with { Output = output };
            }
            else if (cl.Error == null)
            {
                cl.Fail($"unknown option '{arg}' for bench");
            }
            if (cl.Error != null)
                break;
        }
        error = cl.Error;
        return error is null ? o : null;
    }

    private static int? Int(string text, int min, int max) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= min && v <= max ? v : null;

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
