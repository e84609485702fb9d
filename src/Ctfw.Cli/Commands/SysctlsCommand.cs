namespace Ctfw.Cli.Commands;

internal static class SysctlsCommand
{
    private const string Usage = "Usage: ctfw sysctls [--sysctl-file FILE] [--sysctl-live] [--set NAME=VALUE]...\n\n"
        + "Prints the effective conntrack settings as name=value lines.\n\n" + SettingsOptions.Help;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var opts = new SettingsOptions();
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(Usage);
                return 0;
            }
            if (!opts.TryParse(cl, arg) && cl.Error == null)
                cl.Fail($"unknown option '{arg}' for sysctls");
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        var settings = opts.Build(out string? error);
        if (settings == null)
            return Program.Fail(error!);
        foreach (string line in settings.Dump())
            Console.Out.WriteLine(line);
        return 0;
    }
}
