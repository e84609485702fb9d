using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw rules`: `iptables -L [-v] [-n] [-x]` and `iptables -Z` against a running daemon's ruleset
/// and its counters.
/// </summary>
internal static class RulesCommand
{
    private static readonly string s_usage = """
        Usage: ctfw rules [-L] [-v] [-n] [-x] [-Z] [--pid N | --control PATH]

        The ruleset in force in a running `ctfw run` (the start's, or the last reload's), laid out
        as `iptables -L -n` shows the kernel's, and with -v its counters as `iptables -L -v -n`.
        Short options may be bundled (`-nvL`, `-L -vx`).

          -L, --list            list every chain and rule (the default without -Z)
          -Z, --zero            zero every rule and policy counter; with -L, after listing them
                                (the daemon writes one line saying so to its log)
          -v, --verbose         show the pkts and bytes counters and the in and out interfaces
          -n, --numeric         accepted for iptables habits: ctfw lists addresses and ports as
                                numbers always (it resolves no names)
          -x, --exact           exact counts (without it, counts past 99999 are shown in K, M, G, T)

        Counts are of the ruleset in force: rules unchanged by a reload keep theirs; a packet
        counted while -Z runs may be kept or lost.

        Instance:
        """ + "\n" + InstanceOptions.Help + "\n" + """

        Exit status: 0 on success, 1 when no daemon answers or it refuses, 2 for usage errors or several daemons.
        """;

    /// <summary>What the command line asked for.</summary>
    internal readonly record struct Request(bool List, bool Zero, bool Verbose, bool Exact);

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var instance = new InstanceOptions();
        bool list = false, zero = false, verbose = false, exact = false;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(s_usage);
                return 0;
            }
            if (!TryFlags(arg, ref list, ref zero, ref verbose, ref exact) && !instance.TryParse(cl, arg) && cl.Error == null)
                cl.Fail($"unknown option '{arg}' for rules (see `ctfw rules --help`)");
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        Request? request = Check(list, zero, verbose, exact, out string? usage);
        if (request is not Request r)
            return Program.Fail(usage!);

        string? path = instance.Resolve(out string? error, out int exitCode);
        if (path == null)
            return StatsCommand.Failed(error!, exitCode);
        string line = r.List ? ControlProtocol.RulesRequest(r.Verbose, r.Exact, r.Zero) : ControlProtocol.ZeroCounters;
        if (!ControlClient.TryRequest(path, line, out string body, out error))
            return StatsCommand.Failed(error!, 1);
        Console.Out.Write(body);
        return 0;
    }

    /// <summary>
    /// The command the flags make, or null with a usage error: -L is the default, -v and -x only
    /// shape a listing (-n is accepted anywhere, as it changes nothing).
    /// </summary>
    internal static Request? Check(bool list, bool zero, bool verbose, bool exact, out string? error)
    {
        error = null;
        if (zero && !list && (verbose || exact))
        {
            error = "-v and -x shape a listing; use them with -L (`ctfw rules -L -Z -v` lists, then zeroes)";
            return null;
        }
        return new Request(list || !zero, zero, verbose, exact);
    }

    /// <summary>
    /// Consumes `--list`, `--zero`, `--verbose`, `--numeric`, `--exact` and single-dash bundles of
    /// their letters (`-nvxL`); false for anything else (a bundle with any other letter too).
    /// </summary>
    internal static bool TryFlags(string arg, ref bool list, ref bool zero, ref bool verbose, ref bool exact)
    {
        switch (arg)
        {
            case "--list":
                list = true;
                return true;
            case "--zero":
                zero = true;
                return true;
            case "--verbose":
                verbose = true;
                return true;
            case "--numeric":
                return true;
            case "--exact":
                exact = true;
                return true;
        }
        if (arg.Length < 2 || arg[0] != '-' || arg[1] == '-' || arg.AsSpan(1).ContainsAnyExcept("LZvnx"))
            return false;
        foreach (char c in arg.AsSpan(1))
        {
            switch (c)
            {
                case 'L':
                    list = true;
                    break;
                case 'Z':
                    zero = true;
                    break;
                case 'v':
                    verbose = true;
                    break;
                case 'x':
                    exact = true;
                    break;
            }
        }
        return true;
    }
}
