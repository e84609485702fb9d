using Ctfw.Packets;
using Ctfw.Rules.Parsing;

namespace Ctfw.Rules.Compilation;

internal enum RuleOp : byte
{
    /// <summary>No target: count and go on.</summary>
    Continue,
    Accept,
    Drop,
    Reject,
    Log,
    Return,
    Jump,
    Goto,
    /// <summary>Raw table `CT --helper`: set the packet's helper unless a CT already did, and go on.</summary>
    Ct,
    /// <summary>End of a built-in chain (the kernel's "underflow" entry).</summary>
    PolicyAccept,
    PolicyDrop,
}

/// <summary>Which header fields a rule compares (ip_packet_match / ip6_packet_match), and which are negated.</summary>
[Flags]
internal enum HeaderChecks : ushort
{
    None = 0,
    Protocol = 1 << 0,
    ProtocolInvert = 1 << 1,
    Source = 1 << 2,
    SourceInvert = 1 << 3,
    Destination = 1 << 4,
    DestinationInvert = 1 << 5,
    In = 1 << 6,
    InInvert = 1 << 7,
    Out = 1 << 8,
    OutInvert = 1 << 9,
    Fragment = 1 << 10,
    FragmentInvert = 1 << 11,
}

/// <summary>
/// One entry of the flat rule array. Each chain is a contiguous run of its rules followed by one
/// end entry (PolicyAccept/PolicyDrop for built-ins, Return for user chains), exactly the kernel's
/// ipt_entry layout; jumps hold the index of the target chain's first entry.
/// </summary>
internal struct CompiledRule
{
    public IpAddress Source, SourceMask, Destination, DestinationMask;
    public IfName In, InMask, Out, OutMask;
    public HeaderChecks Checks;
    public RuleFamily Family;
    public byte Protocol;
    public RuleOp Op;
    public RejectWith RejectWith;
    /// <summary>Ct: the helper it assigns.</summary>
    public Ctfw.Conntrack.CtHelper Helper;
    /// <summary>Jump/Goto: entry index of the target chain's first entry.</summary>
    public int Target;
    /// <summary>[MatchStart, MatchEnd) in the match array.</summary>
    public int MatchStart, MatchEnd;
    /// <summary>Counter slot, −1 for none (user chain ends).</summary>
    public int Slot;
    /// <summary>Index in <see cref="Ruleset.Rules"/>, −1 for chain ends.</summary>
    public int RuleIndex;
}

[Flags]
internal enum MatchFlags : ushort
{
    None = 0,
    Sport = 1 << 0,
    SportInvert = 1 << 1,
    Dport = 1 << 2,
    DportInvert = 1 << 3,
    TcpFlags = 1 << 4,
    TcpFlagsInvert = 1 << 5,
    /// <summary>Negates the whole match (icmp type, multiport list, state set, mark).</summary>
    Invert = 1 << 6,
    /// <summary>--icmp-type any (type 0xFF in xt_icmp).</summary>
    IcmpAny = 1 << 7,
    State = 1 << 8,
    Direction = 1 << 9,
    /// <summary>--ctdir REPLY (else ORIGINAL).</summary>
    DirectionReply = 1 << 10,
}

/// <summary>One match of a rule, a tagged union over the supported match kinds (comments are dropped at compile time).</summary>
internal struct CompiledMatch
{
    public MatchKind Kind;
    public MatchFlags Flags;
    public ushort SportMin, SportMax, DportMin, DportMax;
    public byte FlagMask, FlagComp;
    public byte IcmpType, IcmpCodeMin, IcmpCodeMax;
    public MultiportMode PortsMode;
    /// <summary>[PortsStart, PortsEnd) in the port-range array.</summary>
    public int PortsStart, PortsEnd;
    public CtStateMask States;
    /// <summary>-m mark: matches when (mark &amp; MarkMask) == Mark (xt_mark; Mark is not masked, as the kernel's is not).</summary>
    public uint Mark, MarkMask;
    /// <summary>-m helper: one bit per <see cref="Ctfw.Conntrack.CtHelper"/> value the match accepts for the master's helper.</summary>
    public byte HelperMask;
}
