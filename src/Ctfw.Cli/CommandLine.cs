using System.CommandLine;
using System.CommandLine.Completions;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using Ctfw.Cli.Commands;

namespace Ctfw.Cli;

/// <summary>
/// The command tree (System.CommandLine) and the launcher contract around it: every usage problem
/// is one line on stderr and exit status 2, help goes to stdout with status 0, `-V`/`--version`
/// print the version, and the `[suggest]` directive answers shell completion (`ctfw completion bash`).
/// Each command is built by its own factory (`XxxCommand.Create()`); to add one, add it to <see cref="Root()"/>.
/// </summary>
internal static class CommandLine
{
    public const int UsageExit = 2;

    private const string Title = "ctfw — userspace firewall with kernel-faithful connection tracking";

    // No response files (`@file` is a capture or rules file name here), POSIX bundling on (`-nvL`).
    private static readonly ParserConfiguration s_parser = new() { EnablePosixBundling = true, ResponseFileTokenReplacer = null };

    /// <summary>Every command, in the order `ctfw --help` lists them.</summary>
    public static RootCommand Root() => Root(
        RunCommand.Create(),
        Lab.LabCommand.Create(),
        Bench.BenchCommand.Create(),
        ReplayCommand.Create(),
        SysctlsCommand.Create(),
        StatsCommand.Create(),
        ConntrackCommand.Create(),
        TopCommand.Create(),
        RulesCommand.Create(),
        ReloadCommand.Create(),
        SyncCommand.Create(),
        CompletionCommand.Create());

    /// <summary>A root with these commands plus help and version (tests build one with a single command).</summary>
    public static RootCommand Root(params CtfwCommand[] commands)
    {
        var root = new RootCommand(Title);
        root.Options.Clear();
        root.Directives.Clear();
        root.Directives.Add(new SuggestDirective());
        root.Options.Add(new HelpOption("--help", "-h") { Action = new PrintHelp(), Recursive = true });
        Option<bool> version = Opt.Flag("--version", "print the version", "-V");
        root.Options.Add(version);
        foreach (CtfwCommand command in commands)
            root.Subcommands.Add(command);
        root.Subcommands.Add(HelpCommand(root));
        var versionCommand = new CtfwCommand("version", "print the version (as -V and --version do)", "")
        {
            ExitCodes = [(0, "always")],
        };
        versionCommand.SetAction(_ => PrintVersion());
        root.Subcommands.Add(versionCommand);
        root.SetAction(r =>
        {
            if (r.GetValue(version))
                return PrintVersion();
            Console.Out.Write(Usage(root));
            return UsageExit;
        });
        return root;
    }

    public static int Invoke(RootCommand root, string[] args)
    {
        ParseResult result = Parse(root, args);
        if (result.Action is not { ClearsParseErrors: true } && FirstError(result, args) is { } error)
            return Program.Fail(error);
        var invocation = new InvocationConfiguration
        {
            Output = Console.Out,
            Error = Console.Error,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,
        };
        return result.Invoke(invocation);
    }

    public static ParseResult Parse(Command root, IReadOnlyList<string> args) => root.Parse(args, s_parser);

    /// <summary>
    /// The first parse error as the one line ctfw prints (without the `ctfw: ` prefix), or null.
    /// With the <paramref name="args"/> as typed, an unknown letter of a bundle is shown in its bundle (`-Lq`).
    /// </summary>
    public static string? FirstError(ParseResult result, IReadOnlyList<string>? args = null)
    {
        if (result.Errors.Count == 0)
            return null;
        foreach (ParseError error in result.Errors)
        {
            OptionResult? option = error.SymbolResult as OptionResult ?? error.SymbolResult?.Parent as OptionResult;
            if (option is null)
                continue;
            string name = option.IdentifierToken?.Value ?? option.Option.Name;
            if (option.Tokens.Count == 0 && option.Option.Arity.MinimumNumberOfValues > 0)
                return $"option {name} needs a value";
            if (option.Tokens.Count > option.Option.Arity.MaximumNumberOfValues)
                return $"option {name} given twice";
            return error.Message;
        }
        Command command = result.CommandResult.Command;
        if (result.UnmatchedTokens.Count > 0)
        {
            string token = result.UnmatchedTokens[0];
            if (args is not null && !args.Contains(token))
                token = args.FirstOrDefault(a => a.Length > 2 && a[0] == '-' && a[1] != '-' && a.Contains(token, StringComparison.Ordinal)) ?? token;
            if (command is RootCommand)
                return token.StartsWith('-') ? $"unknown option '{token}' (try `ctfw --help`)" : $"unknown command '{token}' (try `ctfw --help`)";
            return $"unknown option '{token}' for {command.Name} (see `ctfw {command.Name} --help`)";
        }
        return result.Errors[0].Message;
    }

    /// <summary>`ctfw --help`: the commands, one line each.</summary>
    public static string Usage(RootCommand root)
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(Title).Append("\n\nUsage: ctfw COMMAND [OPTIONS]\n\nCommands:\n");
        HelpText.Rows(sb, [.. root.Subcommands.Select(c => ("  " + c.Name, c.Description ?? ""))], column: 13);
        sb.Append("\nOptions:\n");
        HelpText.Rows(sb, [("  -h, --help", "show this text"), ("  -V, --version", "print the version")]);
        sb.Append("\nRun `ctfw COMMAND --help` for the options and exit statuses of a command.\n");
        return sb.ToString();
    }

    private static CtfwCommand HelpCommand(RootCommand root)
    {
        var command = new CtfwCommand("help", "show this text, or `ctfw help COMMAND`", "[COMMAND]")
        {
            ExitCodes = [(0, "help printed"), (UsageExit, "no such command")],
        };
        var name = new Argument<string?>("COMMAND") { Arity = ArgumentArity.ZeroOrOne };
        command.Arguments.Add(name);
        command.SetAction(r =>
        {
            if (r.GetValue(name) is not { } wanted)
            {
                Console.Out.Write(Usage(root));
                return 0;
            }
            if (root.Subcommands.FirstOrDefault(c => c.Name == wanted) is not CtfwCommand target)
                return Program.Fail($"unknown command '{wanted}' (try `ctfw --help`)");
            Console.Out.Write(target.Help());
            return 0;
        });
        return command;
    }

    private static int PrintVersion()
    {
        Console.Out.WriteLine(typeof(Program).Assembly.GetName().Version?.ToString() ?? "0");
        return 0;
    }

    /// <summary>--help: the command's own help, or the command list at the top.</summary>
    private sealed class PrintHelp : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            Command command = parseResult.CommandResult.Command;
            Console.Out.Write(command is CtfwCommand c ? c.Help() : Usage((RootCommand)parseResult.RootCommandResult.Command));
            return 0;
        }
    }
}
