using System.Globalization;
using System.Runtime.InteropServices;
using Ctfw.Lab.Network;
using Ctfw.Lab.Scenarios;
using Ctfw.Lab.Traffic;

namespace Ctfw.Cli.Lab;

/// <summary>`ctfw lab`: the A/B demonstration against kernel conntrack (see <see cref="LabRunner"/>).</summary>
internal static class LabCommand
{
    private const string Usage = """
        Usage: ctfw lab [--traffic-seconds N] [--no-traffic] [--no-scenarios] [--scenario TEXT] [--rules FILE]
                        [--table-checks N] [--heavy] [--list]

        Builds client / gateway / server network namespaces joined by veth pairs (IPv4 and IPv6), runs
        `ctfw run --ab kernel` in the gateway, plays the scripted scenario corpus (crafted packets from
        raw sockets; the endpoints' own stacks muted), then real traffic (nginx + wrk HTTP churn, iperf3
        bulk TCP and small UDP, ping) while comparing `conntrack -L` with `ctfw conntrack -L`. Prints
        one row per scenario (packets, agreed, disagreed) and a summary; exits 0 only when every packet
        agreed. Needs root; installs missing tools with apt-get. Removes everything it made on exit,
        Ctrl-C included (exit status 130 then).

          --traffic-seconds N   real-traffic phase length (default 6; 60 for the soak of docs/AB.md)
          --no-traffic          scenarios only
          --no-scenarios        real traffic only
          --scenario TEXT       only scenarios whose name contains TEXT
          --rules FILE          the gateway's ruleset (default rules/lab.rules)
          --table-checks N      table comparisons during the traffic (default 3)
          --heavy               the benchmark load: 16 HTTP connections per family, unpaced bulk TCP,
                                64-byte UDP at 40 Mbit/s (about 80 000 packets/s)
          --list                print the scenario names and exit
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        string? rules = null;
        string? filter = null;
        bool scenarios = true;
        double trafficSeconds = 6;
        int tableChecks = 3;
        TrafficOptions load = TrafficOptions.Default;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (arg == "--list")
            {
                foreach (KernelScenario s in KernelScenarios.All)
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{s.Name,-44} {s.Packets.Count,3} packets  {s.Summary.Split(". ")[0]}"));
                return 0;
            }
            if (cl.TryValue(arg, "--rules", out string r))
            {
                rules = r;
            }
            else if (cl.TryValue(arg, "--scenario", out string f))
            {
                filter = f;
            }
            else if (cl.TryValue(arg, "--traffic-seconds", out string t))
            {
                if (!double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out trafficSeconds) || trafficSeconds is < 1 or > 3600)
                    cl.Fail($"--traffic-seconds {t}: expected 1..3600");
            }
            else if (cl.TryValue(arg, "--table-checks", out string c))
            {
                if (!int.TryParse(c, NumberStyles.None, CultureInfo.InvariantCulture, out tableChecks) || tableChecks > 100)
                    cl.Fail($"--table-checks {c}: expected 0..100");
            }
            else if (arg == "--heavy")
            {
                load = HeavyLoad;
            }
            else if (arg == "--no-traffic")
            {
                trafficSeconds = 0;
            }
            else if (arg == "--no-scenarios")
            {
                scenarios = false;
            }
            else if (cl.Error == null)
            {
                cl.Fail($"unknown option '{arg}' for lab");
            }
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        if (!scenarios && trafficSeconds == 0)
            return Program.Fail("--no-scenarios with --no-traffic leaves nothing to do");
        if (filter is not null && !KernelScenarios.All.Any(s => s.Name.Contains(filter, StringComparison.Ordinal)))
            return Program.Fail($"--scenario {filter}: no scenario name contains it (try `ctfw lab --list`)");

        if (!OperatingSystem.IsLinux() || Interop.Geteuid() != 0)
        {
            Console.Error.WriteLine("ctfw lab: needs root (it creates network namespaces, iptables rules and an NFQUEUE consumer); run `sudo ./ctfw lab`");
            return 1;
        }
        rules ??= FindDefaultRules();
        if (rules is null || !File.Exists(rules))
            return Program.Fail(rules is null ? "cannot find rules/lab.rules next to this build; pass --rules FILE" : $"--rules {rules}: no such file");
        rules = Path.GetFullPath(rules);

        if (!EnsureTools(trafficSeconds > 0))
            return 1;

        using var cancel = new CancellationTokenSource();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // clean up first, then exit
            if (!cancel.IsCancellationRequested)
                Console.Error.WriteLine("ctfw lab: interrupted; removing the namespaces and stopping ctfw");
            cancel.Cancel();
        }
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        var options = new LabOptions(rules, filter, scenarios, TimeSpan.FromSeconds(trafficSeconds), tableChecks, load);
        try
        {
            return new LabRunner(options, Console.Out, cancel.Token).Run();
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException or OperationCanceledException)
        {
            Console.Error.WriteLine($"ctfw lab: {(cancel.IsCancellationRequested ? "interrupted" : e.Message)}");
            return cancel.IsCancellationRequested ? LabRunner.InterruptedExit : 1;
        }
    }

    /// <summary>The load of the line-rate benchmark (issue 6), for the 60 s shadow-mode soak of docs/AB.md.</summary>
    internal static readonly TrafficOptions HeavyLoad = TrafficOptions.Default with
    {
        HttpConnections = 16,
        UdpBitsPerSecond = 40_000_000,
        PingInterval = TimeSpan.FromMilliseconds(100),
    };

    /// <summary>rules/lab.rules of the checkout this binary was built from (the launcher builds into .build/ctfw).</summary>
    private static string? FindDefaultRules()
    {
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "rules", "lab.rules");
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    /// <summary>The lab's own tools (iproute2, iptables, conntrack, ethtool…) and, with traffic, the traffic programs.</summary>
    private static bool EnsureTools(bool traffic)
    {
        List<string> packages = [];
        foreach ((string tool, string package) in s_labTools)
        {
            if (Tool.Find(tool) is null && !packages.Contains(package))
                packages.Add(package);
        }
        if (packages.Count > 0)
        {
            Console.Error.WriteLine($"ctfw lab: installing {string.Join(' ', packages)} (apt-get)");
            if (!AptInstall(packages))
                return false;
        }
        if (Tool.WhyUnavailable() is { } why)
        {
            Console.Error.WriteLine($"ctfw lab: {why}");
            return false;
        }
        if (traffic)
        {
            try
            {
                TrafficTools.EnsureInstalled(Console.Error);
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine($"ctfw lab: {e.Message}");
                return false;
            }
        }
        return true;
    }

    private static readonly (string Tool, string Package)[] s_labTools =
    [
        ("ip", "iproute2"), ("nsenter", "util-linux"), ("iptables", "iptables"), ("ip6tables", "iptables"),
        ("sysctl", "procps"), ("ethtool", "ethtool"), ("conntrack", "conntrack"), ("tcpdump", "tcpdump"), ("timeout", "coreutils"),
    ];

    private static readonly TimeSpan s_aptTimeout = TimeSpan.FromMinutes(10);

    private static bool AptInstall(List<string> packages)
    {
        ToolResult install = Tool.Run(checkExit: false, s_aptTimeout, ["apt-get", "install", "-y", "--no-install-recommends", .. packages]);
        if (install.ExitCode != 0)
        {
            _ = Tool.Run(checkExit: false, s_aptTimeout, "apt-get", "update");
            install = Tool.Run(checkExit: false, s_aptTimeout, ["apt-get", "install", "-y", "--no-install-recommends", .. packages]);
        }
        if (install.ExitCode != 0)
            Console.Error.WriteLine($"ctfw lab: apt-get install {string.Join(' ', packages)} failed: {install.StdErr.Trim()}");
        return install.ExitCode == 0;
    }
}
