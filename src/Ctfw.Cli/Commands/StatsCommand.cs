using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw stats`: the counters of a running daemon, as a report or as `name value` lines.</summary>
internal static class StatsCommand
{
    private const string Usage = """
        Usage: ctfw stats [--raw] [--pid N | --control PATH]

        Prints the counters of a running `ctfw run`: packets per ctstate, verdicts, INVALID reasons,
        agreement with kernel conntrack, queues, the table, and any other counter the daemon keeps.

          --raw                 `name value` lines exactly as the daemon sends them (for scripts)
        """ + "\n" + InstanceOptions.Help + "\n" + """

        Exit status: 0 on success, 1 when no daemon answers, 2 for usage errors or several daemons.
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var instance = new InstanceOptions();
        bool raw = false;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (arg == "--raw")
                raw = true;
            else if (!instance.TryParse(cl, arg) && cl.Error == null)
                cl.Fail($"unknown option '{arg}' for stats (see `ctfw stats --help`)");
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }

        string? path = instance.Resolve(out string? error, out int exitCode);
        if (path == null)
            return Failed(error!, exitCode);
        if (!ControlClient.TryRequest(path, ControlProtocol.Stats, out string body, out error))
            return Failed(error!, 1);
        Console.Out.Write(raw ? body : StatsReport.Format(ControlClient.ParseStats(body)));
        return 0;
    }

    internal static int Failed(string message, int exitCode)
    {
        Console.Error.WriteLine($"ctfw: {message}");
        return exitCode;
    }
}
