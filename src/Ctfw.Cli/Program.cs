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
          replay     classify every packet of a pcap/pcapng file as kernel conntrack would
          sysctls    print the conntrack settings ctfw would use (defaults, file, --set, live)
          stats      print the counters of a running `ctfw run`
          conntrack  list, count or flush the connection table of a running `ctfw run`
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
        _ => Fail($"unknown command '{args[0]}' (try `ctfw --help`)"),
    };

    public static int Fail(string message)
    {
        Console.Error.WriteLine($"ctfw: {message}");
        return 2;
    }
}
