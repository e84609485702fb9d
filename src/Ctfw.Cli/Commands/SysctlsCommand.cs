namespace Ctfw.Cli.Commands;

/// <summary>`ctfw sysctls`: the effective conntrack settings as name=value lines.</summary>
internal static class SysctlsCommand
{
    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("sysctls", "print the conntrack settings ctfw would use (defaults, file, --set, live)", "[OPTIONS]")
        {
            Details = "Prints the effective conntrack settings as name=value lines: the kernel's defaults, then\n"
                + "--sysctl-live, each --sysctl-file and each --set in that order.",
            ExitCodes = [(0, "settings printed"), (CommandLine.UsageExit, "usage error, or a sysctl file or --set that does not load")],
        };
        var settings = new SettingsOptions(offerLive: true);
        settings.AddTo(command);
        command.SetAction(r =>
        {
            if (settings.Read(r).Build(out string? error) is not { } built)
                return Program.Fail(error!);
            foreach (string line in built.Dump())
                Console.Out.WriteLine(line);
            return 0;
        });
        return command;
    }
}
