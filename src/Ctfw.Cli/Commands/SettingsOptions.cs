using Ctfw.Conntrack;
using Ctfw.Linux;

namespace Ctfw.Cli.Commands;

/// <summary>The `--sysctl-file`, `--sysctl-live` and `--set` options shared by commands; applied in that order.</summary>
internal sealed class SettingsOptions
{
    private readonly List<string> _files = [];
    private readonly List<string> _sets = [];
    private bool _live;

    public const string Help = """
          --sysctl-file FILE    name=value lines with kernel sysctl names (e.g. nf_conntrack_tcp_loose=0)
          --sysctl-live         start from this network namespace's /proc/sys/net/netfilter values
          --set NAME=VALUE      set one sysctl (repeatable); applied last
        """;

    /// <summary>Consumes the option if it is one of ours.</summary>
    public bool TryParse(CommandLine cl, string arg)
    {
        if (cl.TryValue(arg, "--sysctl-file", out string file))
        {
            _files.Add(file);
            return true;
        }
        if (cl.TryValue(arg, "--set", out string set))
        {
            _sets.Add(set);
            return true;
        }
        if (arg == "--sysctl-live")
        {
            _live = true;
            return true;
        }
        return false;
    }

    public ConntrackSettings? Build(out string? error)
    {
        var s = new ConntrackSettings();
        error = _live ? LiveSysctls.Apply(s) : null;
        foreach (string file in _files)
        {
            if (error != null)
                break;
            if (!File.Exists(file))
            {
                error = $"sysctl file '{file}' not found";
                break;
            }
            using var reader = new StreamReader(file);
            error = s.Load(reader, file);
        }
        foreach (string set in _sets)
        {
            if (error != null)
                break;
            error = s.SetAssignment(set);
        }
        return error == null ? s : null;
    }
}
