using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw stats`: the counters of a running daemon, as a report or as `name value` lines.</summary>
internal static class StatsCommand
{
    /// <summary>The exit statuses of the commands that talk to a running daemon.</summary>
    internal static readonly (int, string)[] ControlExitCodes =
    [
        (0, "success"),
        (1, "no daemon answers (none running, no such pid or socket, permission denied, a refused or broken connection)"),
        (CommandLine.UsageExit, "usage error, or several daemons are running and none was chosen with --pid or --control"),
    ];

    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("stats", "print the counters of a running `ctfw run`", "[--raw | --json] [--pid N | --control PATH]")
        {
            Details = "Prints the counters of a running `ctfw run`: packets per ctstate, verdicts, INVALID reasons,\n"
                + "agreement with kernel conntrack, queues, the table, and any other counter the daemon keeps;\n"
                + "packets, verdicts and ctstates with their rates over the last 1, 10 and 60 s next to the totals.",
            ExitCodes = ControlExitCodes,
        };
        var raw = Opt.Flag("--raw", "`name value` lines exactly as the daemon sends them (for scripts)");
        var json = Opt.Flag("--json", "one JSON object: {\"counters\": {NAME: VALUE, ...}, \"rates\": {\"1s\": {NAME: PER_SECOND, ...}, \"10s\": ..., \"60s\": ...}}");
        var instance = new InstanceOptions();
        command.Add(raw, null);
        command.Add(json, null);
        instance.AddTo(command);
        command.SetAction(r =>
        {
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
            if (r.GetValue(raw) && r.GetValue(json))
                return Program.Fail("use --raw or --json, not both");
            string? path = instance.Resolve(out string? error, out int exitCode);
            if (path == null)
                return Failed(error!, exitCode);
            if (!ControlClient.TryRequest(path, ControlProtocol.Stats, out string body, out error))
                return Failed(error!, 1);
            Console.Out.Write(r.GetValue(raw) ? body
                : r.GetValue(json) ? StatsReport.FormatJson(ControlClient.ParseStats(body))
                : StatsReport.Format(ControlClient.ParseStats(body)));
            return 0;
        });
        return command;
    }

    internal static int Failed(string message, int exitCode)
    {
        Console.Error.WriteLine($"ctfw: {message}");
        return exitCode;
    }
}
