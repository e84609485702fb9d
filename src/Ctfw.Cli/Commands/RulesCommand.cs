using System.CommandLine;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw rules`: `iptables -L [-v] [-n] [-x]` and `iptables -Z` against a running daemon's ruleset
/// and its counters.
/// </summary>
internal static class RulesCommand
{
    /// <summary>What the command line asked for.</summary>
    internal readonly record struct Request(bool List, bool Zero, bool Verbose, bool Exact);

    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("rules", "list the ruleset of a running `ctfw run` with its counters (iptables -L -v -n), or zero them",
            "[-L] [-v] [-n] [-x] [-Z] [--pid N | --control PATH]")
        {
            Details = """
                The ruleset in force in a running `ctfw run` (the start's, or the last reload's), laid out
                as `iptables -L -n` shows the kernel's, and with -v its counters as `iptables -L -v -n`.
                Short options may be bundled (`-nvL`, `-L -vx`).
                """,
            Notes = """
                Counts are of the ruleset in force: rules unchanged by a reload keep theirs; a packet
                counted while -Z runs may be kept or lost.
                """,
            ExitCodes =
            [
                (0, "success"),
                (1, "no daemon answers, or it refuses"),
                (CommandLine.UsageExit, "usage error, or several daemons are running and none was chosen"),
            ],
        };
        var list = Opt.Flag("--list", "list every chain and rule (the default without -Z)", "-L");
        var zero = Opt.Flag("--zero", "zero every rule and policy counter; with -L, after listing them (the daemon writes one line saying so to its log)", "-Z");
        var verbose = Opt.Flag("--verbose", "show the pkts and bytes counters and the in and out interfaces", "-v");
        var numeric = Opt.Flag("--numeric", "accepted for iptables habits: ctfw lists addresses and ports as numbers always (it resolves no names)", "-n");
        var exact = Opt.Flag("--exact", "exact counts (without it, counts past 99999 are shown in K, M, G, T)", "-x");
        var instance = new InstanceOptions();
        foreach (Option<bool> flag in (Option<bool>[])[list, zero, verbose, numeric, exact])
            command.Add(flag, null);
        instance.AddTo(command);
        command.SetAction(r =>
        {
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
            if (Check(r.GetValue(list), r.GetValue(zero), r.GetValue(verbose), r.GetValue(exact), out string? flagsError) is not Request request)
                return Program.Fail(flagsError!);
            string? path = instance.Resolve(out string? error, out int exitCode);
            if (path == null)
                return StatsCommand.Failed(error!, exitCode);
            string line = request.List ? ControlProtocol.RulesRequest(request.Verbose, request.Exact, request.Zero) : ControlProtocol.ZeroCounters;
            if (!ControlClient.TryRequest(path, line, out string body, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Out.Write(body);
            return 0;
        });
        return command;
    }

    /// <summary>The request `ctfw rules ARGS…` makes (args without "rules"), or null with the usage error (tests).</summary>
    internal static Request? Parse(string[] args, out string? error)
    {
        Request? request = null;
        CtfwCommand command = Create();
        string[] line = ["rules", .. args];
        ParseResult result = CommandLine.Parse(CommandLine.Root(command), line);
        error = CommandLine.FirstError(result, line);
        if (error != null)
            return null;
        bool Flag(string name) => result.GetValue<bool>(name);
        request = Check(Flag("--list"), Flag("--zero"), Flag("--verbose"), Flag("--exact"), out error);
        return request;
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
}
