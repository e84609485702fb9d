using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw reload`: asks a running daemon to re-read its rules file and sysctls, as SIGHUP does.</summary>
internal static class ReloadCommand
{
    private const string Usage = """
        Usage: ctfw reload [--pid N | --control PATH]

        Asks a running `ctfw run` to re-read its rules file (the path it was started with) and its
        sysctls, as SIGHUP does. The new rules take effect from each worker's next batch; flows keep
        their state; unchanged rules keep their counters. A file with an error leaves the old rules
        in force, and every error is printed as file:line:col: message.
        """ + "\n" + InstanceOptions.Help + "\n" + """

        Exit status: 0 when the new rules are in force, 1 when the file has errors (the old rules stay)
        or no daemon answers, 2 for usage errors or several daemons.
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var instance = new InstanceOptions();
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (!instance.TryParse(cl, arg) && cl.Error == null)
                cl.Fail($"unknown option '{arg}' for reload (see `ctfw reload --help`)");
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }

        string? path = instance.Resolve(out string? error, out int exitCode);
        if (path == null)
            return StatsCommand.Failed(error!, exitCode);
        if (!ControlClient.TryRequest(path, ControlProtocol.Reload, out string body, out error))
        {
            // The daemon's message joins its errors with "; " on one line; one per line reads better.
            Console.Error.WriteLine($"ctfw: reload failed: {error!.Replace("; ", "\n  ", StringComparison.Ordinal)}");
            return 1;
        }
        Console.Out.Write(body);
        return 0;
    }
}
