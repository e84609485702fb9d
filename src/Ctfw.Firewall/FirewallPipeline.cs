using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Ctfw.Conntrack;
using Ctfw.Firewall.Shadow;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall;

/// <summary>
/// The per-packet decision, the same for the NFQUEUE daemon, replay, the lab, benches and tests:
/// parse once → the raw table, when the ruleset has one with rules (PREROUTING for packets that
/// arrive, OUTPUT for local ones: a DROP ends here, untracked; `CT --helper` picks the helper a new
/// connection gets) → track (a NEW entry left pending) → compare with the kernel's answer (shadow mode) →
/// evaluate the ruleset of the packet's hook (LOG lines on the way) → confirm the pending entry on
/// ACCEPT, abort it on DROP/REJECT (the kernel inserts an entry only when its first packet is
/// accepted) → build the REJECT answer. One pipeline per worker thread: it owns a
/// <see cref="ConntrackWorker"/>, its counters and its reply buffer. Nothing here allocates per
/// packet, throws on bad input or waits, apart from the rate-limited LOG/A-B/rescue lines.
/// <para>
/// Callers bracket each batch with <see cref="BeginBatch"/> / <see cref="EndBatch"/> (the epoch that
/// keeps entries from being reused under the batch), or hand the whole batch to
/// <see cref="DecideBatch{TBatch}"/>. A new <see cref="FirewallConfig"/> given to
/// <see cref="Reconfigure"/> from any thread takes effect at the next batch.
/// </para>
/// </summary>
public sealed class FirewallPipeline : IDisposable
{
    private const int LogHitsPerPacket = 8;

    private readonly ConntrackWorker _conntrack;
    private readonly IInterfaceNames? _interfaces;
    private readonly IIcmpSourceSelector? _icmpSources;
    private readonly Logging.LogSink? _log;
    private readonly Logging.RescueLog? _rescueLog;
    private readonly FirewallEnvironment _environment;
    private readonly byte[] _reply = new byte[RejectBuilder.MaxReplyLength];
    private readonly int[] _logHits = new int[LogHitsPerPacket];
    private FirewallConfig _active;
    // The active config's parts, copied at the start of each batch so the packet path reads them
    // without going through the config object.
    private Ruleset? _rules;
    // The ruleset's raw table, null when it has none or one that passes every packet unchanged
    // (then the packet path does not even build its facts).
    private RawTable? _raw;
    private ShadowMode? _shadow;
    private bool _failClosed;
    private int _generation;
    // Written by Reconfigure on any thread, read by the worker once per batch. The volatile write
    // publishes the fully constructed config (and its ruleset) before the reference; a plain read
    // could see the reference without its fields on a weak memory model, or be hoisted out of the
    // worker's loop so the swap never takes effect.
    private volatile FirewallConfig _pending;
    private int _replyLength;
    private bool _inBatch;

    public FirewallPipeline(ConntrackWorker conntrack, FirewallConfig config, FirewallEnvironment? environment = null)
    {
        ArgumentNullException.ThrowIfNull(conntrack);
        ArgumentNullException.ThrowIfNull(config);
        _conntrack = conntrack;
        _environment = environment ?? new FirewallEnvironment();
        _interfaces = _environment.Interfaces;
        _icmpSources = _environment.IcmpSources;
        _log = _environment.Log;
        _rescueLog = _environment.RescueLog;
        EnableHelpersFor(config);
        _pending = config;
        Activate(config);
    }

    /// <summary>What this pipeline did. Written only by its worker thread; see <see cref="FirewallCounters"/>.</summary>
    public FirewallCounters Counters { get; } = new();

    /// <summary>The configuration the current (or last) batch used.</summary>
    public FirewallConfig Config => _active;

    public FirewallEnvironment Environment => _environment;

    public ConntrackWorker Conntrack => _conntrack;

    /// <summary>The REJECT answer of the last decision (<see cref="FirewallDecision.ReplyLength"/> bytes), valid until the next one.</summary>
    public ReadOnlySpan<byte> Reply => _reply.AsSpan(0, _replyLength);

    /// <summary>Replaces the configuration from the next batch on. Safe from any thread.</summary>
    public void Reconfigure(FirewallConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        // Before the config is published: the first packet that meets its CT rules finds helpers on.
        EnableHelpersFor(config);
        _pending = config;
    }

    /// <summary>A ruleset whose raw table assigns helpers needs conntrack's helper state (allocated once, then kept).</summary>
    private void EnableHelpersFor(FirewallConfig config)
    {
        if (config.Rules is { Helpers.Count: > 0 })
            _conntrack.EnableHelpers();
    }

    /// <summary>Starts a batch: takes up a configuration given to <see cref="Reconfigure"/> and enters the conntrack epoch.</summary>
    public void BeginBatch()
    {
        FirewallConfig pending = _pending;
        if (!ReferenceEquals(pending, _active))
            Activate(pending);
        _conntrack.Enter();
        _inBatch = true;
    }

    [MemberNotNull(nameof(_active))]
    private void Activate(FirewallConfig config)
    {
        _active = config;
        _rules = config.Rules;
        _raw = config.Rules?.Raw is { PassThrough: false } raw ? raw : null;
        _shadow = config.Shadow;
        _failClosed = config.FailClosed;
        _generation = config.Generation;
    }

    /// <summary>Ends a batch: leaves the epoch, so entries removed meanwhile can be reused.</summary>
    public void EndBatch()
    {
        _inBatch = false;
        _conntrack.Exit();
    }

    /// <summary>
    /// Decides every packet of <paramref name="batch"/> in order, at time <paramref name="now"/> (ms),
    /// inside one epoch, and hands each decision to the batch. Generic over a struct so that the
    /// adapter's calls are direct, not virtual.
    /// </summary>
    public void DecideBatch<TBatch>(ref TBatch batch, long now) where TBatch : struct, IPacketBatch
    {
        BeginBatch();
        try
        {
            int count = batch.Count;
            for (int i = 0; i < count; i++)
            {
                DecideCore(batch.Packet(i), batch.Meta(i), now, out FirewallDecision decision);
                // The reply span is built only for the rare REJECT with an answer.
                batch.Complete(i, in decision, decision.ReplyLength == 0 ? default : Reply);
            }
        }
        finally
        {
            EndBatch();
        }
    }

    /// <summary>
    /// Decides one packet (from the network header on) at time <paramref name="now"/> (ms). Must be
    /// called between <see cref="BeginBatch"/> and <see cref="EndBatch"/>.
    /// </summary>
    public void Decide(ReadOnlySpan<byte> bytes, in PacketMeta meta, long now, out FirewallDecision d)
    {
        if (!_inBatch)
            throw new InvalidOperationException("Decide outside BeginBatch/EndBatch: the entry could be reused under the packet.");
        DecideCore(bytes, meta, now, out d);
    }

    private void DecideCore(ReadOnlySpan<byte> bytes, in PacketMeta meta, long now, out FirewallDecision d)
    {
        // Every field is set on every path below (Conntrack by the tracker, which fills its whole
        // out parameter); skipping the blanket zeroing saves a 100-byte clear per packet.
        Unsafe.SkipInit(out d);
        d.Verdict = FirewallVerdict.Accept;
        d.Cause = DecisionCause.Rule;
        d.Rule = -1;
        d.Chain = Hook.Input;
        d.Table = RuleTable.Filter;
        d.Filtered = false;
        d.Disagreed = false;
        d.ReplyLength = 0;
        d.RejectWith = RejectWith.Default;
        _replyLength = 0;
        FirewallCounters c = Counters;
        c.Packets++;
        if (bytes.IsEmpty)
        {
            c.NoPayload++;
            d.Cause = DecisionCause.NoPayload;
            d.Verdict = _failClosed ? FirewallVerdict.Drop : FirewallVerdict.Accept;
            d.Conntrack = default;
            d.Conntrack.State = CtState.Invalid;
            d.Conntrack.PendingEntry = -1;
            d.RuleState = CtState.Invalid;
            return;
        }

        // The bytes are the datagram: NFQUEUE hands over the skb's network data, and replay cuts
        // captured link-layer padding off first (Ctfw.Capture.CapturedDatagram).
        InvalidReason parseResult = PacketParser.Parse(bytes, out ParsedPacket p);
        // The rules never see the mark bits shadow mode owns.
        uint mark = meta.Mark;
        if (_shadow is { } owner)
            mark &= ~owner.Mark.Mask;
        IfName inName = IfName.None, outName = IfName.None;
        bool named = false;
        CtHelper helper = CtHelper.None;
        if (_raw is { } raw)
        {
            inName = _interfaces?.Lookup(meta.InInterface, now) ?? IfName.None;
            outName = _interfaces?.Lookup(meta.OutInterface, now) ?? IfName.None;
            named = true;
            if (RawDrops(raw, bytes, in p, parseResult, in meta, inName, outName, mark, ref d, out helper))
                return;
        }
        var context = new PacketContext { DeferConfirm = true, VerifyChecksums = meta.VerifyChecksums, Zone = meta.Zone, Helper = helper };
        _conntrack.ProcessParsed(bytes, p, parseResult, now, context, out d.Conntrack);
        ref Classification ct = ref d.Conntrack;
        c.States[(int)ct.State]++;
        if (ct.State == CtState.Invalid && (uint)ct.Reason < (uint)c.InvalidReasons.Length)
            c.InvalidReasons[(int)ct.Reason]++;

        // Shadow mode: compare with the kernel's answer carried in the mark; the rules see the
        // kernel's ctstate unless ctfw enforces, and never see the mark bits shadow mode owns.
        CtState ruleState = ct.State;
        CtDirection ruleDirection = ct.Direction;
        CtState kernelState = CtState.Invalid;
        CtDirection kernelDirection = CtDirection.None;
        if (_shadow is { } shadow)
        {
            if (shadow.Mark.TryDecode(meta.Mark, out kernelState, out kernelDirection))
            {
                // A helper's drop happens in the kernel after the filter table, at confirm: the
                // kernel's mark carries the state the packet had before it, so compare with that.
                CtState compared = ct.State == CtState.Dropped && ct.Reason is InvalidReason.HelperPartial or InvalidReason.HelperExpectFailed
                    ? ct.StateBeforeHelperDrop
                    : ct.State;
                c.AbCompared++;
                c.AbMatrix[(int)kernelState * FirewallCounters.CtfwStates + (int)compared]++;
                if (kernelState == compared && kernelDirection == ct.Direction)
                {
                    c.AbAgreed++;
                }
                else
                {
                    d.Disagreed = true;
                    if (kernelState == compared)
                        c.AbDirectionMismatch++;
                }
                if (!shadow.EnforceCtfw)
                {
                    ruleState = kernelState;
                    ruleDirection = kernelDirection;
                }
            }
            else
            {
                c.AbUnmarked++;
            }
        }
        d.RuleState = ruleState;

        Hook hook;
        switch (meta.Hook)
        {
            case PacketHook.Input: hook = Hook.Input; break;
            case PacketHook.Forward: hook = Hook.Forward; break;
            case PacketHook.Output: hook = Hook.Output; break;
            default:
                // Not a filter-table hook (queued from raw/mangle/nat): track only.
                d.Cause = DecisionCause.NoFilterHook;
                Confirm(ref d);
                return;
        }
        d.Chain = hook;
        d.Filtered = true;

        if (!named)
        {
            inName = _interfaces?.Lookup(meta.InInterface, now) ?? IfName.None;
            outName = _interfaces?.Lookup(meta.OutInterface, now) ?? IfName.None;
        }
        var facts = new PacketFacts(hook, in p, bytes, parseResult)
        {
            In = inName,
            Out = outName,
            State = ruleState,
            Direction = ruleDirection,
            Status = ct.Status,
            MasterHelper = ct.MasterHelper,
            Mark = mark,
            Length = meta.OriginalLength,
        };
        if (d.Disagreed)
            _shadow!.Log.Write(kernelState, kernelDirection, ct, facts, now);
        if (ct.Rescued)
            _rescueLog?.Write(ct, facts, now);

        if (_rules is not { } rules)
        {
            d.Cause = DecisionCause.Policy;
            Confirm(ref d);
            if (ct.OffloadCandidate && d.Verdict == FirewallVerdict.Accept)
                _conntrack.Nominate(ref ct, _generation);
            return;
        }

        RuleVerdict verdict = rules.Evaluate(facts, _logHits);
        if (verdict.LogCount > 0 && _log is { } log)
        {
            int logs = Math.Min(verdict.LogCount, _logHits.Length);
            for (int i = 0; i < logs; i++)
            {
                if (rules.Rules[_logHits[i]].Log is { } options)
                    log.Write(facts, options, now);
            }
        }
        d.Rule = verdict.Rule;
        d.Cause = (DecisionCause)verdict.Reason; // same values (see DecisionCause)

        switch (verdict.Verdict)
        {
            case Verdict.Accept:
                Confirm(ref d);
                // Offload only what the rules accept without logging: a LOG rule wants every packet.
                if (ct.OffloadCandidate && d.Verdict == FirewallVerdict.Accept && verdict.LogCount == 0)
                    _conntrack.Nominate(ref ct, _generation);
                return;
            case Verdict.Reject:
                _conntrack.Abort(ref ct);
                c.Rejected++;
                d.Verdict = FirewallVerdict.Reject;
                d.RejectWith = verdict.RejectWith;
                // ICMP errors to forwarded packets come from the gateway's own address, as the
                // kernel's do; for INPUT the rejected packet's (local) destination is right.
                IpAddress? icmpSource = hook == Hook.Forward ? _icmpSources?.For(p.Src, p.IsV6) : null;
                _replyLength = RejectBuilder.Build(_reply, verdict.RejectWith, facts, icmpSource, meta.VerifyChecksums);
                d.ReplyLength = _replyLength;
                return;
            default:
                _conntrack.Abort(ref ct);
                c.Dropped++;
                d.Verdict = FirewallVerdict.Drop;
                return;
        }
    }

    /// <summary>
    /// The raw table, before conntrack: PREROUTING for a packet that arrived (it has an input
    /// interface, or was taken at PRE_ROUTING, INPUT or FORWARD), OUTPUT for a locally generated one.
    /// A DROP decides here, as the kernel drops in raw: counted, never tracked. Otherwise
    /// <paramref name="helper"/> is what the first `CT --helper` gave the packet.
    /// </summary>
    private bool RawDrops(RawTable raw, ReadOnlySpan<byte> bytes, in ParsedPacket p, InvalidReason parseResult, in PacketMeta meta,
        IfName inName, IfName outName, uint mark, ref FirewallDecision d, out CtHelper helper)
    {
        bool local = meta.Hook == PacketHook.Output || (meta.Hook == PacketHook.PostRouting && meta.InInterface == 0);
        Hook hook = local ? Hook.Output : Hook.PreRouting;
        var facts = new PacketFacts(hook, in p, bytes, parseResult)
        {
            // Not routed yet at PRE_ROUTING: no output interface; a local packet has no input one.
            In = local ? IfName.None : inName,
            Out = local ? outName : IfName.None,
            Mark = mark,
            Length = meta.OriginalLength,
        };
        RawVerdict verdict = raw.Evaluate(facts);
        helper = verdict.Helper;
        if (verdict.Verdict == Verdict.Accept)
            return false;
        FirewallCounters c = Counters;
        c.Dropped++;
        c.RawDropped++;
        d.Verdict = FirewallVerdict.Drop;
        d.Cause = (DecisionCause)verdict.Reason; // same values (see DecisionCause)
        d.Rule = verdict.Rule;
        d.Chain = hook;
        d.Table = RuleTable.Raw;
        d.Filtered = true;
        d.Conntrack = default;
        d.Conntrack.State = CtState.Invalid;
        d.Conntrack.PendingEntry = -1;
        d.RuleState = CtState.Invalid;
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Confirm(ref FirewallDecision d)
    {
        if (_conntrack.Confirm(ref d.Conntrack))
        {
            Counters.Accepted++;
            d.Verdict = FirewallVerdict.Accept;
            return;
        }
        // Another packet of the same new TCP/ICMP flow was confirmed first (the kernel's insert_failed).
        Counters.ConfirmDrops++;
        d.Verdict = FirewallVerdict.Drop;
        d.Cause = DecisionCause.ConfirmClash;
    }

    public void Dispose() => _conntrack.Dispose();
}

/// <summary>
/// A batch of packets as a transport holds them, for <see cref="FirewallPipeline.DecideBatch{TBatch}"/>:
/// the NFQUEUE adapter over its receive buffer, the in-memory queue of the functional tests.
/// Implemented by structs so the calls are resolved at compile time.
/// </summary>
public interface IPacketBatch
{
    int Count { get; }

    /// <summary>Packet <paramref name="index"/> from its network header; empty when the transport has no bytes for it.</summary>
    ReadOnlySpan<byte> Packet(int index);

    PacketMeta Meta(int index);

    /// <summary>The decision for packet <paramref name="index"/>, with the REJECT answer to send (empty when none).</summary>
    void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply);
}
