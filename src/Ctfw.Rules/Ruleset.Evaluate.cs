using System.Runtime.CompilerServices;
using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules.Compilation;
using Ctfw.Rules.Parsing;

namespace Ctfw.Rules;

public sealed partial class Ruleset
{
    // xt_conntrack reads these ct->status bits for --ctstate SNAT/DNAT (IPS_SRC_NAT_BIT 4, IPS_DST_NAT_BIT 5).
    private const CtStatus IpsSrcNat = (CtStatus)(1u << 4);
    private const CtStatus IpsDstNat = (CtStatus)(1u << 5);

    /// <summary>As <see cref="Evaluate(in PacketFacts, Span{int})"/> without collecting LOG hits (they are still counted).</summary>
    public RuleVerdict Evaluate(in PacketFacts facts) => Evaluate(facts, default);

    /// <summary>
    /// Runs the packet through the hook's built-in chain as the kernel's <c>ipt_do_table</c> does:
    /// first matching rule wins; LOG records the rule in <paramref name="logHits"/> and goes on; -j
    /// pushes a return point, -g does not; RETURN (or a user chain's end) pops, and with nothing to
    /// pop lands on the built-in chain's policy. A rule's counters are bumped when all its matches
    /// pass, before its target. Bounded by <see cref="MaxStepsPerPacket"/>; no allocation, no locks,
    /// no exceptions.
    /// </summary>
    /// <param name="logHits">Receives the <see cref="Rules"/> indexes of LOG rules that matched, in order (as many as fit).</param>
    public RuleVerdict Evaluate(in PacketFacts facts, Span<int> logHits)
    {
        ref readonly ParsedPacket p = ref facts.Packet;
        if (facts.State == CtState.Dropped || (uint)facts.Hook > (uint)Hook.Output || !IsFilterable(p, facts.ParseResult))
            return new RuleVerdict(Verdict.Drop, RejectWith.Default, -1, 0, VerdictReason.NotFiltered);

        RuleFamily family = p.IpVersion == 4 ? RuleFamily.IPv4 : RuleFamily.IPv6;
        long bytes = facts.Length > 0 ? facts.Length : p.IpTotalLength;
        var ctx = new MatchContext
        {
            Family = family,
            L4Available = Math.Max(0, p.CapturedLength - p.L3HeaderLength),
            Fragment = facts.IsNonFirstFragment,
            StateBit = StateBit(facts.State),
            HasConntrack = facts.State is CtState.New or CtState.Established or CtState.Related,
        };

        CompiledRule[] entries = _table.Entries;
        int hook = (int)facts.Hook;
        int pc = _table.HookEntry[hook];
        Span<int> stack = stackalloc int[RulesetCompiler.MaxCallDepth];
        int sp = 0, logs = 0;
        for (int budget = _table.MaxSteps + 1; budget > 0; budget--)
        {
            ref readonly CompiledRule r = ref entries[pc];
            if (!Matches(in r, _table, in facts, in p, ref ctx))
            {
                if (ctx.HotDrop)
                    return new RuleVerdict(Verdict.Drop, RejectWith.Default, r.RuleIndex, logs, VerdictReason.HotDrop);
                pc++;
                continue;
            }
            if (r.Slot >= 0)
                _counters.Add(r.Slot, bytes);
            switch (r.Op)
            {
                case RuleOp.Continue:
                    pc++;
                    break;
                case RuleOp.Log:
                    if (logs < logHits.Length)
                        logHits[logs] = r.RuleIndex;
                    logs++;
                    pc++;
                    break;
                case RuleOp.Accept:
                    return new RuleVerdict(Verdict.Accept, RejectWith.Default, r.RuleIndex, logs, VerdictReason.Rule);
                case RuleOp.Drop:
                    return new RuleVerdict(Verdict.Drop, RejectWith.Default, r.RuleIndex, logs, VerdictReason.Rule);
                case RuleOp.Reject:
                    RejectWith with = r.RejectWith != RejectWith.Default ? r.RejectWith
                        : family == RuleFamily.IPv4 ? RejectWith.IcmpPortUnreachable : RejectWith.Icmp6PortUnreachable;
                    return new RuleVerdict(Verdict.Reject, with, r.RuleIndex, logs, VerdictReason.Rule);
                case RuleOp.Return:
                    pc = sp == 0 ? _table.Underflow[hook] : stack[--sp];
                    break;
                case RuleOp.Jump:
                    if (sp == stack.Length)
                        return new RuleVerdict(Verdict.Drop, RejectWith.Default, r.RuleIndex, logs, VerdictReason.Overflow);
                    stack[sp++] = pc + 1;
                    pc = r.Target;
                    break;
                case RuleOp.Goto:
                    pc = r.Target;
                    break;
                case RuleOp.PolicyAccept:
                    return new RuleVerdict(Verdict.Accept, RejectWith.Default, -1, logs, VerdictReason.Policy);
                default:
                    return new RuleVerdict(Verdict.Drop, RejectWith.Default, -1, logs, VerdictReason.Policy);
            }
        }
        return new RuleVerdict(Verdict.Drop, RejectWith.Default, -1, logs, VerdictReason.Overflow);
    }

    /// <summary>Packets the kernel drops in ip_rcv/ip6_rcv, before any hook: no usable IP header.</summary>
    internal static bool IsFilterable(in ParsedPacket p, InvalidReason parse) =>
        p.IpVersion is 4 or 6
        && parse is not (InvalidReason.Truncated or InvalidReason.BadIpVersion or InvalidReason.BadIpv4HeaderLength
            or InvalidReason.BadIpv4TotalLength or InvalidReason.BadIpv6PayloadLength);

    private static CtStateMask StateBit(CtState state) => state switch
    {
        CtState.New => CtStateMask.New,
        CtState.Established => CtStateMask.Established,
        CtState.Related => CtStateMask.Related,
        CtState.Untracked => CtStateMask.Untracked,
        _ => CtStateMask.Invalid,
    };

    internal struct MatchContext
    {
        public RuleFamily Family;
        public int L4Available;
        public bool Fragment;
        public CtStateMask StateBit;
        /// <summary>nf_ct_get returns an entry (not INVALID, not UNTRACKED).</summary>
        public bool HasConntrack;
        public bool HotDrop;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool InNet(IpAddress a, IpAddress net, IpAddress mask) =>
        (((a.Hi & mask.Hi) ^ net.Hi) | ((a.Lo & mask.Lo) ^ net.Lo)) == 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool InRange(ushort port, ushort min, ushort max) => port >= min && port <= max;

    /// <summary>ip_packet_match / ip6_packet_match, then each match in order (xt_tcpudp, xt_icmp, xt_multiport, xt_state, xt_conntrack, xt_mark, xt_helper).</summary>
    internal static bool Matches(in CompiledRule r, CompiledTable table, in PacketFacts facts, in ParsedPacket p, ref MatchContext ctx)
    {
        if ((r.Family & ctx.Family) == 0)
            return false;
        HeaderChecks c = r.Checks;
        if (c != HeaderChecks.None)
        {
            if ((c & HeaderChecks.Source) != 0 && InNet(p.Src, r.Source, r.SourceMask) == ((c & HeaderChecks.SourceInvert) != 0))
                return false;
            if ((c & HeaderChecks.Destination) != 0 && InNet(p.Dst, r.Destination, r.DestinationMask) == ((c & HeaderChecks.DestinationInvert) != 0))
                return false;
            if ((c & HeaderChecks.In) != 0 && facts.In.MatchesUnder(r.In, r.InMask) == ((c & HeaderChecks.InInvert) != 0))
                return false;
            if ((c & HeaderChecks.Out) != 0 && facts.Out.MatchesUnder(r.Out, r.OutMask) == ((c & HeaderChecks.OutInvert) != 0))
                return false;
            if ((c & HeaderChecks.Protocol) != 0)
            {
                // ip6_packet_match: an extension chain that cannot be walked drops the packet (ipv6_find_hdr < 0, offset 0).
                if (ctx.Family == RuleFamily.IPv6 && facts.ParseResult == InvalidReason.BadIpv6ExtensionHeader)
                {
                    ctx.HotDrop = true;
                    return false;
                }
                if ((p.Protocol == r.Protocol) == ((c & HeaderChecks.ProtocolInvert) != 0))
                    return false;
            }
            if ((c & HeaderChecks.Fragment) != 0 && ctx.Fragment == ((c & HeaderChecks.FragmentInvert) != 0))
                return false;
        }

        CompiledMatch[] matches = table.Matches;
        for (int i = r.MatchStart; i < r.MatchEnd; i++)
        {
            if (!Match(in matches[i], table, in facts, in p, ref ctx))
                return false;
        }
        return true;
    }

    private static bool Match(in CompiledMatch m, CompiledTable table, in PacketFacts facts, in ParsedPacket p, ref MatchContext ctx)
    {
        MatchFlags f = m.Flags;
        bool invert = (f & MatchFlags.Invert) != 0;
        switch (m.Kind)
        {
            case MatchKind.Tcp:
                if (ctx.Fragment)
                {
                    // tcp_mt: "Don't allow a fragment of TCP 8 bytes in" — offset 1 could rewrite the flags.
                    if (ctx.Family == RuleFamily.IPv4 && facts.Bytes.Length >= 8 && ((facts.Bytes[6] << 8 | facts.Bytes[7]) & 0x1FFF) == 1)
                        ctx.HotDrop = true;
                    return false;
                }
                if (ctx.L4Available < TcpHeader.MinLength)
                {
                    ctx.HotDrop = true;
                    return false;
                }
                return PortsMatch(in m, p.SrcPort, p.DstPort)
                    && ((f & MatchFlags.TcpFlags) == 0
                        || ((((byte)p.TcpFlags & m.FlagMask) == m.FlagComp) != ((f & MatchFlags.TcpFlagsInvert) != 0)));
            case MatchKind.Udp:
                if (ctx.Fragment)
                    return false;
                if (ctx.L4Available < UdpHeader.Length)
                {
                    ctx.HotDrop = true;
                    return false;
                }
                return PortsMatch(in m, p.SrcPort, p.DstPort);
            case MatchKind.Icmp or MatchKind.Icmp6:
                if (ctx.Fragment)
                    return false;
                if (ctx.L4Available < IcmpHeader.Length)
                {
                    ctx.HotDrop = true;
                    return false;
                }
                bool icmp = (f & MatchFlags.IcmpAny) != 0
                    || (p.IcmpType == m.IcmpType && p.IcmpCode >= m.IcmpCodeMin && p.IcmpCode <= m.IcmpCodeMax);
                return icmp != invert;
            case MatchKind.Multiport:
                if (ctx.Fragment)
                    return false;
                if (ctx.L4Available < 4)
                {
                    ctx.HotDrop = true;
                    return false;
                }
                return MultiportMatch(in m, table.Ports, p.SrcPort, p.DstPort) != invert;
            case MatchKind.State:
                return ((m.States & ctx.StateBit) != 0) != invert;
            case MatchKind.Mark:
                // xt_mark's mark_mt. The pipeline has cleared the bits shadow mode owns (docs/AB.md).
                return ((facts.Mark & m.MarkMask) == m.Mark) != invert;
            case MatchKind.Conntrack:
            {
                // xt_conntrack's conntrack_mt, including its quirk: with no entry (INVALID, UNTRACKED)
                // the match is decided by --ctstate alone; --ctdir then cannot match.
                if ((f & MatchFlags.State) != 0)
                {
                    CtStateMask bit = ctx.StateBit;
                    if (ctx.HasConntrack)
                    {
                        if ((facts.Status & IpsSrcNat) != 0)
                            bit |= CtStateMask.Snat;
                        if ((facts.Status & IpsDstNat) != 0)
                            bit |= CtStateMask.Dnat;
                    }
                    if (((m.States & bit) != 0) == invert)
                        return false;
                }
                if (!ctx.HasConntrack)
                    return (f & MatchFlags.State) != 0;
                if ((f & MatchFlags.Direction) != 0
                    && (facts.Direction == CtDirection.Reply) != ((f & MatchFlags.DirectionReply) != 0))
                    return false;
                return true;
            }
            case MatchKind.Helper:
            {
                // xt_helper's helper_mt: without an entry, or without a master with a helper, the
                // match is its inversion alone; a master's own packets have no master.
                CtHelper helper = facts.MasterHelper;
                if (!ctx.HasConntrack || helper == CtHelper.None)
                    return invert;
                return ((m.HelperMask >> (int)helper & 1) != 0) != invert;
            }
            default:
                return true;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool PortsMatch(in CompiledMatch m, ushort sport, ushort dport)
    {
        MatchFlags f = m.Flags;
        if ((f & MatchFlags.Sport) != 0 && InRange(sport, m.SportMin, m.SportMax) == ((f & MatchFlags.SportInvert) != 0))
            return false;
        if ((f & MatchFlags.Dport) != 0 && InRange(dport, m.DportMin, m.DportMax) == ((f & MatchFlags.DportInvert) != 0))
            return false;
        return true;
    }

    private static bool MultiportMatch(in CompiledMatch m, PortRange[] ports, ushort sport, ushort dport)
    {
        for (int i = m.PortsStart; i < m.PortsEnd; i++)
        {
            PortRange range = ports[i];
            bool hit = m.PortsMode switch
            {
                MultiportMode.Source => InRange(sport, range.Min, range.Max),
                MultiportMode.Destination => InRange(dport, range.Min, range.Max),
                _ => InRange(sport, range.Min, range.Max) || InRange(dport, range.Min, range.Max),
            };
            if (hit)
                return true;
        }
        return false;
    }
}
