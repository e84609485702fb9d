using System.Globalization;

namespace Ctfw.Lab.Scenarios;

/// <summary>ctstate names as iptables' conntrack match spells them.</summary>
public static class CtStates
{
    public const string New = "NEW";
    public const string Established = "ESTABLISHED";
    public const string Related = "RELATED";
    public const string Invalid = "INVALID";
    public const string Untracked = "UNTRACKED";

    public static readonly IReadOnlyList<string> All = [New, Established, Related, Invalid, Untracked];
}

/// <summary>Packet direction relative to its entry; <see cref="None"/> when there is no entry.</summary>
public static class CtDirections
{
    public const string Original = "ORIGINAL";
    public const string Reply = "REPLY";
    public const string None = "-";
}

/// <summary>The kernel's <c>tcp_conntrack_names</c>, as <c>conntrack -L</c> prints them; <see cref="None"/> = no TCP entry.</summary>
public static class TcpStates
{
    public const string None = "-";
    public const string SynSent = "SYN_SENT";
    public const string SynRecv = "SYN_RECV";
    public const string Established = "ESTABLISHED";
    public const string FinWait = "FIN_WAIT";
    public const string CloseWait = "CLOSE_WAIT";
    public const string LastAck = "LAST_ACK";
    public const string TimeWait = "TIME_WAIT";
    public const string Close = "CLOSE";
    public const string SynSent2 = "SYN_SENT2";

    public static readonly IReadOnlyList<string> All =
        [None, SynSent, SynRecv, Established, FinWait, CloseWait, LastAck, TimeWait, Close, SynSent2];
}

/// <summary>
/// What the kernel said about one packet: its ctstate and direction as the FORWARD hook saw them,
/// the TCP state of its entry right after it (or <c>-</c>), and a reason column (always <c>-</c> in
/// recordings: the kernel does not export reasons per packet; see the <c>.reasons</c> side file).
/// </summary>
public sealed record KernelVerdict(string CtState, string Direction, string TcpState, string Reason = "-")
{
    public override string ToString() => $"{CtState} {Direction} {TcpState}";

    /// <summary>True when ctstate, direction and TCP state agree (the reason column is informational).</summary>
    public bool SameClassification(KernelVerdict other) =>
        CtState == other.CtState && Direction == other.Direction && TcpState == other.TcpState;
}

/// <summary>
/// The kernel's <c>sctp_conntrack_names</c> (6.18), as <c>conntrack -L</c> prints them; they go in the
/// same column as the TCP state (the entry's protocol state).
/// </summary>
public static class SctpStates
{
    public const string Closed = "CLOSED";
    public const string CookieWait = "COOKIE_WAIT";
    public const string CookieEchoed = "COOKIE_ECHOED";
    public const string Established = "ESTABLISHED";
    public const string ShutdownSent = "SHUTDOWN_SENT";
    public const string ShutdownRecd = "SHUTDOWN_RECD";
    public const string ShutdownAckSent = "SHUTDOWN_ACK_SENT";
    public const string HeartbeatSent = "HEARTBEAT_SENT";

    public static readonly IReadOnlyList<string> All =
        [Closed, CookieWait, CookieEchoed, Established, ShutdownSent, ShutdownRecd, ShutdownAckSent, HeartbeatSent];
}
