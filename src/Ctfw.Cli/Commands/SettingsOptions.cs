using System.CommandLine;
using Ctfw.Conntrack;
using Ctfw.Linux;

namespace Ctfw.Cli.Commands;

/// <summary>
/// The `--sysctl-file`, `--set` (and for commands that judge no live traffic `--sysctl-live`) options:
/// the conntrack settings, applied live sysctls first, then files, then each --set.
/// </summary>
internal sealed class SettingsOptions
{
    private readonly Option<string[]> _files = Opt.Repeated("--sysctl-file", "FILE",
        "name=value lines with kernel sysctl names (e.g. nf_conntrack_tcp_loose=0); repeatable, read in order");
    private readonly Option<string[]> _sets = Opt.Repeated("--set", "NAME=VALUE", "set one sysctl (repeatable); applied last");
    private readonly Option<bool>? _live;

    /// <param name="offerLive">whether --sysctl-live is an option (run always starts from the live values)</param>
    public SettingsOptions(bool offerLive)
    {
        if (offerLive)
            _live = Opt.Flag("--sysctl-live", "start from this network namespace's /proc/sys/net/netfilter values");
    }

    public void AddTo(CtfwCommand command, string? group = null)
    {
        command.Add(_files, group);
        if (_live != null)
            command.Add(_live, group);
        command.Add(_sets, group);
    }

    /// <summary>What the command line asked for; <paramref name="live"/> forces the live baseline.</summary>
    public Settings Read(ParseResult result, bool live = false) =>
        new(result.GetValue(_files) ?? [], result.GetValue(_sets) ?? [], live || (_live != null && result.GetValue(_live)));

    /// <summary>The settings' sources; <see cref="Build"/> may run again (a reload re-reads the files).</summary>
    internal sealed class Settings(IReadOnlyList<string> files, IReadOnlyList<string> sets, bool live)
    {
        public ConntrackSettings? Build(out string? error)
        {
            var s = new ConntrackSettings();
            error = live ? LiveSysctls.Apply(s) : null;
            foreach (string file in files)
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
            foreach (string set in sets)
            {
                if (error != null)
                    break;
                error = s.SetAssignment(set);
            }
            return error == null ? s : null;
        }
    }
}
