using Ctfw.Cli.Control;

namespace Ctfw.Cli.Tests;

/// <summary>`ctfw run` refuses bad --sync combinations, and `ctfw sync` bad actions, before touching anything.</summary>
[Collection("Console")]
public sealed class RunSyncOptionsTests
{
    [Theory]
    [InlineData("--sync ftfw needs --sync-local ADDR:PORT and --sync-peer ADDR:PORT", "--sync", "ftfw")]
    [InlineData("--sync ftfw needs --sync-local ADDR:PORT and --sync-peer ADDR:PORT", "--sync", "ftfw", "--sync-local", "10.0.0.1:3780")]
    [InlineData("--sync-local '10.0.0.1': expected an IPv4 ADDR:PORT", "--sync", "ftfw", "--sync-local", "10.0.0.1", "--sync-peer", "10.0.0.2:3780")]
    [InlineData("--sync-peer '10.0.0.2:0': expected an IPv4 ADDR:PORT", "--sync", "ftfw", "--sync-local", "10.0.0.1:3780", "--sync-peer", "10.0.0.2:0")]
    [InlineData("--sync-peer 'fe80::1:3780': expected an IPv4 ADDR:PORT", "--sync", "ftfw", "--sync-local", "10.0.0.1:3780", "--sync-peer", "fe80::1:3780")]
    [InlineData("--sync-peer 'peer:3780': expected an IPv4 ADDR:PORT", "--sync", "ftfw", "--sync-local", "10.0.0.1:3780", "--sync-peer", "peer:3780")]
    [InlineData("--sync-interface 'a/b': not an interface name", "--sync", "ftfw", "--sync-local", "10.0.0.1:3780", "--sync-peer", "10.0.0.2:3780", "--sync-interface", "a/b")]
    [InlineData("need --sync ftfw", "--sync-peer", "10.0.0.2:3780")]
    [InlineData("need --sync ftfw", "--sync-commit-on-start")]
    [InlineData("need --sync ftfw", "--sync", "off", "--sync-local", "10.0.0.1:3780")]
    public void Run_BadSyncOptions_UsageErrorExit2(string message, params string[] extra)
    {
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-sync-opts-{Guid.NewGuid():N}.rules");
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

    [Fact]
    public void Sync_UnknownAction_UsageError()
    {
        var (code, _, err) = ConsoleCapture.Run(["sync", "promote"]);
        Assert.Equal(2, code);
        Assert.Contains("sync promote: expected one of status, external, commit, resync, flush, bulk", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Sync_SeveralActions_EachChecked_BeforeAnyIsSent()
    {
        var (code, _, err) = ConsoleCapture.Run(["sync", "commit", "promote", "--control", "/nonexistent/ctfw.sock"]);
        Assert.Equal(2, code);
        Assert.Contains("sync promote: expected one of", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Sync_NoDaemonAtTheSocket_Exit1WithReason()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-sync-none-{Guid.NewGuid():N}.sock");
        var (code, _, err) = ConsoleCapture.Run(["sync", "status", "--control", path]);
        Assert.NotEqual(0, code);
        Assert.Contains(path, err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("status", true)]
    [InlineData("external", true)]
    [InlineData("commit", false)]
    [InlineData("flush", false)]
    [InlineData("bulk", false)]
    [InlineData("resync", false)]
    public void SyncRequests_OnlyStatusAndExternalAreReadOnly(string sub, bool readOnly)
    {
        Assert.Equal(readOnly, ControlProtocol.IsReadOnly(ControlProtocol.Sync, [sub]));
        Assert.False(ControlProtocol.IsReadOnly(ControlProtocol.Sync, [sub, "extra"]));
    }
}
