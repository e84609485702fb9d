namespace Ctfw.Cli.Tests;

[Collection("Console")]
public sealed class ReloadCommandTests
{
    [Fact]
    public void Reload_UnknownOption_UsageErrorExit2()
    {
        var (code, _, err) = ConsoleCapture.Run("reload", "--bogus");
        Assert.Equal(2, code);
        Assert.Contains("unknown option '--bogus' for reload", err);
    }

    [Fact]
    public void Reload_NoDaemonAtThePath_Exit1WithReason()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-none-{Guid.NewGuid():N}.sock");
        var (code, _, err) = ConsoleCapture.Run("reload", "--control", path);
        Assert.Equal(1, code);
        Assert.Contains(path, err);
    }

    [Fact]
    public void Help_ListsReload()
    {
        var (code, output, _) = ConsoleCapture.Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("reload     make a running `ctfw run` re-read its rules file", output);
    }
}
