using System.Globalization;
using System.Text;
using Ctfw.Capture;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Commands;

/// <summary>What <c>replay --rules</c> puts in front of the tracker: the ruleset, the hook, the interfaces.</summary>
internal sealed record ReplayFirewall(Ruleset Rules, PacketHook Hook = PacketHook.Forward, string? In = null, string? Out = null);

/// <summary>
/// The replay loop, separate from argument handling so tests can drive it. Every record goes through
/// the same <see cref="FirewallPipeline"/> the daemon runs, with the record's timestamp as the clock:
/// without a ruleset it tracks and accepts everything (every recorded packet was forwarded), with one
/// it decides as the daemon would, so a NEW packet the rules drop creates no state.
/// </summary>
internal sealed class Replayer : IDisposable
{
    private const uint InIndex = 1, OutIndex = 2;

    private readonly ConntrackSettings _settings;
    private readonly RescueOptions? _rescue;
    private readonly ChecksumPolicy _checksums;
    private readonly ReplayFirewall? _firewall;
    private readonly bool _text;
    private readonly TextWriter? _out;
    private ConntrackEngine? _engine;
    private FirewallPipeline? _pipeline;
    private readonly long[] _byState = new long[8];
    private readonly long[] _byReason = new long[InvalidReasons.Count];
    private readonly long[] _byVerdict = new long[3];
    private long _skipped;
    private long _firstNs = long.MinValue;

    public Replayer(ConntrackSettings settings, bool text, TextWriter? output, RescueOptions? rescue = null,
        ChecksumPolicy checksums = ChecksumPolicy.Auto, ReplayFirewall? firewall = null)
    {
        _settings = settings;
        _rescue = rescue;
        _checksums = checksums;
        _firewall = firewall;
        _text = text;
        _out = output;
    }

    public long Packets { get; private set; }

    public void Process(in CaptureRecord record)
    {
        Packets++;
        long index = record.Index + 1;
        LinkResult link = CapturedDatagram.Get(record, _checksums, out CapturedDatagram datagram);
        ReadOnlySpan<byte> ip = datagram.Packet;
        if (link != LinkResult.Ip)
        {
            _skipped++;
            string why = link switch
            {
                LinkResult.NotIp => "not-ip",
                LinkResult.Truncated => "truncated-link-header",
                _ => $"unsupported-link-type-{record.LinkType}",
            };
            if (_out is null)
                return;
            if (_text)
                WriteText(index, record.TimestampNanoseconds, "SKIP", "-", "-", "-", "-", why, "");
            else
                _out.Write(string.Create(CultureInfo.InvariantCulture, $"{index}\tSKIP\t-\t-\t{why}{(_firewall is null ? "" : "\t-\t-")}\n"));
            return;
        }

        long now = record.TimestampNanoseconds / 1_000_000;
        if (_pipeline == null)
        {
            _engine = new ConntrackEngine(_settings, now, maxWorkers: 2, rescue: _rescue);
            var interfaces = new List<(uint, string)>();
            if (_firewall?.In is { } inName)
                interfaces.Add((InIndex, inName));
            if (_firewall?.Out is { } outName)
                interfaces.Add((OutIndex, outName));
            _pipeline = new FirewallPipeline(_engine.CreateWorker(), new FirewallConfig { Rules = _firewall?.Rules },
                new FirewallEnvironment { Interfaces = new FixedInterfaceNames([.. interfaces]) });
            _firstNs = record.TimestampNanoseconds;
        }
        PacketHook hook = _firewall?.Hook ?? PacketHook.Forward;
        var meta = new PacketMeta
        {
            Hook = hook,
            InInterface = hook == PacketHook.Output ? 0 : InIndex,
            OutInterface = hook == PacketHook.Input ? 0 : OutIndex,
            // Locally generated packets carry no final checksum yet (offload); the kernel checks none on OUTPUT.
            VerifyChecksums = datagram.VerifyChecksum && hook != PacketHook.Output,
        };
        _pipeline.BeginBatch();
        _pipeline.Decide(ip, meta, now, out FirewallDecision d);
        _pipeline.EndBatch();
        _engine!.Maintain(now);

        ref readonly Classification r = ref d.Conntrack;
        _byState[(int)r.State]++;
        _byVerdict[(int)d.Verdict]++;
        if (r.State is CtState.Invalid or CtState.Dropped)
            _byReason[(int)r.Reason]++;
        if (_out == null)
            return;
        string tcp = r.ProtocolStateName();
        // A rescued packet has no INVALID reason; the column says why it is ESTABLISHED instead.
        string reason = r.Rescued ? "rescued" : r.Reason.Name();
        string verdict = "", rule = "";
        if (_firewall is not null)
        {
            verdict = VerdictName(d.Verdict);
            rule = d.Describe(_firewall.Rules);
        }
        if (!_text)
        {
            _out.Write(string.Create(CultureInfo.InvariantCulture,
                $"{index}\t{r.State.Name()}\t{r.Direction.Name()}\t{tcp}\t{reason}{(_firewall is null ? "" : $"\t{verdict}\t{rule}")}\n"));
            return;
        }
        string notes = r.Rescued || r.Reason != InvalidReason.None ? reason + (r.Ignored ? ",ignored" : "") : r.Ignored ? "ignored" : "-";
        WriteText(index, record.TimestampNanoseconds, r.State.Name(), r.Direction.Name(), tcp, verdict, rule, notes, Describe(ip));
    }

    /// <summary>
    /// The header line: tab-separated names in tsv, the column titles in text (a leading `#` in both,
    /// so that tools reading the lines can skip it).
    /// </summary>
    public void WriteHeader()
    {
        if (_out is null)
            return;
        if (!_text)
        {
            _out.Write(_firewall is null ? "#index\tctstate\tdirection\ttcp_state\treason\n" : "#index\tctstate\tdirection\ttcp_state\treason\tverdict\trule\n");
            return;
        }
        WriteText(-1, 0, "CTSTATE", "DIRECTION", "TCP", "TARGET", "RULE", "REASON", "PACKET");
    }

    // Text columns: every one but the last (the packet, whose length varies) is as wide as its widest
    // value, so the lines align whatever the packets: ctstate (ESTABLISHED), direction (ORIGINAL),
    // TCP state (ESTABLISHED, SYN_SENT2), verdict (TARGET as iptables -L says: ACCEPT, REJECT), the rule (the longest chain name of
    // the ruleset with :policy or :N:hotdrop), the reason (the longest INVALID reason, ",ignored").
    private const int StateWidth = 11, DirectionWidth = 9, TcpWidth = 11, VerdictWidth = 6;
    private static readonly int s_reasonWidth = ReasonWidth();
    private int _ruleWidth;

    private void WriteText(long index, long timestampNs, string state, string direction, string tcp, string verdict, string rule, string notes, string packet)
    {
        if (_firewall is not null && _ruleWidth == 0)
            _ruleWidth = RuleWidth(_firewall.Rules);
        var sb = new StringBuilder(160);
        if (index < 0)
            sb.Append('#').Append("INDEX".PadLeft(7)).Append(' ').Append("TIME".PadLeft(12)).Append(' ');
        else
            sb.Append(CultureInfo.InvariantCulture, $"{index,8} {(_firstNs == long.MinValue ? 0 : (timestampNs - _firstNs) / 1e9),12:F6} ");
        sb.Append(state.PadRight(StateWidth)).Append(' ').Append(direction.PadRight(DirectionWidth)).Append(' ').Append(tcp.PadRight(TcpWidth)).Append(' ');
        if (_firewall is not null)
            sb.Append(verdict.PadRight(VerdictWidth)).Append(' ').Append(rule.PadRight(_ruleWidth)).Append(' ');
        sb.Append(notes.PadRight(s_reasonWidth)).Append(' ').Append(packet);
        _out!.Write(sb.ToString().TrimEnd() + "\n");
    }

    private static int ReasonWidth()
    {
        int width = "unsupported-link-type-65535".Length;
        for (int i = 0; i < InvalidReasons.Count; i++)
            width = Math.Max(width, ((InvalidReason)i).Name().Length + ",ignored".Length);
        return width;
    }

    private static int RuleWidth(Ruleset rules)
    {
        int width = "rules-overflow".Length;
        foreach (ChainInfo chain in rules.Raw is { } raw ? rules.Chains.Concat(raw.Chains) : rules.Chains)
        {
            int digits = chain.RuleCount.ToString(CultureInfo.InvariantCulture).Length;
            // A raw table's drops are named raw:CHAIN:N (FirewallDecision.Describe).
            int prefix = chain.Table == RuleTable.Raw ? "raw:".Length : 0;
            width = Math.Max(width, prefix + chain.Name.Length + 1 + Math.Max("policy".Length, digits + ":hotdrop".Length));
        }
        return width;
    }

    internal static string VerdictName(FirewallVerdict v) => v switch
    {
        FirewallVerdict.Accept => "ACCEPT",
        FirewallVerdict.Drop => "DROP",
        _ => "REJECT",
    };

    /// <summary>Protocol, endpoints and TCP flags for the text format.</summary>
    internal static string Describe(ReadOnlySpan<byte> ip)
    {
        if (PacketParser.Parse(ip, out ParsedPacket p) != InvalidReason.None && p.IpVersion == 0)
            return "(unparsable)";
        bool v6 = p.IsV6;
        string src = p.Src.Format(v6), dst = p.Dst.Format(v6);
        if (v6)
        {
            src = $"[{src}]";
            dst = $"[{dst}]";
        }
        return p.Protocol switch
        {
            IpProto.Tcp => $"tcp {src}:{p.SrcPort} > {dst}:{p.DstPort} [{Flags(p.TcpFlags)}] seq {p.Seq} ack {p.AckSeq} win {p.Window} len {p.TcpPayloadLength}",
            IpProto.Udp => $"udp {src}:{p.SrcPort} > {dst}:{p.DstPort} len {p.L4Length}",
            IpProto.Icmp or IpProto.Icmpv6 => $"{(p.Protocol == IpProto.Icmp ? "icmp" : "icmpv6")} {src} > {dst} type {p.IcmpType} code {p.IcmpCode} id {p.IcmpId}",
            _ => $"proto {p.Protocol} {src} > {dst}",
        };
    }

    private static string Flags(TcpFlags f)
    {
        var sb = new StringBuilder(8);
        if ((f & TcpFlags.Syn) != 0) sb.Append('S');
        if ((f & TcpFlags.Fin) != 0) sb.Append('F');
        if ((f & TcpFlags.Rst) != 0) sb.Append('R');
        if ((f & TcpFlags.Psh) != 0) sb.Append('P');
        if ((f & TcpFlags.Ack) != 0) sb.Append('.');
        if ((f & TcpFlags.Urg) != 0) sb.Append('U');
        if ((f & TcpFlags.Ece) != 0) sb.Append('E');
        if ((f & TcpFlags.Cwr) != 0) sb.Append('W');
        return sb.Length == 0 ? "none" : sb.ToString();
    }

    public void PrintSummary(TextWriter w)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"replay: {Packets} records: ");
        foreach (CtState s in Enum.GetValues<CtState>())
            sb.Append(CultureInfo.InvariantCulture, $"{s.Name()} {_byState[(int)s]}, ");
        sb.Append(CultureInfo.InvariantCulture, $"skipped {_skipped}");
        if (_engine != null)
            sb.Append(CultureInfo.InvariantCulture, $"; {_engine.Count} entries at the end");
        w.WriteLine(sb.ToString());
        for (int i = 1; i < _byReason.Length; i++)
        {
            if (_byReason[i] > 0)
                w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {((InvalidReason)i).Name()}: {_byReason[i]}"));
        }
        if (_engine != null && _engine.Rescue.Mode != RescueMode.Off)
        {
            RescueCounters c = _engine.RescueStats;
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"rescue ({_engine.Rescue.Mode.ToString().ToLowerInvariant()}, window {_engine.Rescue.WindowSeconds} s): fin {c.RescuedFin}, rst {c.RescuedRst}, loose {c.RescuedLoose}, out-of-window {c.RejectedOutOfWindow}; tombstones stored {c.TombstonesStored}, live {c.TombstonesLive}, evicted {c.TombstonesEvicted}, expired {c.TombstonesExpired}"));
        }
        if (_firewall is not null)
        {
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"verdicts ({DescribeHook(_firewall)}, rules {_firewall.Rules.FileName}): ACCEPT {_byVerdict[(int)FirewallVerdict.Accept]}, DROP {_byVerdict[(int)FirewallVerdict.Drop]}, REJECT {_byVerdict[(int)FirewallVerdict.Reject]}"));
            w.WriteLine();
            w.Write(RuleListing.Format(_firewall.Rules));
        }
    }

    private static string DescribeHook(ReplayFirewall f) =>
        f.Hook.ToString().ToUpperInvariant() + (f.In is null ? "" : $" in {f.In}") + (f.Out is null ? "" : $" out {f.Out}");

    public void Dispose() => _pipeline?.Dispose();
}
