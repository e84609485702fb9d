namespace Ctfw.Cli.Tests;

/// <summary>`ctfw run --on-rules-lost` and `--queue-full` are checked before anything is touched.</summary>
[Collection("Console")]
public sealed class RunRulesLostOptionsTests
{
    [Theory]
    [InlineData("--on-rules-lost needs --install (ctfw checks only the rules it installed)", "--on-rules-lost", "exit")]
    [InlineData("--on-rules-lost ignore: expected reinstall, exit or warn", "--install", "FORWARD", "--on-rules-lost", "ignore")]
    [InlineData("--queue-full pass: expected drop or accept", "--queue-full", "pass")]
    [InlineData("--fail-closed and --queue-full accept: fail-closed drops what ctfw cannot judge; choose one", "--fail-closed", "--queue-full", "accept")]
    public void Run_BadOnRulesLost_UsageErrorExit2(string message, params string[] extra)
    {
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-lost-opts-{Guid.NewGuid():N}.rules");
        File.WriteAllText(rules, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        try
        {
            var (code, _, err) = ConsoleCapture.Run(["run", "--rules", rules, .. extra]);
            Assert.Equal(2, code);
            Assert.Contains(message, err, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(rules);
        }
    }
}
