using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Ctfw.Cli.Control;

namespace Ctfw.Daemon.Tests;

/// <summary>What filters in a gateway of a <see cref="FailoverLab"/>.</summary>
public enum HaFirewall
{
    /// <summary>Kernel conntrack and iptables; with sync, conntrackd 1.4.7 in FTFW mode.</summary>
    Kernel,

    /// <summary>ctfw (`run --install FORWARD`); with sync, `--sync ftfw`.</summary>
    Ctfw,
}

/// <summary>
/// One gateway of a <see cref="FailoverLab"/> pair filtering under the strict ruleset of
/// <see cref="Conversation.StrictRules(IPAddress, IPAddress, int, int, string[])"/> (FORWARD DROP,
/// replies accepted, NEW only for a TCP SYN to the server's test port and for UDP from the client;
/// TCP pick-up off), and, with sync, sending its state to the peer over the sync link and keeping the
/// peer's in an external cache. <see cref="Promote"/> and <see cref="Demote"/> run
/// contrib/keepalived/ctfw-notify.sh in the gateway's namespace, as keepalived would on a state
/// change. Disposed, every process it started is ended and its files are removed (the lab's
/// namespaces take the rules with them).
/// </summary>
internal abstract class HaGateway : IDisposable
{
    /// <summary>The UDP port of the sync protocol on both gateways (conntrackd uses one for both ends).</summary>
    public const int SyncPort = 3780;

    private static readonly TimeSpan s_commandTimeout = TimeSpan.FromSeconds(30);

    protected HaGateway(GatewayAddresses self, GatewayAddresses peer, bool sync, string name)
    {
        Self = self;
        Peer = peer;
        Sync = sync;
        Directory = System.IO.Directory.CreateTempSubdirectory($"ctfw-ha-{name}-{Environment.ProcessId}-");
    }

    /// <summary>
    /// Starts a gateway of that kind in <paramref name="self"/>'s namespace, syncing with
    /// <paramref name="peer"/> when <paramref name="sync"/>. Returns once it filters (and, with sync,
    /// once its sync endpoint is up).
    /// </summary>
    public static HaGateway Start(HaFirewall firewall, bool sync, FailoverLab lab, GatewayAddresses self, GatewayAddresses peer,
        string rules, ushort queue)
    {
        string name = self == lab.A ? "a" : "b";
        return firewall switch
        {
            HaFirewall.Kernel => new KernelGateway(self, peer, sync, name, rules),
            _ => new CtfwGateway(self, peer, sync, name, rules, queue),
        };
    }

    public GatewayAddresses Self { get; }
    public GatewayAddresses Peer { get; }
    public bool Sync { get; }

    /// <summary>Its configuration, sockets and logs.</summary>
    protected DirectoryInfo Directory { get; }

    /// <summary>"kernel", "conntrackd", "ctfw" or "ctfw --sync", for reports.</summary>
    public abstract string Kind { get; }

    /// <summary>The peer's connections it holds, one `conntrack -L`-style line each ("src=… dst=… sport=… dport=…").</summary>
    public abstract string ExternalCache();

    /// <summary>Its sync counters as its own status command prints them.</summary>
    public abstract string SyncStatus();

    /// <summary>Its log so far, for failure messages.</summary>
    public abstract string Log();

    /// <summary>The notify script's arguments and environment for this gateway (before the state).</summary>
    protected abstract (string[] Options, Dictionary<string, string> Environment) NotifyArguments();

    /// <summary>Runs `ctfw-notify.sh … primary` in the gateway's namespace (keepalived's notify_master); its result.</summary>
    public ToolResult Promote() => Notify("primary");

    /// <summary>Runs `ctfw-notify.sh … backup` in the gateway's namespace (keepalived's notify_backup); its result.</summary>
    public ToolResult Demote() => Notify("backup");

    /// <summary>
    /// A script for keepalived's notify lines: runs ctfw-notify.sh with this gateway's options and
    /// the state keepalived passes, and appends its output and "notify STATE exit N" to <see cref="NotifyLogPath"/>.
    /// </summary>
    public string NotifyWrapper()
    {
        (string[] options, Dictionary<string, string> environment) = NotifyArguments();
        string script = Path.Combine(AppContext.BaseDirectory, "ctfw-notify.sh");
        string path = FilePath("notify.sh");
        var text = new StringBuilder("#!/bin/sh\n");
        text.Append("env");
        foreach ((string key, string value) in environment)
            text.Append(CultureInfo.InvariantCulture, $" {key}={Quote(value)}");
        text.Append(CultureInfo.InvariantCulture, $" sh {Quote(script)}");
        foreach (string option in options)
            text.Append(' ').Append(Quote(option));
        text.Append(CultureInfo.InvariantCulture, $" \"$@\" >> {Quote(NotifyLogPath)} 2>&1\n");
        text.Append("status=$?\n");
        text.Append(CultureInfo.InvariantCulture, $"echo \"notify $* exit $status\" >> {Quote(NotifyLogPath)}\n");
        text.Append("exit $status\n");
        File.WriteAllText(path, text.ToString());
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("keepalived runs on Linux");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return path;
    }

    /// <summary>Where <see cref="NotifyWrapper"/>'s script logs.</summary>
    public string NotifyLogPath => FilePath("notify.log");

    /// <summary>What the notify script logged so far (empty before its first run).</summary>
    public string NotifyLog() => File.Exists(NotifyLogPath) ? File.ReadAllText(NotifyLogPath) : "";

    private static string Quote(string word) => "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private ToolResult Notify(string state)
    {
        (string[] options, Dictionary<string, string> environment) = NotifyArguments();
        string script = Path.Combine(AppContext.BaseDirectory, "ctfw-notify.sh");
        string[] env = [.. environment.Select(kv => $"{kv.Key}={kv.Value}")];
        return Tool.Run(checkExit: false, s_commandTimeout, Tool.InNetns(Self.Namespace, ["env", .. env, "sh", script, .. options, state]));
    }

    /// <summary>
    /// Polls <see cref="ExternalCache"/> until a line names the connection from
    /// <paramref name="client"/>:<paramref name="clientPort"/> (and contains <paramref name="text"/>, e.g. a TCP state, when given):
    /// the time that took, or null after <paramref name="timeout"/>.
    /// </summary>
    public TimeSpan? WaitForExternal(IPAddress client, int clientPort, string? text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        do
        {
            if (HoldsExternal(ExternalCache(), client, clientPort, text))
                return clock.Elapsed;
            Thread.Sleep(2);
        }
        while (clock.Elapsed < timeout);
        return null;
    }

    /// <summary>
    /// True when a line of <paramref name="cache"/> has, as its original tuple (the first src= and
    /// sport=), <paramref name="client"/>:<paramref name="clientPort"/>, and contains <paramref name="text"/> when given.
    /// </summary>
    public static bool HoldsExternal(string cache, IPAddress client, int clientPort, string? text = null)
    {
        string source = $"src={client} ";
        string port = string.Create(CultureInfo.InvariantCulture, $" sport={clientPort} ");
        foreach (string line in cache.Split('\n'))
        {
            int src = line.IndexOf("src=", StringComparison.Ordinal);
            int sport = line.IndexOf(" sport=", StringComparison.Ordinal);
            if (src >= 0 && sport > src && string.CompareOrdinal(line, src, source, 0, source.Length) == 0
                && string.CompareOrdinal(line, sport, port, 0, port.Length) == 0
                && (text is null || line.Contains(text, StringComparison.Ordinal)))
            {
                return true;
            }
        }
        return false;
    }

    public void Dispose()
    {
        Stop();
        try
        {
            Directory.Delete(recursive: true);
        }
        catch (IOException)
        {
            // A process we could not end still writes there; the temp cleaner takes it.
        }
    }

    protected abstract void Stop();

    protected string FilePath(string name) => Path.Combine(Directory.FullName, name);

    protected static string Describe(ToolResult result) => result.ToString();
}

/// <summary>Kernel conntrack + iptables; with sync, a conntrackd of its own in FTFW mode over UDP on the sync link.</summary>
internal sealed class KernelGateway : HaGateway
{
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(15);
    private readonly ChildProcess? _conntrackd;

    public KernelGateway(GatewayAddresses self, GatewayAddresses peer, bool sync, string name, string rules)
        : base(self, peer, sync, name)
    {
        try
        {
            string rulesPath = FilePath("rules");
            File.WriteAllText(rulesPath, rules);
            Tool.RunIn(self.Namespace, "iptables-restore", rulesPath);
            // After the rules: their conntrack match loads conntrack into the namespace, and with it this sysctl.
            Tool.RunIn(self.Namespace, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_loose=0");
            if (!sync)
                return;
            ConfigPath = FilePath("conntrackd.conf");
            File.WriteAllText(ConfigPath, Config());
            // In the foreground (no -d), so that it is our child and ends with us.
            _conntrackd = CtfwProcess.StartCommand(Tool.InNetns(self.Namespace, "conntrackd", "-C", ConfigPath));
            var clock = Stopwatch.StartNew();
            while (Conntrackd("-s").ExitCode != 0)
            {
                if (_conntrackd.HasExited || clock.Elapsed > s_startTimeout)
                    throw new InvalidOperationException($"conntrackd did not start in {self.Namespace}: {Log()}");
                Thread.Sleep(50);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override string Kind => Sync ? "conntrackd" : "kernel";

    /// <summary>conntrackd's configuration file (with sync).</summary>
    public string ConfigPath { get; } = "";

    /// <summary>
    /// The FTFW configuration for this gateway: UDP unicast between the sync addresses, its own lock
    /// file, control socket and log under <see cref="HaGateway.Directory"/>, TCP and UDP synced, the
    /// gateway's own addresses ignored (their traffic is the box's, not forwarded state; the sync
    /// traffic itself among it). CommitTimeout: committed entries get a fresh 180 s rather than the
    /// synced timeout minus its age, which for UDP (30 s unreplied) may already have run out.
    /// </summary>
    private string Config()
    {
        var ignore = new StringBuilder();
        foreach (IPAddress own in (IPAddress[])[IPAddress.Loopback, .. Self.Own])
            ignore.Append(CultureInfo.InvariantCulture, $"\t\t\tIPv4_address {own}\n");
        return $$"""
            Sync {
            	Mode FTFW {
            		CommitTimeout 180
            		PurgeTimeout 5
            	}
            	UDP {
            		IPv4_address {{Self.Sync}}
            		IPv4_Destination_Address {{Peer.Sync}}
            		Port {{SyncPort}}
            		Interface {{FailoverLab.SyncInterface}}
            		Checksum on
            	}
            }
            General {
            	HashSize 8192
            	HashLimit 65536
            	LogFile {{FilePath("conntrackd.log")}}
            	Syslog off
            	LockFile {{FilePath("conntrackd.lock")}}
            	UNIX {
            		Path {{FilePath("conntrackd.ctl")}}
            	}
            	NetlinkBufferSize 2097152
            	NetlinkBufferSizeMaxGrowth 8388608
            	Filter From Userspace {
            		Protocol Accept {
            			TCP
            			UDP
            		}
            		Address Ignore {
            {{ignore}}		}
            	}
            }

            """;
    }

    /// <summary>
    /// `conntrackd -C CONFIG ARGS`, whatever its exit status. A client command only talks to the
    /// daemon's UNIX socket (the daemon does the work in its namespace), so it runs here, without the
    /// cost of nsenter: the sync-lag measurement polls with it.
    /// </summary>
    public ToolResult Conntrackd(params string[] args) => Tool.Run(checkExit: false, ["conntrackd", "-C", ConfigPath, .. args]);

    public override string ExternalCache()
    {
        if (!Sync)
            return "";
        ToolResult r = Conntrackd("-e");
        return r.ExitCode == 0 ? r.StdOut : throw new InvalidOperationException("conntrackd -e: " + Describe(r));
    }

    public override string SyncStatus() => Sync ? Conntrackd("-s").StdOut : "";

    public override string Log()
    {
        string log = File.Exists(FilePath("conntrackd.log")) ? File.ReadAllText(FilePath("conntrackd.log")) : "";
        return $"{Kind} in {Self.Namespace}: {log}{_conntrackd?.StdErr}";
    }

    /// <summary>The kernel's table in the gateway's namespace (`conntrack -L`).</summary>
    public string KernelTable() => Tool.Run(checkExit: false, Tool.InNetns(Self.Namespace, "conntrack", "-L")).StdOut;

    protected override (string[] Options, Dictionary<string, string> Environment) NotifyArguments() =>
        (["--conntrackd", "--config", ConfigPath], []);

    protected override void Stop() => _conntrackd?.Dispose();
}

/// <summary>`ctfw run --install FORWARD` with the strict rules; with sync, `--sync ftfw` over the sync link.</summary>
internal sealed class CtfwGateway : HaGateway
{
    private readonly LiveDaemon _daemon;

    public CtfwGateway(GatewayAddresses self, GatewayAddresses peer, bool sync, string name, string rules, ushort queue)
        : base(self, peer, sync, name)
    {
        string[] extra = ["--set", "nf_conntrack_tcp_loose=0"];
        if (sync)
        {
            extra = [.. extra, "--sync", "ftfw",
                "--sync-local", string.Create(CultureInfo.InvariantCulture, $"{self.Sync}:{SyncPort}"),
                "--sync-peer", string.Create(CultureInfo.InvariantCulture, $"{peer.Sync}:{SyncPort}"),
                "--sync-interface", FailoverLab.SyncInterface];
        }
        try
        {
            _daemon = new LiveDaemon(self.Namespace, "ha-" + name, rules, queue, extra);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override string Kind => Sync ? "ctfw --sync" : "ctfw";

    public ChildProcess Process => _daemon.Process;

    /// <summary>`ctfw sync ARGS --control SOCKET`, whatever its exit status.</summary>
    public ToolResult CtfwSync(params string[] args) =>
        CtfwProcess.Run(TimeSpan.FromSeconds(30), ["sync", .. args, "--control", _daemon.ControlPath]);

    /// <summary>
    /// What `ctfw sync external` prints (the daemon's answer, verbatim), asked over the control
    /// socket from here: a poll then costs a request, not a .NET start, which keeps the sync-lag
    /// measurement's resolution near conntrackd's `-e`.
    /// </summary>
    public override string ExternalCache()
    {
        if (!Sync)
            return "";
        return ControlClient.TryRequest(_daemon.ControlPath, ControlProtocol.Sync + "\t" + ControlProtocol.SyncExternal, out string body, out string? error)
            ? body
            : throw new InvalidOperationException("sync external: " + error);
    }

    public override string SyncStatus() => Sync ? CtfwSync("status").StdOut : "";

    public override string Log() => $"{Kind} in {Self.Namespace}: {_daemon?.Process.StdErr}";

    protected override (string[] Options, Dictionary<string, string> Environment) NotifyArguments() =>
        (["--control", _daemon.ControlPath], new() { ["CTFW"] = $"dotnet {CtfwProcess.Dll}" });

    // _daemon is null when LiveDaemon's constructor threw (it cleans up after itself).
    protected override void Stop() => _daemon?.Dispose();
}
