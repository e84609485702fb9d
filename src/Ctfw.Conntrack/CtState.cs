namespace Ctfw.Conntrack;

/// <summary>The ctstate a ruleset sees (`-m conntrack --ctstate`), kernel-conntrack.md §1.5.</summary>
public enum CtState : byte
{
    Invalid = 0,
    New,
    Established,
    Related,
    Untracked,
    /// <summary>
    /// Not a ctstate: conntrack itself drops the packet before any rule sees it (table full, reopen
    /// race). Named DROPPED everywhere (replay's lines, stats' counters, the daemon's summary), never
    /// DROP, which is a rule's verdict.
    /// </summary>
    Dropped,
}

/// <summary>Direction of a packet relative to the entry it belongs to.</summary>
public enum CtDirection : byte
{
    Original = 0,
    Reply = 1,
    None = 2,
}

/// <summary>`enum tcp_conntrack` (§1.7), including the two timeout-only slots.</summary>
public enum TcpState : byte
{
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    SynSent2 = 9,
    Max = 10,      // "sIV" in the transition table
    Ignore = 11,   // "sIG"
    Retrans = 12,  // timeout slot only
    Unack = 13,    // timeout slot only
}

/// <summary>`enum sctp_conntrack` as the running kernel (6.18) has it: HEARTBEAT_ACKED is gone since 6.3.</summary>
public enum SctpState : byte
{
    None = 0,
    Closed = 1,
    CookieWait = 2,
    CookieEchoed = 3,
    Established = 4,
    ShutdownSent = 5,
    ShutdownRecd = 6,
    ShutdownAckSent = 7,
    HeartbeatSent = 8,
    /// <summary>"sIV" in the transition table.</summary>
    Max = 9,
}

/// <summary>`enum ip_conntrack_status` bits we keep (§1.6), plus ctfw-private bits above 16.</summary>
[Flags]
public enum CtStatus : uint
{
    None = 0,
    Expected = 1 << 0,
    SeenReply = 1 << 1,
    Assured = 1 << 2,
    Confirmed = 1 << 3,
    Dying = 1 << 9,
    FixedTimeout = 1 << 10,
    /// <summary>
    /// IPS_OFFLOAD: the flow's data packets are forwarded by the kernel without ctfw (docs/OFFLOAD.md);
    /// set while elements of the flow may be in the offload sets. Printed as [OFFLOAD], as conntrack
    /// prints the kernel's flowtable entries.
    /// </summary>
    Offload = 1 << 14,

    /// <summary>ctfw: the entry is linked into the timer wheel (owned by the housekeeper).</summary>
    Armed = 1 << 20,
    /// <summary>
    /// ctfw: the entry was brought back by a late FIN or RST after it expired, or opened as a
    /// closing-only entry by loose rescue (docs/RESCUE.md). Never reported in <c>Status</c> values
    /// (which carry the kernel's bits only); see <see cref="FlowInfo.Rescued"/>.
    /// </summary>
    Rescued = 1u << 21,
    /// <summary>ctfw: per-entry spin lock (the kernel's ct->lock), held while a packet updates the entry.</summary>
    Locked = 1u << 31,
}

public static class CtNames
{
    public static string Name(this CtState s) => s switch
    {
        CtState.New => "NEW",
        CtState.Established => "ESTABLISHED",
        CtState.Related => "RELATED",
        CtState.Untracked => "UNTRACKED",
        // Not DROP: that is a verdict (a rule's, or a policy's); this packet never reached a rule.
        CtState.Dropped => "DROPPED",
        _ => "INVALID",
    };

    public static string Name(this CtDirection d) => d switch
    {
        CtDirection.Original => "ORIGINAL",
        CtDirection.Reply => "REPLY",
        _ => "-",
    };

    /// <summary>The kernel's `tcp_conntrack_names` (as `conntrack -L` prints them).</summary>
    public static string Name(this TcpState s) => s switch
    {
        TcpState.None => "NONE",
        TcpState.SynSent => "SYN_SENT",
        TcpState.SynRecv => "SYN_RECV",
        TcpState.Established => "ESTABLISHED",
        TcpState.FinWait => "FIN_WAIT",
        TcpState.CloseWait => "CLOSE_WAIT",
        TcpState.LastAck => "LAST_ACK",
        TcpState.TimeWait => "TIME_WAIT",
        TcpState.Close => "CLOSE",
        TcpState.SynSent2 => "SYN_SENT2",
        _ => "-",
    };

    /// <summary>The kernel's `sctp_conntrack_names` (as `conntrack -L` prints them).</summary>
    public static string Name(this SctpState s) => s switch
    {
        SctpState.None => "NONE",
        SctpState.Closed => "CLOSED",
        SctpState.CookieWait => "COOKIE_WAIT",
        SctpState.CookieEchoed => "COOKIE_ECHOED",
        SctpState.Established => "ESTABLISHED",
        SctpState.ShutdownSent => "SHUTDOWN_SENT",
        SctpState.ShutdownRecd => "SHUTDOWN_RECD",
        SctpState.ShutdownAckSent => "SHUTDOWN_ACK_SENT",
        SctpState.HeartbeatSent => "HEARTBEAT_SENT",
        _ => "-",
    };

    /// <summary>
    /// The protocol state `conntrack -L` prints for the packet's entry: the TCP or SCTP state name,
    /// or <c>-</c> when the protocol has none or the packet has no entry.
    /// </summary>
    public static string ProtocolStateName(this in Classification r) => r.Protocol switch
    {
        Ctfw.Packets.IpProto.Tcp when r.TcpState != TcpState.None => r.TcpState.Name(),
        Ctfw.Packets.IpProto.Sctp when r.SctpState != SctpState.None => r.SctpState.Name(),
        _ => "-",
    };

    public static bool TryParseTcpState(string text, out TcpState state)
    {
        for (int i = 0; i <= (int)TcpState.SynSent2; i++)
        {
            if (string.Equals(((TcpState)i).Name(), text, StringComparison.OrdinalIgnoreCase))
            {
                state = (TcpState)i;
                return true;
            }
        }
        state = TcpState.Max;
        return false;
    }
}
