using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>`ctfw reload`: asks a running daemon to re-read its rules file and sysctls, as SIGHUP does.</summary>
internal static class ReloadCommand
{
    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("reload", "make a running `ctfw run` re-read its rules file and sysctls (as SIGHUP does)", "[--pid N | --control PATH]")
        {
            Details = """
                Asks a running `ctfw run` to re-read its rules file (the path it was started with) and its
                sysctls, as SIGHUP does. The new rules take effect from each worker's next batch; flows keep
                their state; unchanged rules keep their counters. A file with an error leaves the old rules
                in force, and every error is printed as file:line:col: message.
                """,
            ExitCodes =
            [
                (0, "the new rules are in force"),
                (1, "the file has errors (the old rules stay), or no daemon answers"),
                (CommandLine.UsageExit, "usage error, or several daemons are running and none was chosen"),
            ],
        };
        var instance = new InstanceOptions();
        instance.AddTo(command);
        command.SetAction(r =>
        {
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
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
        });
        return command;
    }
}
