namespace Ctfw.Cli.Tests;

/// <summary>`ctfw lab` refuses bad options in one line with exit status 2 before it checks for root or builds anything.</summary>
[Collection("Console")]
public sealed class LabCommandTests
{
    [Theory]
    [InlineData("--traffic-seconds 0: expected 1..3600", "--traffic-seconds", "0")]
    [InlineData("--table-checks 101: expected 0..100", "--table-checks", "101")]
    [InlineData("--no-scenarios with --no-traffic leaves nothing to do", "--no-scenarios", "--no-traffic")]
    [InlineData("--scenario no_such_thing: no scenario name contains it (try `ctfw lab --list`)", "--scenario", "no_such_thing")]
    [InlineData("unknown option '--frob' for lab (see `ctfw lab --help`)", "--frob")]
    [InlineData("option --rules needs a value", "--rules")]
    public void Lab_BadOptions_OneLineExitTwo(string message, params string[] args)
    {
        var (code, output, err) = ConsoleCapture.Run(["lab", .. args]);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal($"ctfw: {message}\n", err);
    }

    [Fact]
    public void Lab_List_ScenarioNamesExitZero()
    {
        var (code, output, _) = ConsoleCapture.Run("lab", "--list");
        Assert.Equal(0, code);
        Assert.StartsWith("tcp_handshake_data_close ", output, StringComparison.Ordinal);
    }
}
