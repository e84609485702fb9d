namespace Ctfw.Cli.Tests;

/// <summary>`ctfw run` refuses bad --state-file/--state-interval/--takeover/--import-kernel combinations before touching anything.</summary>
[Collection("Console")]
public sealed class RunStateOptionsTests
{
    [Theory]
    [InlineData("--state-interval needs --state-file", "--state-interval", "5")]
    [InlineData("--state-interval 0: expected 1..3600 seconds", "--state-file", "/tmp/x.state", "--state-interval", "0")]
    [InlineData("--state-interval soon: expected 1..3600 seconds", "--state-file", "/tmp/x.state", "--state-interval", "soon")]
    [InlineData("--takeover and --import-kernel: a takeover gets its table from the running ctfw", "--takeover", "--import-kernel")]
    [InlineData("--takeover: no ctfw with pid 999999999", "--takeover-from", "999999999")]
    [InlineData("--takeover-from /nonexistent/ctfw.sock: neither a pid nor an existing control socket", "--takeover-from", "/nonexistent/ctfw.sock")]
    [InlineData("--control-group no-such-group-ctfw: no such group in /etc/group (create it with groupadd, or give a gid)", "--control-group", "no-such-group-ctfw")]
    [InlineData("--control-admin-group no-such-group-ctfw: no such group in /etc/group (create it with groupadd, or give a gid)", "--control-group", "0", "--control-admin-group", "no-such-group-ctfw")]
    public void Run_BadStateOptions_UsageErrorExit2(string message, params string[] extra)
    {
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-state-opts-{Guid.NewGuid():N}.rules");
        File.WriteAllText(rules, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        try
        {
            var (code, _, err) = ConsoleCapture.Run(["run", "--rules", rules, .. extra]);
            Assert.Equal(2, code);
            Assert.Contains(message, err);
        }
        finally
        {
            File.Delete(rules);
        }
    }
}
