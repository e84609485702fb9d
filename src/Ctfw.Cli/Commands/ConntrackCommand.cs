using System.Globalization;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw conntrack`: `conntrack -L/-C/-F` against a running daemon's table, with conntrack-tools'
/// filters and output (entries on stdout, the count line on stderr).
/// </summary>
internal static class ConntrackCommand
{
    private enum Mode
    {
        List,
        Count,
        Flush,
        Delete,
    }

    private static readonly string s_usage = """
        Usage: ctfw conntrack [-L | -C | -D | -F] [FILTER]... [--pid N | --control PATH]

        The connection table of a running `ctfw run`, as conntrack-tools shows the kernel's.

          -L, --dump            list the entries that match every FILTER (the default)
          -C, --count           print how many entries match
          -D, --delete          remove the entries that match every FILTER (all without a filter),
                                printing them as they were; their next packets are classified afresh
                                (e.g. dropped after a reload that no longer allows them)
          -F, --flush           remove every entry

        Filters:
        """ + "\n" + ConntrackFilter.Help + "\nInstance:\n" + InstanceOptions.Help + "\n" + """

        Exit status: 0 on success, 1 when no daemon answers, 2 for usage errors or several daemons.
        """;

    public static int Run(string[] args)
    {
        var cl = new CommandLine(args, 1);
        var filter = new ConntrackFilter();
        var instance = new InstanceOptions();
        Mode? mode = null;
        while (cl.TryNext(out string arg))
        {
            if (arg is "-h" or "--help")
            {
                Console.Out.WriteLine(s_usage);
                return 0;
            }
            Mode? command = arg switch
            {
                "-L" or "--dump" => Mode.List,
                "-C" or "--count" => Mode.Count,
                "-F" or "--flush" => Mode.Flush,
                "-D" or "--delete" => Mode.Delete,
                _ => null,
            };
            if (command is Mode m)
            {
                if (mode != null && mode != m)
                    cl.Fail("use one of -L, -C, -D and -F");
                mode = m;
            }
            else if (!instance.TryParse(cl, arg) && cl.Error == null && !filter.TryParse(cl, arg) && cl.Error == null)
            {
                cl.Fail($"unknown option '{arg}' for conntrack (see `ctfw conntrack --help`)");
            }
            if (cl.Error != null)
                return Program.Fail(cl.Error);
        }
        if (filter.Validate() is string invalid)
            return Program.Fail(invalid);
        mode ??= Mode.List;
        if (mode == Mode.Flush && !filter.IsEmpty)
            return Program.Fail("-F empties the whole table; filters apply to -L and -C");

        string? path = instance.Resolve(out string? error, out int exitCode);
        if (path == null)
            return StatsCommand.Failed(error!, exitCode);

        if (mode == Mode.Flush)
        {
            if (!ControlClient.TryRequest(path, ControlProtocol.Flush, out string flushed, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Error.WriteLine($"ctfw conntrack: connection tracking table has been emptied ({flushed.Trim()} entries).");
            return 0;
        }

        if (mode == Mode.Delete)
        {
            if (!ControlClient.TryRequest(path, ControlProtocol.DeleteRequest(filter.Args), out string deleted, out error))
                return StatsCommand.Failed(error!, 1);
            Console.Out.Write(deleted);
            Console.Error.WriteLine($"ctfw conntrack: {Lines(deleted)} flow entries have been deleted.");
            return 0;
        }

        if (!ControlClient.TryRequest(path, ControlProtocol.ListRequest(filter.Args), out string body, out error))
            return StatsCommand.Failed(error!, 1);
        int entries = Lines(body);
        if (mode == Mode.Count)
        {
            Console.Out.WriteLine(entries.ToString(CultureInfo.InvariantCulture));
            return 0;
        }
        Console.Out.Write(body);
        Console.Error.WriteLine($"ctfw conntrack: {entries} flow entries have been shown.");
        return 0;
    }

    private static int Lines(string body)
    {
        int lines = 0;
        foreach (char c in body)
        {
            if (c == '\n')
                lines++;
        }
        return lines;
    }
}
