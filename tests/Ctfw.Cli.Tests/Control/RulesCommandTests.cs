using Ctfw.Cli.Commands;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Tests.Control;

/// <summary>`ctfw rules`: its options, and the listing and zeroing end to end against an in-memory daemon.</summary>
[Collection("Console")]
public sealed class RulesCommandTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeControlTarget _target = new();

    public void Dispose() => _dir.Dispose();

    private string SocketPath => _dir.File("ctfw-1.sock");

    private static (int Code, string Out, string Err) Run(params string[] args) => ConsoleCapture.Run(args);

    [Theory]
    [InlineData("-L", true, false, false, false)]
    [InlineData("-nvL", true, false, true, false)]
    [InlineData("-vxZL", true, true, true, true)]
    [InlineData("-n", true, false, false, false)]
    [InlineData("--zero", false, true, false, false)]
    [InlineData("--exact", true, false, false, true)]
    [InlineData("--verbose", true, false, true, false)]
    [InlineData("--list", true, false, false, false)]
    public void Parse_KnownFlagsAndBundles_Request(string arg, bool list, bool zero, bool verbose, bool exact)
    {
        RulesCommand.Request? request = RulesCommand.Parse([arg], out string? error);
        Assert.Null(error);
        Assert.Equal(new RulesCommand.Request(list, zero, verbose, exact), request);
    }

    [Theory]
    [InlineData("-")]
    [InlineData("-Lq")]
    [InlineData("-F")]
    [InlineData("--pid")]
    [InlineData("L")]
    [InlineData("--numbers")]
    public void Parse_OtherArguments_UsageError(string arg)
    {
        Assert.Null(RulesCommand.Parse([arg], out string? error));
        Assert.NotNull(error);
        Assert.DoesNotContain('\n', error);
        if (arg != "--pid")
            Assert.Equal($"unknown option '{arg}' for rules (see `ctfw rules --help`)", error);
    }

    [Fact]
    public void Check_NoCommand_ListsByDefault()
    {
        Assert.Equal(new RulesCommand.Request(List: true, Zero: false, Verbose: false, Exact: false), RulesCommand.Check(false, false, false, false, out _));
        Assert.Equal(new RulesCommand.Request(List: false, Zero: true, Verbose: false, Exact: false), RulesCommand.Check(false, true, false, false, out _));
        Assert.Equal(new RulesCommand.Request(List: true, Zero: true, Verbose: true, Exact: true), RulesCommand.Check(true, true, true, true, out _));
    }

    [Theory]
    [InlineData("-Z", "-v")]
    [InlineData("-Zx")]
    public void Run_ZeroWithListingFlagsOnly_UsageErrorTwo(params string[] flags)
    {
        var (code, output, err) = Run(["rules", .. flags, "--control", SocketPath]);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.StartsWith("ctfw: -v and -x shape a listing", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_UnknownOption_UsageErrorTwo()
    {
        var (code, _, err) = Run("rules", "-L", "--line-numbers");
        Assert.Equal(2, code);
        Assert.Equal("ctfw: unknown option '--line-numbers' for rules (see `ctfw rules --help`)\n", err);
    }

    [Fact]
    public void Run_Help_ExitZeroMentionsNumeric()
    {
        var (code, output, _) = Run("rules", "--help");
        Assert.Equal(0, code);
        Assert.StartsWith("Usage: ctfw rules [-L] [-v] [-n] [-x] [-Z]", output, StringComparison.Ordinal);
        Assert.Contains("-n, --numeric", output);
        Assert.Contains("--control PATH", output);
    }

    [Fact]
    public void Run_ListVerboseExact_PrintsTheDaemonsListing()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        var (code, output, err) = Run("rules", "-L", "-n", "-v", "-x", "--control", SocketPath);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.Equal(Ctfw.Rules.RuleListing.Format(_target.Rules, exact: true, verbose: true), output);
        Assert.Contains("  123456    7890123 ACCEPT     tcp", output);
        Assert.Equal(0, _target.Zeroings);

        (code, output, _) = Run("rules", "--control", SocketPath);
        Assert.Equal(0, code);
        Assert.StartsWith("Chain INPUT (policy DROP)\ntarget ", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_ListThenZero_ShowsTheOldCountsOnceThenZeroes()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        var (code, output, _) = Run("rules", "-vxLZ", "--control", SocketPath);
        Assert.Equal(0, code);
        Assert.Contains("  123456    7890123 ACCEPT", output);
        Assert.Equal(1, _target.Zeroings);
        (_, output, _) = Run("rules", "-L", "-v", "-x", "--control", SocketPath);
        Assert.Contains("       0          0 ACCEPT", output);
    }

    [Fact]
    public void Run_ZeroOnly_NoOutputCountersZeroed()
    {
        using var server = ControlServer.Start(SocketPath, _target);
        var (code, output, err) = Run("rules", "-Z", "--control", SocketPath);
        Assert.Equal(0, code);
        Assert.Equal("", output);
        Assert.Equal("", err);
        Assert.Equal(1, _target.Zeroings);
        Assert.Equal(new Ctfw.Rules.PacketCounters(0, 0), _target.Rules.GetCounters(0));
    }

    [Fact]
    public void Run_DaemonGone_ExitOne()
    {
        var (code, output, err) = Run("rules", "-L", "--control", SocketPath);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.StartsWith($"ctfw: cannot connect to {SocketPath}", err, StringComparison.Ordinal);
    }
}
