using System.Diagnostics;
using System.Globalization;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>
/// Real programs making real traffic from a client namespace to a server namespace (through whatever
/// routes between them — the lab's gateway, with or without ctfw): nginx serving wrk's
/// connection-per-request load over IPv4 and IPv6, an iperf3 TCP bulk stream over IPv4, a paced
/// iperf3 UDP stream of small datagrams over IPv6, and ping over both. Everything runs at once for
/// the given duration; each client stops by itself and prints its summary, which becomes the report.
/// <para>
/// Every process is a child of this one, started through nsenter, and every one is ended on every
/// way out: normal completion, an exception, cancellation, a terminating signal to this process and
/// Environment.Exit (see <see cref="ChildGroup"/>). Servers get SIGTERM, then SIGKILL for their whole
/// process tree. Only a SIGKILL of this process can leave them behind; the next
/// <see cref="KernelLab"/> ends those when it removes the dead run's namespaces.
/// </para>
/// </summary>
public static class TrafficMix
{
    private static readonly TimeSpan s_clientStopGrace = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan s_poll = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// Lets a <see cref="KernelLab"/> endpoint's own stack answer again: the lab mutes client and
    /// server (INPUT DROP) so crafted packets get no replies, which would also stop every real connection.
    /// </summary>
    public static void Unmute(string netns)
    {
        Tool.RunIn(netns, "iptables", "-F", "INPUT");
        Tool.RunIn(netns, "ip6tables", "-F", "INPUT");
    }

    /// <summary>
    /// Runs the workloads of <paramref name="options"/> for <paramref name="duration"/> (each rounded up
    /// to whole seconds; <see cref="TrafficOptions.Durations"/> overrides it per workload) and returns
    /// what each achieved. Tool failures are reported in <see cref="TrafficReport.Problems"/>, not thrown.
    /// </summary>
    /// <exception cref="InvalidOperationException">
    /// A program is missing (see <see cref="TrafficTools.EnsureInstalled"/>), or a server exited or did
    /// not listen within <see cref="TrafficOptions.Grace"/>; the message carries its stderr.
    /// </exception>
    /// <exception cref="OperationCanceledException">
    /// <paramref name="cancellationToken"/> was cancelled, or this process got SIGINT, SIGTERM, SIGHUP or
    /// SIGQUIT during the run (see <see cref="ChildGroup"/>); every child is gone by then.
    /// </exception>
    public static TrafficReport Run(string clientNs, string serverNs, TimeSpan duration, TrafficOptions options, TextWriter log,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(clientNs);
        ArgumentException.ThrowIfNullOrEmpty(serverNs);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(duration, TimeSpan.Zero);
        options.Validate();
        Workloads workloads = options.Workloads & Workloads.All;
        if (workloads == Workloads.None)
            throw new ArgumentException("no workload selected", nameof(options));
        IReadOnlyList<TrafficProgram> missing = TrafficTools.Missing(workloads);
        if (missing.Count != 0)
            throw new InvalidOperationException(TrafficTools.Describe(missing));

        DirectoryInfo scratch = Directory.CreateTempSubdirectory("ctfw-traffic-");
        try
        {
            using var group = new ChildGroup { AfterSignal = () => DeleteScratch(scratch) };
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, group.Interrupted);
            var site = new HttpSite(scratch.FullName);
            StartServers(group, serverNs, workloads, options, site, log, stop.Token);

            List<string> problems = [];
            List<Client> clients = [];
            var clock = Stopwatch.StartNew();
            foreach (Workloads w in TrafficOptions.Each)
            {
                if ((workloads & w) == 0)
                    continue;
                TimeSpan d = options.DurationOf(w, duration);
                clients.Add(new Client(w, d, group.StartClient(TrafficOptions.NameOf(w), clientNs, ClientArgs(w, d, options, site))));
            }
            log.WriteLine($"traffic: running {string.Join(", ", clients.Select(c => $"{TrafficOptions.NameOf(c.Workload)} {c.Duration.TotalSeconds:0} s"))}");

            WaitForClients(clients, options.Grace, problems, stop.Token);
            TimeSpan elapsed = clock.Elapsed;
            stop.Token.ThrowIfCancellationRequested(); // a signal may have killed the clients we just saw exit
            foreach (ChildProcess s in group.Servers)
            {
                if (s.HasExited)
                    problems.Add($"{s.Name} exited early with {s.ExitCode}: {HttpLoadResult.Excerpt(s.StdErr)}");
            }
            group.StopServers();

            return Report(workloads, elapsed, clients, problems);
        }
        finally
        {
            // The group is disposed by now (children killed and reaped), so nothing still writes here.
            DeleteScratch(scratch);
        }
    }

    private static void DeleteScratch(DirectoryInfo scratch)
    {
        try
        {
            scratch.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Best effort (and already gone after a signal): a temp directory left behind is harmless.
        }
    }

    private sealed record Client(Workloads Workload, TimeSpan Duration, ChildProcess Process)
    {
        public bool Interrupted { get; set; }
    }

    private static void StartServers(ChildGroup group, string serverNs, Workloads workloads, TrafficOptions o, HttpSite site, TextWriter log,
        CancellationToken cancellationToken)
    {
        List<string> endpoints = [];
        if ((workloads & Workloads.Http) != 0)
        {
            List<string> listen = [];
            if ((workloads & Workloads.HttpV4) != 0)
                listen.Add(Invariant($"{o.ServerV4}:{o.HttpPort}"));
            if ((workloads & Workloads.HttpV6) != 0)
                listen.Add(Invariant($"[{o.ServerV6}]:{o.HttpPort}"));
            site.Write(listen, o.NginxWorkers, o.HttpLargeEvery);
            group.StartServer("nginx", serverNs, site.NginxArgs());
            endpoints.AddRange(listen);
        }
        // One iperf3 server runs one test at a time, so each client stream has its own.
        if ((workloads & Workloads.TcpBulkV4) != 0)
        {
            group.StartServer("iperf3 -s (tcp4)", serverNs, ["iperf3", "-s", "-B", o.ServerV4, "-p", Invariant($"{o.TcpBulkPort}")]);
            endpoints.Add(Invariant($"{o.ServerV4}:{o.TcpBulkPort}"));
        }
        if ((workloads & Workloads.UdpV6) != 0)
        {
            // The UDP test is set up over a TCP control connection on the same port.
            group.StartServer("iperf3 -s (udp6)", serverNs, ["iperf3", "-s", "-B", o.ServerV6, "-p", Invariant($"{o.UdpPort}")]);
            endpoints.Add(Invariant($"[{o.ServerV6}]:{o.UdpPort}"));
        }
        if (endpoints.Count == 0)
            return;

        // Asking the server namespace's socket table sends no packet, so the firewall under test sees
        // only the workloads' own traffic.
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (ChildProcess s in group.Servers)
            {
                if (s.HasExited)
                    throw new InvalidOperationException($"{s.Name} exited with {s.ExitCode} while starting: {HttpLoadResult.Excerpt(s.StdErr + s.StdOut)}");
            }
            IReadOnlySet<string> listening = ParseListening(Tool.RunIn(serverNs, "ss", "-Hltn"));
            if (endpoints.All(listening.Contains))
                break;
            if (clock.Elapsed > o.Grace)
            {
                string stderr = string.Join("; ", group.Servers.Select(s => $"{s.Name}: {HttpLoadResult.Excerpt(s.StdErr)}"));
                throw new InvalidOperationException(
                    $"servers not listening on {string.Join(", ", endpoints.Where(e => !listening.Contains(e)))} after {o.Grace.TotalSeconds:0} s ({stderr})");
            }
            cancellationToken.WaitHandle.WaitOne(s_poll);
        }
        log.WriteLine($"traffic: servers listening on {string.Join(", ", endpoints)} after {clock.ElapsedMilliseconds} ms");
    }

    /// <summary>The local address:port column of <c>ss -Hltn</c> (e.g. <c>10.99.2.2:80</c>, <c>[fd99:2::2]:80</c>, <c>*:5201</c>).</summary>
    internal static IReadOnlySet<string> ParseListening(string ssOutput)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (string line in ssOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length >= 4)
                set.Add(cols[3]);
        }
        return set;
    }

    /// <summary>The client command line of one workload; each stops by itself after <paramref name="d"/>.</summary>
    public static IReadOnlyList<string> ClientArgs(Workloads workload, TimeSpan d, TrafficOptions o, HttpSite site)
    {
        string seconds = Invariant($"{(long)Math.Ceiling(d.TotalSeconds)}");
        return workload switch
        {
            Workloads.HttpV4 => Wrk(Invariant($"http://{o.ServerV4}:{o.HttpPort}/")),
            Workloads.HttpV6 => Wrk(Invariant($"http://[{o.ServerV6}]:{o.HttpPort}/")),
            Workloads.TcpBulkV4 =>
                ["iperf3", "-c", o.ServerV4, "-p", Invariant($"{o.TcpBulkPort}"), "-t", seconds, "-J", "--connect-timeout", "3000",
                 .. o.TcpBulkBitsPerSecond > 0 ? (string[])["-b", Invariant($"{o.TcpBulkBitsPerSecond}")] : []],
            Workloads.UdpV6 =>
                ["iperf3", "-c", o.ServerV6, "-p", Invariant($"{o.UdpPort}"), "-t", seconds, "-J", "--connect-timeout", "3000",
                 "-u", "-l", Invariant($"{o.UdpPayloadBytes}"), "-b", Invariant($"{o.UdpBitsPerSecond}")],
            // -c packets at -i spacing fill the duration; -W then bounds the wait for the last replies.
            Workloads.PingV4 => Ping("-4", o.ServerV4),
            Workloads.PingV6 => Ping("-6", o.ServerV6),
            _ => throw new ArgumentOutOfRangeException(nameof(workload), workload, "not a single workload"),
        };

        string[] Wrk(string url) =>
            ["wrk", "-t", "1", "-c", Invariant($"{Math.Max(1, o.HttpConnections)}"), "-d", seconds + "s", "--latency",
             "-H", "Connection: close", "-s", site.WrkScriptPath, url];

        string[] Ping(string family, string address) =>
            ["ping", family, "-n", "-i", Invariant($"{o.PingInterval.TotalSeconds:0.###}"),
             "-c", Invariant($"{Math.Max(1, (long)Math.Round(d.TotalSeconds / o.PingInterval.TotalSeconds))}"), "-W", "1", address];
    }

    /// <summary>
    /// Waits for every client to finish on its own. One still running <paramref name="grace"/> past its
    /// duration gets SIGINT (wrk, iperf3 and ping all print their summary on it), then SIGKILL.
    /// </summary>
    private static void WaitForClients(List<Client> clients, TimeSpan grace, List<string> problems, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool running = false;
            foreach (Client c in clients)
            {
                if (c.Process.HasExited)
                    continue;
                if (clock.Elapsed > c.Duration + grace && !c.Interrupted)
                {
                    c.Interrupted = true;
                    problems.Add($"{c.Process.Name}: still running {grace.TotalSeconds:0} s past its {c.Duration.TotalSeconds:0} s; interrupted");
                    c.Process.Stop(ChildProcess.SigInt, s_clientStopGrace);
                    continue;
                }
                running = true;
            }
            if (!running)
                break;
            cancellationToken.WaitHandle.WaitOne(s_poll);
        }
        foreach (Client c in clients)
            c.Process.WaitForExit(Timeout.InfiniteTimeSpan); // drains the output readers
    }

    private static TrafficReport Report(Workloads workloads, TimeSpan elapsed, List<Client> clients, List<string> problems)
    {
        HttpLoadResult? http4 = null, http6 = null;
        TcpBulkResult? tcp = null;
        UdpStreamResult? udp = null;
        PingResult? ping4 = null, ping6 = null;
        foreach (Client c in clients)
        {
            string output = c.Process.StdOut;
            try
            {
                switch (c.Workload)
                {
                    case Workloads.HttpV4: http4 = HttpLoadResult.Parse(output); break;
                    case Workloads.HttpV6: http6 = HttpLoadResult.Parse(output); break;
                    case Workloads.TcpBulkV4: tcp = TcpBulkResult.Parse(output); break;
                    case Workloads.UdpV6: udp = UdpStreamResult.Parse(output); break;
                    case Workloads.PingV4: ping4 = PingResult.Parse(output); break;
                    case Workloads.PingV6: ping6 = PingResult.Parse(output); break;
                }
            }
            catch (FormatException e)
            {
                string stderr = c.Process.StdErr.Trim();
                problems.Add($"{c.Process.Name} (exit {c.Process.ExitCode}): {e.Message}"
                    + (stderr.Length > 0 ? $"; stderr: {HttpLoadResult.Excerpt(stderr)}" : ""));
            }
        }
        return new TrafficReport(workloads, elapsed, http4, http6, tcp, udp, ping4, ping6, problems);
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
