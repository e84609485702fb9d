using System.CommandLine;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Commands;

/// <summary>
/// conntrack-tools' filters (<see cref="ConntrackFilter.Definitions"/>: -p, -s, -d, --sport, --state, …)
/// as options of a command, for `ctfw conntrack` and `ctfw top` alike.
/// </summary>
internal sealed class FilterOptions
{
    /// <summary>What shell completion offers for the filters with a fixed set of values.</summary>
    private static readonly Dictionary<string, string[]> s_completions = new(StringComparer.Ordinal)
    {
        ["--proto"] = ["tcp", "udp", "udplite", "icmp", "icmpv6", "gre", "sctp"],
        ["--family"] = ["ipv4", "ipv6"],
        ["--state"] = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2", "NONE"],
        ["--status"] = ["ASSURED", "SEEN_REPLY", "UNREPLIED"],
    };

    private readonly List<Option> _options = [];

    /// <summary>Adds every filter to <paramref name="command"/>, in the help group "Filters".</summary>
    public void AddTo(CtfwCommand command)
    {
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
            _options.Add(option);
            command.Add(option, "Filters");
        }
    }

    /// <summary>The filters given on the command line, or null with a one-line usage error.</summary>
    public ConntrackFilter? Read(ParseResult result, out string? error)
    {
        var filter = new ConntrackFilter();
        foreach (Option option in _options)
        {
            if (result.GetResult(option) is not { Implicit: false } given)
                continue;
            string value = option is Option<string> valued ? result.GetValue(valued) ?? "" : "";
            if (filter.Add(Opt.Used(given, option.Name), value) is { } refused)
            {
                error = refused;
                return null;
            }
        }
        error = null;
        return filter;
    }
}
