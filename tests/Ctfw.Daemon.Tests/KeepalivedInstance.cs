using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// keepalived (VRRP only) in a gateway of a <see cref="FailoverLab"/>, configured from
/// contrib/keepalived/keepalived.conf itself with the lab's interfaces and virtual addresses put in
/// and its notify lines pointing at the gateway's <see cref="HaGateway.NotifyWrapper"/>; gateway A
/// gets the file's priority, B the lower one its comments give. Disposed (or <see cref="Stop"/>ped)
/// it ends as keepalived does on SIGTERM: it gives the virtual addresses up with a priority-0
/// advertisement, so the peer takes over at once.
/// </summary>
internal sealed partial class KeepalivedInstance : IDisposable
{
    private const string ContribNotify = "/usr/bin/env CTFW=/opt/ctfw/ctfw /etc/keepalived/ctfw-notify.sh --control /run/ctfw/ctfw.sock ";
    private readonly ChildProcess _process;
    private readonly string _configPath;

    public KeepalivedInstance(FailoverLab lab, HaGateway gateway, bool preferred)
    {
        Gateway = gateway;
        string directory = Path.GetDirectoryName(gateway.NotifyLogPath)!;
        _configPath = Path.Combine(directory, "keepalived.conf");
        string config = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "keepalived.conf"));
        string wrapper = gateway.NotifyWrapper();
        config = Replace(config, "router_id ctfw-gw-a", "router_id ctfw-gw-" + (preferred ? "a" : "b"));
        config = Replace(config, "eth0", gateway.Self.ClientInterface);
        config = Replace(config, "eth1", gateway.Self.ServerInterface);
        config = Replace(config, "192.0.2.1/24", $"{lab.VirtualClientSide}/24");
        config = Replace(config, "198.51.100.1/24", $"{lab.VirtualServerSide}/24");
        config = Replace(config, ContribNotify, wrapper + " ");
        if (!preferred)
            config = Replace(config, "priority 150", "priority 100");
        File.WriteAllText(_configPath, config);
        _process = CtfwProcess.StartCommand(Tool.InNetns(gateway.Self.Namespace,
            "keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", _configPath,
            "--pid", Path.Combine(directory, "keepalived.pid"), "--vrrp_pid", Path.Combine(directory, "vrrp.pid")));
    }

    public HaGateway Gateway { get; }

    /// <summary>keepalived's log so far.</summary>
    public string Log => _process.StdOut + _process.StdErr;

    /// <summary>
    /// Waits until the notify script has finished for <paramref name="state"/> (primary, backup,
    /// fault) <paramref name="times"/> times in all; its exit status then, or null after <paramref name="timeout"/>.
    /// </summary>
    public int? WaitForNotify(string state, TimeSpan timeout, int times = 1)
    {
        var clock = Stopwatch.StartNew();
        do
        {
            MatchCollection done = Regex.Matches(Gateway.NotifyLog(), $"^notify {state} exit (\\d+)$", RegexOptions.Multiline);
            if (done.Count >= times)
                return int.Parse(done[times - 1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            Thread.Sleep(20);
        }
        while (clock.Elapsed < timeout && !_process.HasExited);
        return null;
    }

    /// <summary>Stops keepalived as `systemctl stop keepalived` does (SIGTERM) and waits for it to exit.</summary>
    public bool Stop()
    {
        if (_process.HasExited)
            return true;
        _process.Signal(ChildProcess.SigTerm);
        return _process.WaitForExit(TimeSpan.FromSeconds(15)) is not null;
    }

    public void Dispose() => _process.Dispose();

    /// <summary>Every occurrence of <paramref name="from"/> replaced; throws when there is none (the contrib file changed under the test).</summary>
    private static string Replace(string text, string from, string to) =>
        text.Contains(from, StringComparison.Ordinal)
            ? text.Replace(from, to, StringComparison.Ordinal)
            : throw new InvalidOperationException($"contrib/keepalived/keepalived.conf no longer contains '{from}'");
}
