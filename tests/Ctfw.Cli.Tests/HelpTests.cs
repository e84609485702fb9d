using System.CommandLine;
using System.Text.RegularExpressions;
using Ctfw.Cli.Commands;

namespace Ctfw.Cli.Tests;

/// <summary>Every command's help: its options each on a line of their own, its exit statuses, and the top-level -V.</summary>
[Collection("Console")]
public sealed partial class HelpTests
{
    public static TheoryData<string> Commands() => [.. CommandLine.Root().Subcommands.Select(c => c.Name)];

    [Theory]
    [MemberData(nameof(Commands))]
    public void Help_EveryCommand_UsageOnStdoutExitZero(string command)
    {
        var (code, output, err) = ConsoleCapture.Run(command, "--help");
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.StartsWith($"Usage: ctfw {command}", output, StringComparison.Ordinal);
        Assert.Equal(output, ConsoleCapture.Run("help", command).Out);
        Assert.Equal(output, ConsoleCapture.Run(command, "-h").Out);
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Help_EveryOption_StartsALineOfItsOwn(string command)
    {
        // replay --help once ran the rescue window's text into the next option: "(default 120)  --sysctl-file FILE".
        string help = ConsoleCapture.Run(command, "--help").Out;
        Command definition = CommandLine.Root().Subcommands.Single(c => c.Name == command);
        foreach (Option option in definition.Options)
        {
            Assert.Matches(new Regex($"(?m)^  (-[\\w-]+, )*{Regex.Escape(option.Name)}( |$)"), help);
            Assert.DoesNotMatch(new Regex($"\\S  +{Regex.Escape(option.Name)}\\b"), help);
        }
        foreach (string line in help.Split('\n'))
            Assert.True(line.Length <= HelpText.Width, $"{command} --help: line longer than {HelpText.Width}: {line}");
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void Help_EveryCommand_ListsItsExitStatuses(string command)
    {
        string help = ConsoleCapture.Run(command, "--help").Out;
        Assert.Contains("\nExit status:\n", help, StringComparison.Ordinal);
        Assert.Matches(new Regex("(?m)^  0 +\\S"), help);
    }

    [Theory]
    [InlineData("run", new[] { 0, 1, 2, 3 })]
    [InlineData("replay", new[] { 0, 1, 2, 3 })]
    [InlineData("lab", new[] { 0, 1, 2, 130 })]
    [InlineData("bench", new[] { 0, 1, 2, 130 })]
    [InlineData("stats", new[] { 0, 1, 2 })]
    [InlineData("conntrack", new[] { 0, 1, 2 })]
    [InlineData("rules", new[] { 0, 1, 2 })]
    [InlineData("reload", new[] { 0, 1, 2 })]
    [InlineData("sysctls", new[] { 0, 2 })]
    public void Help_ExitStatuses_EveryCodeTheCommandReturns(string command, int[] codes)
    {
        // run's help once said it exits 0, though setup failures exit 1, usage errors 2 and lost rules 3.
        string help = ConsoleCapture.Run(command, "--help").Out;
        string section = help[help.IndexOf("\nExit status:\n", StringComparison.Ordinal)..];
        int[] listed = [.. ExitLine().Matches(section).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))];
        Assert.Equal(codes, listed);
    }

    [Fact]
    public void RunHelp_NoSysctlLive_RunAlwaysStartsFromTheLiveValues()
    {
        var (_, help, _) = ConsoleCapture.Run("run", "--help");
        Assert.DoesNotContain("--sysctl-live", help, StringComparison.Ordinal);
        Assert.Contains("--sysctl-file", help, StringComparison.Ordinal);
        var (code, _, err) = ConsoleCapture.Run("run", "--rules", "x.rules", "--sysctl-live");
        Assert.Equal(2, code);
        Assert.Equal("ctfw: unknown option '--sysctl-live' for run (see `ctfw run --help`)\n", err);
        Assert.Contains("--sysctl-live", ConsoleCapture.Run("replay", "--help").Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-V")]
    [InlineData("--version")]
    [InlineData("version")]
    public void Version_AnySpelling_PrintsTheVersionExitZero(string arg)
    {
        var (code, output, err) = ConsoleCapture.Run(arg);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.Equal(typeof(Program).Assembly.GetName().Version + "\n", output);
    }

    [Fact]
    public void TopHelp_ListsEveryCommandAndTheVersionOption()
    {
        string usage = ConsoleCapture.Run("--help").Out;
        foreach (Command command in CommandLine.Root().Subcommands)
            Assert.Matches(new Regex($"(?m)^  {command.Name} +\\S"), usage);
        Assert.Contains("-V, --version", usage, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"(?m)^  (\d+) +\S")]
    private static partial Regex ExitLine();
}
