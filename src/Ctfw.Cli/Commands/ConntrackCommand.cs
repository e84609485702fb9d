using System.CommandLine;
using System.Globalization;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// `ctfw conntrack`: `conntrack -L/-C/-D/-F` against a running daemon's table, with conntrack-tools'
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

    /// <summary>What shell completion offers for the filters with a fixed set of values.</summary>
    private static readonly Dictionary<string, string[]> s_completions = new(StringComparer.Ordinal)
    {
        ["--proto"] = ["tcp", "udp", "udplite", "icmp", "icmpv6", "gre", "sctp"],
        ["--family"] = ["ipv4", "ipv6"],
        ["--state"] = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2", "NONE"],
        ["--status"] = ["ASSURED", "SEEN_REPLY", "UNREPLIED"],
    };

    public static CtfwCommand Create()
    {
        var command = new CtfwCommand("conntrack", "list, count, delete or flush the connection table of a running `ctfw run`",
            "[-L | -C | -D | -F] [FILTER]... [--pid N | --control PATH]")
        {
            Details = "The connection table of a running `ctfw run`, as conntrack-tools shows the kernel's: entries on\n"
                + "stdout, the count line on stderr. Every FILTER given must match.",
            ExitCodes = StatsCommand.ControlExitCodes,
        };
        (Option<bool> Option, Mode Mode)[] modes =
        [
            (Opt.Flag("--dump", "list the entries that match every FILTER (the default)", "-L"), Mode.List),
            (Opt.Flag("--count", "print how many entries match", "-C"), Mode.Count),
            (Opt.Flag("--delete", "remove the entries that match every FILTER (all without a filter), printing them as they were; "
                + "their next packets are classified afresh (e.g. dropped after a reload that no longer allows them)", "-D"), Mode.Delete),
            (Opt.Flag("--flush", "remove every entry", "-F"), Mode.Flush),
        ];
        foreach ((Option<bool> option, _) in modes)
            command.Add(option, "Commands");
        List<Option> filters = [];
        foreach ((string[] names, string? valueName, string description) in ConntrackFilter.Definitions)
        {
            // The long name is the option's name, the others its aliases (-p, --proto); the help wraps the text itself.
            string[] aliases = names[..^1];
            string text = description.Replace('\n', ' ');
            Option option = valueName is null
                ? Opt.Flag(names[^1], text, aliases)
                : new Option<string>(names[^1], aliases) { HelpName = valueName, Description = text };
            if (s_completions.TryGetValue(names[^1], out string[]? values))
                option.CompletionSources.Add(values);
            filters.Add(option);
            command.Add(option, "Filters");
        }
        var instance = new InstanceOptions();
        instance.AddTo(command);

        command.SetAction(r =>
        {
            Mode? mode = null;
            foreach ((Option<bool> option, Mode m) in modes)
            {
                if (!r.GetValue(option))
                    continue;
                if (mode != null && mode != m)
                    return Program.Fail("use one of -L, -C, -D and -F");
                mode = m;
            }
            var filter = new ConntrackFilter();
            foreach (Option option in filters)
            {
                if (r.GetResult(option) is not { Implicit: false } given)
                    continue;
                string value = option is Option<string> valued ? r.GetValue(valued) ?? "" : "";
                if (filter.Add(Opt.Used(given, option.Name), value) is { } refused)
                    return Program.Fail(refused);
            }
            if (instance.Read(r) is { } usage)
                return Program.Fail(usage);
            if (filter.Validate() is string invalid)
                return Program.Fail(invalid);
            return Execute(mode ?? Mode.List, filter, instance);
        });
        return command;
    }

    private static int Execute(Mode mode, ConntrackFilter filter, InstanceOptions instance)
    {
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
