using System.CommandLine;
using Ctfw.Conntrack;

namespace Ctfw.Cli.Commands;

/// <summary>`--rescue [tombstone|loose]` and `--rescue-window SECONDS`, one definition for run and replay (docs/RESCUE.md).</summary>
internal sealed class RescueCommandOptions
{
    public const int MaxWindowSeconds = 86400;

    private readonly Option<string?> _mode;
    private readonly Option<int> _window;

    public RescueCommandOptions()
    {
        _mode = new Option<string?>("--rescue")
        {
            HelpName = "[tombstone|loose]",
            Arity = ArgumentArity.ZeroOrOne,
            Description = "after an entry expires, keep a tombstone for --rescue-window seconds, so that a late FIN/RST that fits "
                + "its sequence window passes as ESTABLISHED (reason `rescued`) and the teardown completes (tombstone, the default); "
                + "loose also accepts a bare FIN/RST with no tombstone as a short closing-only entry (docs/RESCUE.md: the trade-offs)",
        };
        // The mode is optional, and the parser gives an option's optional value no way back: a word
        // that is no mode is returned by Read as not --rescue's (`replay --rescue x.pcap`).
        _mode.CompletionSources.Add("tombstone", "loose");
        _mode.CustomParser = result => result.Tokens.Count == 0 ? "tombstone" : result.Tokens[0].Value;
        _window = Opt.Int("--rescue-window", "SECONDS",
            $"how long after expiry a tombstone is kept (1..{MaxWindowSeconds}, default {new RescueOptions().WindowSeconds}); needs --rescue",
            1, MaxWindowSeconds, "seconds");
    }

    public void AddTo(CtfwCommand command, string? group = null)
    {
        command.Add(_mode, group);
        command.Add(_window, group);
    }

    /// <summary>
    /// The rescue settings asked for (Mode Off without --rescue), or null with a usage error.
    /// <paramref name="notMine"/> is the word after --rescue when it is no mode (the caller's argument, or an error).
    /// </summary>
    public RescueOptions? Read(ParseResult result, out string? error, out string? notMine)
    {
        error = null;
        notMine = null;
        bool windowGiven = result.Given(_window);
        if (!result.Given(_mode))
        {
            if (windowGiven)
                error = "--rescue-window needs --rescue";
            return error == null ? new RescueOptions { Mode = RescueMode.Off } : null;
        }
        string? word = result.GetValue(_mode);
        if (word is not ("tombstone" or "loose"))
            notMine = word;
        RescueMode mode = word == "loose" ? RescueMode.Loose : RescueMode.Tombstone;
        return windowGiven ? new RescueOptions { Mode = mode, WindowSeconds = result.GetValue(_window) } : new RescueOptions { Mode = mode };
    }
}
