using System.Globalization;
using Ctfw.Cli.Daemon;
using Ctfw.Linux.Firewall;
using Ctfw.Rules;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw run`: parses the options, loads the ruleset, then hands over to <see cref="FirewallDaemon"/>.</summary>
internal static class RunCommand
{
    private const string Usage = "Usage: ctfw run --rules FILE [--queue N | --queues N-M] [--install CHAINS] [--fail-closed]\n"
        + "                [--copy-range BYTES] [--set NAME=VALUE]... [--sysctl-file FILE] [--sysctl-live]\n\n"
        + "Filters the packets of NFQUEUE queues in the current network namespace with conntrack and the\n"
        + "ruleset, until SIGTERM or SIGINT; then prints counters to stderr and exits 0.\n\n"
        + "  --rules FILE          iptables-save style ruleset (*filter: INPUT, FORWARD, OUTPUT)\n"
        + "  --queue N             NFQUEUE queue number (default 0)\n"
        + "  --queues N-M          one queue and one worker thread per number, N to M\n"
        + "  --install CHAINS      put NFQUEUE jumps into these filter chains (INPUT,OUTPUT,FORWARD) for\n"
        + "                        IPv4 and IPv6, removed at exit (queue-balance for a range)\n"
        + "  --fail-closed         drop instead of accept while ctfw cannot take packets (no queue\n"
        + "                        bypass, no fail-open)\n"
        + "  --copy-range BYTES    bytes of each packet to copy from the kernel (default all)\n\n"
        + "Conntrack settings start from this namespace's live sysctls, then:\n" + SettingsOptions.Help;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var settingsOptions = new SettingsOptions();
        // The daemon judges this namespace's traffic: its sysctls are the baseline, files and --set refine them.
        settingsOptions.TryParse(cl, "--sysctl-live");
        string? rulesPath = null;
        ushort first = 0, last = 0;
        List<IptablesHook> install = [];
        bool failClosed = false;
        uint copyRange = 0xFFFF;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (cl.TryValue(arg, "--rules", out string rules))
            {
                rulesPath = rules;
            }
            else if (cl.TryValue(arg, "--queue", out string queue))
            {
                if (!TryParseQueue(queue, out first))
                    cl.Fail($"--queue {queue}: expected a number 0..65535");
                last = first;
            }
            else if (cl.TryValue(arg, "--queues", out string queues))
            {
                if (!TryParseRange(queues, out first, out last))
                    cl.Fail($"--queues {queues}: expected N-M with 0 <= N <= M <= 65535");
            }
            else if (cl.TryValue(arg, "--install", out string chains))
            {
                if (!TryParseHooks(chains, install))
                    cl.Fail($"--install {chains}: expected a comma-separated list of INPUT, OUTPUT, FORWARD");
            }
            else if (cl.TryValue(arg, "--copy-range", out string range))
            {
                if (!uint.TryParse(range, NumberStyles.None, CultureInfo.InvariantCulture, out copyRange) || copyRange is < 40 or > 0xFFFF)
                    cl.Fail($"--copy-range {range}: expected 40..65535 bytes");
            }
            else if (arg == "--fail-closed")
            {
                failClosed = true;
            }
            else if (!settingsOptions.TryParse(cl, arg) && cl.Error == null)
            {
                cl.Fail($"unknown option '{arg}' for run");
            }
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        if (rulesPath is null)
            return Program.Fail("run needs --rules FILE (try `ctfw run --help`)");

        if (!Ruleset.TryLoadFile(rulesPath, out Ruleset? ruleset, out IReadOnlyList<RuleError> errors) || ruleset is null)
        {
            foreach (RuleError error in errors)
                Console.Error.WriteLine(error.ToString());
            Console.Error.WriteLine($"ctfw: {rulesPath}: {errors.Count} error{(errors.Count == 1 ? "" : "s")}, nothing started");
            return 2;
        }
        foreach (RuleError warning in ruleset.Warnings)
            Console.Error.WriteLine($"{warning} (warning)");

        var settings = settingsOptions.Build(out string? settingsError);
        if (settings is null)
            return Program.Fail(settingsError!);

        var options = new DaemonOptions(ruleset, settings, first, last, install, failClosed, copyRange);
        using var daemon = new FirewallDaemon(options, Console.Error);
        return daemon.Run();
    }

    private static bool TryParseQueue(string text, out ushort queue) =>
        ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out queue);

    private static bool TryParseRange(string text, out ushort first, out ushort last)
    {
        last = 0;
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
            return TryParseQueue(text, out first) && (last = first) == first;
        return TryParseQueue(text[..dash], out first) && TryParseQueue(text[(dash + 1)..], out last) && first <= last;
    }

    private static bool TryParseHooks(string text, List<IptablesHook> hooks)
    {
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            IptablesHook? hook = part.ToUpperInvariant() switch
            {
                "INPUT" => IptablesHook.Input,
                "OUTPUT" => IptablesHook.Output,
                "FORWARD" => IptablesHook.Forward,
                _ => null,
            };
            if (hook is not { } h)
                return false;
            if (!hooks.Contains(h))
                hooks.Add(h);
        }
        return hooks.Count > 0;
    }
}
