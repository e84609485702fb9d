using System.CommandLine;
using System.Globalization;
using Ctfw.Cli.Commands;
using System.Runtime.InteropServices;
using Ctfw.Lab.Network;
using Ctfw.Lab.Scenarios;
using Ctfw.Lab.Traffic;

namespace Ctfw.Cli.Lab;

/// <summary>`ctfw lab`: the A/B demonstration against kernel conntrack (see <see cref="LabRunner"/>).</summary>
internal static class LabCommand
{
    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("lab", "prove ctfw classifies like kernel conntrack: namespaces, shadow mode, scenarios, real traffic", "[OPTIONS]")
        {
            Details = """
                Builds client / gateway / server network namespaces joined by veth pairs (IPv4 and IPv6), runs
                `ctfw run --ab kernel` in the gateway, plays the scripted scenario corpus (crafted packets from
                raw sockets; the endpoints' own stacks muted), then real traffic (nginx + wrk HTTP churn, iperf3
                bulk TCP and small UDP, ping) while comparing `conntrack -L` with `ctfw conntrack -L`. Prints
                one row per scenario (packets, agreed, disagreed) and a summary. With --offload, ctfw runs with
                --offload established: packets of offloaded flows pass the gateway without reaching ctfw; they
                are counted from ctfw's iptables rule counters (a column of their own, and in the summary) and
                every packet ctfw does see must still agree. Needs root; installs missing tools with apt-get.
                Removes everything it made on exit, Ctrl-C included.
                """,
            ExitCodes =
            [
                (0, "every packet agreed (or --list)"),
                (1, "a disagreement, a failure, not root, or a tool that cannot be installed"),
                (CommandLine.UsageExit, "usage error, or the rules file is missing"),
                (LabRunner.InterruptedExit, "interrupted (SIGINT, SIGTERM) after removing what it made"),
            ],
        };
        Option<double> trafficSeconds = Opt.Value("--traffic-seconds", "N", "real-traffic phase length (default 6; 60 for the soak of docs/AB.md)",
            (string t, out double v) => double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out v) && v is >= 1 and <= 3600, "1..3600");
        Option<bool> noTraffic = Opt.Flag("--no-traffic", "scenarios only");
        Option<bool> noScenarios = Opt.Flag("--no-scenarios", "real traffic only");
        Option<string> scenario = Opt.Text("--scenario", "TEXT", "only scenarios whose name contains TEXT");
        Option<string> rulesOption = Opt.Text("--rules", "FILE", "the gateway's ruleset (default rules/lab.rules)");
        Option<int> tableChecks = Opt.Int("--table-checks", "N", "table comparisons during the traffic (default 3)", 0, 100);
        Option<bool> heavy = Opt.Flag("--heavy", "the benchmark load: 16 HTTP connections per family, unpaced bulk TCP, 64-byte UDP at 40 Mbit/s (about 80 000 packets/s)");
        Option<bool> offload = Opt.Flag("--offload",
            "run ctfw with --offload established: packets of offloaded flows pass the gateway without ctfw and are counted, not compared");
        Option<bool> list = Opt.Flag("--list", "print the scenario names and exit");
        foreach (Option option in (Option[])[trafficSeconds, noTraffic, noScenarios, scenario, rulesOption, tableChecks, heavy, offload, list])
            command.Add(option, null);
        command.SetAction(r =>
        {
            if (r.GetValue(list))
            {
                foreach (KernelScenario s in KernelScenarios.All)
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{s.Name,-44} {s.Packets.Count,3} packets  {s.Summary.Split(". ")[0]}"));
                return 0;
            }
            double seconds = r.GetValue(noTraffic) ? 0 : !r.Given(trafficSeconds) ? 6 : r.GetValue(trafficSeconds);
            return Run(r.GetValue(rulesOption), r.GetValue(scenario), !r.GetValue(noScenarios), seconds,
                !r.Given(tableChecks) ? 3 : r.GetValue(tableChecks), r.GetValue(heavy) ? HeavyLoad : TrafficOptions.Default, r.GetValue(offload));
        });
        return command;
    }

    private static int Run(string? rules, string? filter, bool scenarios, double trafficSeconds, int tableChecks, TrafficOptions load, bool offload)
    {
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
        var options = new LabOptions(rules, filter, scenarios, TimeSpan.FromSeconds(trafficSeconds), tableChecks, load, offload);
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
