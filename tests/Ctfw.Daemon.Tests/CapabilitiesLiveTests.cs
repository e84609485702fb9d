using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Issue 14 part 2, least privilege: `ctfw run` as an unprivileged user (nobody, uid 65534) with
/// only CAP_NET_ADMIN and CAP_NET_RAW — what deploy/ctfw.service grants — binds its queue, installs
/// its jump, filters, and stops cleanly; without one of the two it says which one it lacks.
/// setpriv drops every other capability from the bounding set, as systemd does with
/// CapabilityBoundingSet= and AmbientCapabilities=.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class CapabilitiesLiveTests : IDisposable
{
    private const string Nobody = "65534";
    private const string Rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        + "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        + "-A FORWARD -p tcp -m tcp --dport 5007 -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n";

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("ctfw-caps-");

    public CapabilitiesLiveTests()
    {
        // The daemon's own directory (rules, control socket, HOME for the .NET host, and a copy of the
        // build: the checkout may sit where nobody cannot read, e.g. under /root), owned by nobody.
        File.WriteAllText(Path.Combine(_dir.FullName, "r.rules"), Rules);
        Tool.Run(["cp", "-a", Path.GetDirectoryName(CtfwProcess.Dll)!, Path.Combine(_dir.FullName, "bin")]);
        Tool.Run(["chown", "-R", $"{Nobody}:{Nobody}", _dir.FullName]);
        Tool.Run(["chmod", "0755", _dir.FullName]);
    }

    public void Dispose() => _dir.Delete(recursive: true);

    private ChildProcess StartAsNobody(GatewayLab lab, ushort queue, params string[] caps)
    {
        string set = string.Join(',', ["-all", .. caps.Select(c => "+" + c)]);
        return CtfwProcess.StartCommand(
            "ip", "netns", "exec", lab.Gateway,
            "setpriv", $"--reuid={Nobody}", $"--regid={Nobody}", "--clear-groups",
            $"--inh-caps={set}", $"--ambient-caps={set}", $"--bounding-set={set}",
            "env", $"HOME={_dir.FullName}",
            "dotnet", Path.Combine(_dir.FullName, "bin", Path.GetFileName(CtfwProcess.Dll)), "run", "--rules", Path.Combine(_dir.FullName, "r.rules"), "--queue", queue.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--install", "FORWARD", "--control", Path.Combine(_dir.FullName, "c.sock"));
    }

    [Fact]
    public async Task Run_AsNobodyWithNetAdminAndNetRawOnly_FiltersAndStopsCleanly()
    {
        using var lab = new GatewayLab();
        lab.Listen(5007);
        lab.Listen(5008);
        using ChildProcess daemon = StartAsNobody(lab, 19, "net_admin", "net_raw");
        Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), daemon.StdErr);

        Assert.Contains("NFQUEUE", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);
        Assert.Equal("allowed", await lab.TryEcho(lab.ServerV4, 5007, "allowed", TimeSpan.FromSeconds(3)));
        Assert.Equal("timeout", await lab.TryEcho(lab.ServerV4, 5008, "forbidden", TimeSpan.FromSeconds(2)));
        Assert.DoesNotContain("needs CAP_", daemon.StdErr, StringComparison.Ordinal);
        Assert.Contains($"Uid:\t{Nobody}", File.ReadAllText($"/proc/{daemon.Pid}/status"), StringComparison.Ordinal);

        Assert.True(daemon.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.DoesNotContain("NFQUEUE", Tool.RunIn(lab.Gateway, "iptables-save"), StringComparison.Ordinal);
    }

    [Fact]
    public void Run_WithoutNetAdmin_ExitsNamingIt()
    {
        using var lab = new GatewayLab();
        using ChildProcess daemon = StartAsNobody(lab, 20, "net_raw");
        Assert.NotEqual(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
        Assert.Contains("needs CAP_NET_ADMIN", daemon.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_WithoutNetRaw_RunsAndSaysRejectAnswersNeedIt()
    {
        using var lab = new GatewayLab();
        using ChildProcess daemon = StartAsNobody(lab, 21, "net_admin");
        Assert.True(daemon.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), daemon.StdErr);
        Assert.Contains("(EPERM: needs CAP_NET_RAW); REJECT answers of that family are not sent", daemon.StdErr, StringComparison.Ordinal);
        Assert.True(daemon.Signal(ChildProcess.SigTerm));
        Assert.Equal(0, daemon.WaitForExit(TimeSpan.FromSeconds(30)));
    }
}
