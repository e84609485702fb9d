using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace Ctfw.Cli.Tests;

/// <summary>
/// deploy/ctfw.service stays in step with the code: every option of its ExecStart is one `ctfw run`
/// knows, it uses the notify protocol and the watchdog the daemon speaks, and it grants exactly the
/// two capabilities CapabilitiesLiveTests proves enough.
/// </summary>
[Collection("Console")]
public sealed partial class ServiceUnitTests
{
    // The checkout this test was compiled from (the build output may live elsewhere: CTFW_ARTIFACTS).
    private static string Unit([CallerFilePath] string source = "") =>
        File.ReadAllText(Path.Combine(Path.GetDirectoryName(source)!, "..", "..", "deploy", "ctfw.service"));

    private static string Setting(string unit, string key)
    {
        // Continuation lines (a trailing backslash) belong to the setting.
        string joined = unit.Replace("\\\n", " ", StringComparison.Ordinal);
        Match m = Regex.Match(joined, $"^{Regex.Escape(key)}=(.*)$", RegexOptions.Multiline);
        Assert.True(m.Success, $"{key}= missing from deploy/ctfw.service");
        return m.Groups[1].Value.Trim();
    }

    [Fact]
    public void ExecStart_EveryOptionIsOneRunKnows()
    {
        string[] words = Setting(Unit(), "ExecStart").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith("/ctfw", words[0], StringComparison.Ordinal);
        Assert.Equal("run", words[1]);
        var (_, help, _) = ConsoleCapture.Run(["run", "--help"]);
        string[] options = [.. words.Where(w => w.StartsWith("--", StringComparison.Ordinal))];
        Assert.NotEmpty(options);
        foreach (string option in options)
            Assert.Contains(option, help, StringComparison.Ordinal);
    }

    [Fact]
    public void Service_NotifyWatchdogReloadAndTheTwoCapabilities()
    {
        string unit = Unit();
        Assert.Equal("notify", Setting(unit, "Type"));
        Assert.Matches("^[1-9][0-9]*s$", Setting(unit, "WatchdogSec"));
        Assert.Equal("/bin/kill -HUP $MAINPID", Setting(unit, "ExecReload"));
        Assert.Equal("ctfw", Setting(unit, "User"));
        Assert.Equal(Ctfw.Linux.UnixIdentity.ServiceUserName, Setting(unit, "User"));
        Assert.Equal("CAP_NET_ADMIN CAP_NET_RAW", Setting(unit, "AmbientCapabilities"));
        Assert.Equal("CAP_NET_ADMIN CAP_NET_RAW", Setting(unit, "CapabilityBoundingSet"));
        Assert.Equal("ctfw", Setting(unit, "RuntimeDirectory")); // where ExecStart's --control socket goes
        Assert.Contains("--control /run/ctfw/", Setting(unit, "ExecStart"), StringComparison.Ordinal);
    }
}
