using System.Globalization;
using System.Text;

namespace Ctfw.Lab.Flood;

/// <summary>Which firewall a hostile-load run puts on the gateway.</summary>
public enum HostileFirewallKind
{
    /// <summary><c>ctfw run --install FORWARD</c> with the suite's ruleset and its own conntrack.</summary>
    Ctfw,
    /// <summary>The same ruleset loaded into iptables and ip6tables: kernel conntrack, no NFQUEUE.</summary>
    Kernel,
}

/// <summary>
/// The firewall under test and how it is configured. The table size is the same for both kinds:
/// <c>--set nf_conntrack_max=N</c> for ctfw, the kernel's global <c>nf_conntrack_max</c> (set for the
/// run and restored, see <see cref="KernelConntrackMax"/>) for the kernel.
/// </summary>
public sealed record HostileFirewall
{
    /// <summary>What reports call this configuration (e.g. "ctfw", "ctfw --queue-full accept", "kernel").</summary>
    public required string Name { get; init; }

    public HostileFirewallKind Kind { get; init; } = HostileFirewallKind.Ctfw;

    /// <summary>The argv prefix that runs ctfw (the binary, or dotnet and ctfw.dll); unused for the kernel.</summary>
    public IReadOnlyList<string> CtfwCommand { get; init; } = [];

    /// <summary>Added to <c>ctfw run</c>'s arguments (e.g. <c>--queue-full accept</c>, <c>--ab kernel</c>).</summary>
    public IReadOnlyList<string> ExtraArgs { get; init; } = [];

    /// <summary>The NFQUEUE numbers: one (<c>--queue N</c>) or a range (<c>--queues N-M</c>).</summary>
    public int FirstQueue { get; init; } = 30;

    public int QueueCount { get; init; } = 1;

    /// <summary>The table size given to the firewall.</summary>
    public int TableMax { get; init; } = 5000;

    /// <summary>
    /// When set, ctfw's stderr goes to this path (a FIFO nobody reads, in the blocked-stderr case); the
    /// daemon's readiness is then seen on its control socket and in iptables, never in its output.
    /// </summary>
    public string? StderrPath { get; init; }

    /// <summary>Adds a LOG rule that every flood SYN hits.</summary>
    public bool LogFlood { get; init; }

    /// <summary>The daemon's counters by name (as <c>ctfw stats --raw</c>) from its control socket, or null when it does not answer.</summary>
    public Func<string, IReadOnlyDictionary<string, long>?> ReadStats { get; init; } = _ => null;

    /// <summary><c>ctfw run</c>'s arguments after <see cref="CtfwCommand"/>.</summary>
    public IReadOnlyList<string> RunArgs(string rulesPath, string controlPath)
    {
        string[] queues = QueueCount <= 1
            ? ["--queue", FirstQueue.ToString(CultureInfo.InvariantCulture)]
            : ["--queues", string.Create(CultureInfo.InvariantCulture, $"{FirstQueue}-{FirstQueue + QueueCount - 1}")];
        return ["run", "--rules", rulesPath, .. queues, "--install", "FORWARD", "--control", controlPath,
            "--set", string.Create(CultureInfo.InvariantCulture, $"nf_conntrack_max={TableMax}"), .. ExtraArgs];
    }
}

/// <summary>The suite's ruleset and ports.</summary>
public static class HostileRules
{
    /// <summary>The server's allowed TCP port: the conversations, the new-connection probe and the SYN flood go there.</summary>
    public const int TcpPort = 7101;

    /// <summary>The server's allowed UDP port (client side to server side only): the 64-byte overload goes there.</summary>
    public const int UdpPort = 7102;

    /// <summary>Forbidden for TCP and UDP: the forbidden-port probe goes there, and the server counts what arrives.</summary>
    public const int ForbiddenPort = 7103;

    public const string LogPrefix = "ctfw-hostile: ";

    /// <summary>
    /// In iptables-save format, IPv4 and IPv6 alike (no addresses: the interfaces say the direction),
    /// so iptables-restore, ip6tables-restore and ctfw load the same text: FORWARD policy DROP, INVALID
    /// dropped, RELATED/ESTABLISHED accepted, NEW accepted only for a TCP SYN to <see cref="TcpPort"/>
    /// and for UDP from the client side to <see cref="UdpPort"/>. Everything else, the
    /// <see cref="ForbiddenPort"/> included, is dropped by the policy. With <paramref name="logFlood"/>
    /// every SYN to <see cref="TcpPort"/> (the flood's) hits a LOG rule first.
    /// </summary>
    public static string Ruleset(bool logFlood)
    {
        var rules = new StringBuilder();
        rules.Append("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        rules.Append("-A FORWARD -m conntrack --ctstate INVALID -j DROP\n");
        if (logFlood)
        {
            rules.Append(CultureInfo.InvariantCulture,
                $"-A FORWARD -p tcp -m tcp --dport {TcpPort} --tcp-flags FIN,SYN,RST,ACK SYN -j LOG --log-prefix \"{LogPrefix}\"\n");
        }
        rules.Append("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
        rules.Append(CultureInfo.InvariantCulture,
            $"-A FORWARD -i {HostileLab.GatewayClientDevice} -o {HostileLab.GatewayServerDevice} -p tcp -m tcp --dport {TcpPort} --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT\n");
        rules.Append(CultureInfo.InvariantCulture,
            $"-A FORWARD -i {HostileLab.GatewayClientDevice} -o {HostileLab.GatewayServerDevice} -p udp -m udp --dport {UdpPort} -m conntrack --ctstate NEW -j ACCEPT\n");
        rules.Append("COMMIT\n");
        return rules.ToString();
    }
}
