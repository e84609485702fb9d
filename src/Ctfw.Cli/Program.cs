using Ctfw.Cli.Commands;

namespace Ctfw.Cli;

internal static class Program
{
    public const string Usage = """
        ctfw — userspace firewall with kernel-faithful connection tracking

        Usage: ctfw COMMAND [OPTIONS]

        Commands:
          run        filter NFQUEUE traffic of this network namespace with conntrack and a ruleset
          lab        prove ctfw classifies like kernel conntrack: namespaces, shadow mode, scenarios, real traffic
          bench      line-rate benchmark: plain, kernel conntrack, a C NFQUEUE loop and ctfw, side by side
          replay     classify every packet of a pcap/pcapng file as kernel conntrack would (and with
                     --rules, give each the verdict `ctfw run` would)
          sysctls    print the conntrack settings ctfw would use (defaults, file, --set, live)
          stats      print the counters of a running `ctfw run`
          conntrack  list, count or flush the connection table of a running `ctfw run`
          rules      list the ruleset of a running `ctfw run` with its counters (iptables -L -v -n), or zero them
          reload     make a running `ctfw run` re-read its rules file and sysctls (as SIGHUP does)
          help       show this text, or `ctfw help COMMAND`

        Run `ctfw COMMAND --help` for the options of a command.
        """;

    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            if (args.Length >= 2 && args[0] == "help")
                return Dispatch([args[1], "--help"]);
            Console.Out.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        if (args[0] is "--version" or "version")
        {
            Console.Out.WriteLine(typeof(Program).Assembly.GetName().Version?.ToString() ?? "0");
            return 0;
        }
        return Dispatch(args);
    }

    private static int Dispatch(string[] args) => args[0] switch
    {
        "run" => RunCommand.Run(args),
        "replay" => ReplayCommand.Run(args),
        "sysctls" => SysctlsCommand.Run(args),
        "lab" => Lab.LabCommand.Run(args),
        "bench" => Bench.BenchCommand.Run(args),
        "stats" => StatsCommand.Run(args),
        "conntrack" => ConntrackCommand.Run(args),
        "reload" => ReloadCommand.Run(args),
        "rules" => RulesCommand.Run(args),
        _ => Fail($"unknown command '{args[0]}' (try `ctfw --help`)"),
    };

    /// <summary>
    /// Loads a ruleset for a command: errors as <c>file:line:col: message</c> and one closing line
    /// ("…, nothing <paramref name="nothing"/>"), warnings marked; null when it did not load.
    /// </summary>
    public static Ctfw.Rules.Ruleset? LoadRules(string path, string nothing)
    {
        if (!Ctfw.Rules.Ruleset.TryLoadFile(path, out Ctfw.Rules.Ruleset? rules, out IReadOnlyList<Ctfw.Rules.RuleError> errors) || rules is null)
        {
            foreach (Ctfw.Rules.RuleError error in errors)
                Console.Error.WriteLine(error.ToString());
            Console.Error.WriteLine($"ctfw: {path}: {errors.Count} error{(errors.Count == 1 ? "" : "s")}, nothing {nothing}");
            return null;
        }
        foreach (Ctfw.Rules.RuleError warning in rules.Warnings)
            Console.Error.WriteLine($"{warning} (warning)");
        return rules;
    }

    public static int Fail(string message)
    {
        Console.Error.WriteLine($"ctfw: {message}");
        return 2;
    }
}
