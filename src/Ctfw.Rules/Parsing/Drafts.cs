using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Rules.Parsing;

internal enum MatchKind : byte
{
    Tcp,
    Udp,
    Icmp,
    Icmp6,
    Multiport,
    State,
    Conntrack,
    Comment,
    Mark,
    Helper,
}

internal enum MultiportMode : byte
{
    Source,
    Destination,
    Either,
}

/// <summary>One `-m` (or implicit protocol) match of a rule as parsed.</summary>
internal sealed class MatchDraft
{
    public MatchDraft(MatchKind kind, Token nameToken, bool isImplicit)
    {
        Kind = kind;
        NameToken = nameToken;
        Implicit = isImplicit;
    }

    public MatchKind Kind { get; }
    public Token NameToken { get; }
    /// <summary>Loaded by -p for its options (iptables-save writes it as `-m tcp` etc.).</summary>
    public bool Implicit { get; }
    public HashSet<string> SeenOptions { get; } = new(StringComparer.Ordinal);

    public bool HasSport, SportInvert, HasDport, DportInvert;
    public PortRange Sport, Dport;
    public bool HasFlags, FlagsInvert;
    public byte FlagMask, FlagComp;

    public bool HasIcmp, IcmpInvert;
    public byte IcmpType, IcmpCodeMin, IcmpCodeMax;

    public bool HasPorts, PortsInvert;
    public MultiportMode PortsMode;
    public List<PortRange> Ports { get; } = [];

    public bool HasState, StateInvert;
    public CtStateMask States;
    public bool HasDirection;
    public CtDirection Direction;

    public string? Comment;

    /// <summary>`-m mark [!] --mark VALUE[/MASK]`: (skb->mark &amp; MASK) == VALUE, as xt_mark.</summary>
    public bool HasMark, MarkInvert;
    public uint Mark, MarkMask;

    /// <summary>`-m helper [!] --helper NAME`: the helper of the connection's master (xt_helper).</summary>
    public bool HasHelper, HelperInvert;
    public string HelperName = "";
}

/// <summary>A rule line as parsed, before addresses are expanded and jumps resolved.</summary>
internal sealed class RuleDraft
{
    public RuleDraft(string chain, int line) { Chain = chain; Line = line; }

    public string Chain { get; }
    public int Line { get; }
    /// <summary>The words after "-A CHAIN", re-quoted: what dumps show.</summary>
    public List<string> Words = [];
    /// <summary>Index in <see cref="Words"/> of the -s / -d value (−1 if none), replaced per address when a list is expanded.</summary>
    public int SourceWord = -1, DestinationWord = -1;
    public ulong Packets, Bytes;

    public RuleFamily Family = RuleFamily.Both;
    /// <summary>What made the rule single-family, for error messages.</summary>
    public string FamilyReason = "";

    public bool HasProtocol, ProtocolInvert;
    public byte Protocol;
    public List<AddressSpec> Sources = [], Destinations = [];
    public bool SourceInvert, DestinationInvert;
    public bool HasIn, InInvert, HasOut, OutInvert;
    public IfName In, InMask, Out, OutMask;
    public Token InToken, OutToken;
    public bool HasFragment, FragmentInvert;

    public List<MatchDraft> Matches = [];

    public bool HasTarget;
    public RuleTarget Target;
    public Token TargetToken;
    public string? JumpChain;
    public RejectWith RejectWith;
    public Token RejectToken;
    public LogOptions? Log;
    /// <summary>`-j CT --helper NAME` (raw table).</summary>
    public CtHelper Helper;
    /// <summary>The protocol the helper serves (tcp for ftp, udp for tftp).</summary>
    public byte HelperProtocol;
    public Token HelperToken;
    public HashSet<string> TargetOptions { get; } = new(StringComparer.Ordinal);

    public IEnumerable<string> Comments => Matches.Where(m => m.Comment is not null).Select(m => m.Comment!);

    public bool ProtocolIs(byte protocol) => HasProtocol && !ProtocolInvert && Protocol == protocol;
}

/// <summary>A chain as declared (`:NAME POLICY [p:b]` or `-N NAME`) with its rules.</summary>
internal sealed class ChainDraft
{
    public ChainDraft(string name, Hook? builtin, int line, int column)
    {
        Name = name;
        Builtin = builtin;
        Line = line;
        Column = column;
    }

    public string Name { get; }
    public Hook? Builtin { get; }
    public int Line { get; set; }
    public int Column { get; set; }
    /// <summary>Built-in chains exist before any declaration; this says whether the file declared it.</summary>
    public bool Declared { get; set; }
    public Verdict Policy { get; set; } = Verdict.Accept;
    public ulong Packets, Bytes;
    public List<RuleDraft> Rules { get; } = [];
}

/// <summary>The parse of one table (*filter or *raw).</summary>
internal sealed class TableDraft
{
    public RuleTable Kind { get; init; }
    public List<ChainDraft> Chains { get; } = [];
    public Dictionary<string, ChainDraft> ByName { get; } = new(StringComparer.Ordinal);
    public int Line { get; init; }
}

internal static class IpProtoExtra
{
    public const byte Dccp = 33;

    public static bool HasPorts(byte protocol) =>
        protocol is IpProto.Tcp or IpProto.Udp or IpProto.UdpLite or IpProto.Sctp or Dccp;
}
