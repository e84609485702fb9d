using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Rules;

/// <summary>
/// Everything the filter table looks at for one packet, gathered by the caller without copying:
/// the parsed packet is referenced, not copied, and the raw bytes are a span. Only
/// <see cref="Ruleset.Evaluate(in PacketFacts, Span{int})"/>'s matches read the parsed fields; LOG
/// (<see cref="LogFormatter"/>) and REJECT (<see cref="RejectBuilder"/>) read the bytes, as the
/// kernel's nf_log and nf_reject do.
/// </summary>
public readonly ref struct PacketFacts
{
    /// <param name="hook">The built-in chain the packet enters.</param>
    /// <param name="packet">The parse of <paramref name="bytes"/>.</param>
    /// <param name="bytes">The IP packet (from the network header), for LOG and REJECT; may be empty for evaluation only.</param>
    /// <param name="parseResult">What <see cref="PacketParser.Parse"/> returned: tells non-first fragments and unparseable IP headers apart.</param>
    public PacketFacts(Hook hook, ref readonly ParsedPacket packet, ReadOnlySpan<byte> bytes, InvalidReason parseResult)
    {
        Hook = hook;
        Packet = ref packet;
        Bytes = bytes;
        ParseResult = parseResult;
    }

    public readonly ref readonly ParsedPacket Packet;
    public ReadOnlySpan<byte> Bytes { get; }
    public Hook Hook { get; }
    public InvalidReason ParseResult { get; }

    /// <summary>Input interface (none on OUTPUT).</summary>
    public IfName In { get; init; }
    /// <summary>Output interface (none on INPUT).</summary>
    public IfName Out { get; init; }
    /// <summary>From conntrack. The default, INVALID, is what an untracked-by-mistake packet would see.</summary>
    public CtState State { get; init; }
    public CtDirection Direction { get; init; }
    /// <summary>
    /// The helper of the connection's master (<see cref="Classification.MasterHelper"/>), read by
    /// `-m helper`; <see cref="CtHelper.None"/> when the connection has no master or the master no helper.
    /// </summary>
    public CtHelper MasterHelper { get; init; }
    /// <summary>Conntrack status bits; only the kernel's IPS_SRC_NAT (bit 4) and IPS_DST_NAT (bit 5) are read, for --ctstate SNAT/DNAT.</summary>
    public CtStatus Status { get; init; }
    /// <summary>skb->mark with the bits shadow mode owns cleared: matched by -m mark, printed by LOG as MARK= when not zero.</summary>
    public uint Mark { get; init; }
    /// <summary>The link-layer header as received (the kernel prints it as MAC= on INPUT/FORWARD); empty if unknown.</summary>
    public ReadOnlySpan<byte> MacHeader { get; init; }
    /// <summary>Bytes counted by rule counters; 0 means the IP total length.</summary>
    public int Length { get; init; }

    internal bool IsNonFirstFragment => ParseResult == InvalidReason.NonFirstFragment;
}
