using Ctfw.Linux;
using Ctfw.Linux.Firewall;
using Ctfw.Conntrack;
using Ctfw.Linux.Nfqueue;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The loop of one queue's thread: receive a batch → per packet parse once, track (NEW entries
/// left pending), evaluate the ruleset for the packet's hook, then confirm (ACCEPT) or abort
/// (DROP/REJECT) the entry and add the verdict in receive order. The thread owns its socket,
/// conntrack worker and interface-name cache; nothing here allocates per packet except LOG lines
/// and interface-cache refreshes.
/// </summary>
internal sealed class QueueWorker
{
    private const int LogHitsPerPacket = 8;

    private readonly NfqueueSocket _queue;
    private readonly ConntrackWorker _conntrack;
    private readonly Ruleset _rules;
    private readonly RawIpSender _reject;
    private readonly LogSink _log;
    private readonly bool _failClosed;
    private readonly InterfaceNames _interfaces = new();
    private readonly PacketView[] _views;
    private readonly byte[] _reply = new byte[RejectBuilder.MaxReplyLength];
    private readonly IcmpSourceSelector _icmpSources = new();
    private readonly int[] _logHits = new int[LogHitsPerPacket];
    private readonly ShadowMode? _shadow;
    private readonly RescueLog? _rescueLog;

    // Set by the daemon to end the loop; read once per receive (≤ ReceiveTimeout late).
    private volatile bool _stop;

    public QueueWorker(NfqueueSocket queue, ConntrackWorker conntrack, Ruleset rules, RawIpSender reject, LogSink log, bool failClosed, ShadowMode? shadow = null, RescueLog? rescueLog = null)
    {
        _shadow = shadow;
        _rescueLog = rescueLog;
        _queue = queue;
        _conntrack = conntrack;
        _rules = rules;
        _reject = reject;
        _log = log;
        _failClosed = failClosed;
        _views = new PacketView[queue.Options.ReceiveBatchSize];
    }

    public DaemonCounters Counters { get; } = new();

    public NfqueueSocket Queue => _queue;

    /// <summary>The worker thread's kernel id once <see cref="Run"/> started (0 before), for its CPU time in `ctfw stats`.</summary>
    public int ThreadId { get; private set; }

    /// <summary>
    /// Bytes the worker thread allocated since <see cref="Run"/> started, updated after every receive
    /// batch: the per-packet path's allocations (0 in steady state), apart from LOG lines and
    /// interface-name refreshes.
    /// </summary>
    public long AllocatedBytes => Volatile.Read(ref _allocatedBytes);

    private long _allocatedBytes;

    /// <summary>Set when the socket became unusable (the loop then ends).</summary>
    public string? Failure { get; private set; }

    public void RequestStop() => _stop = true;

    /// <summary>Runs until <see cref="RequestStop"/>, then verdicts what is still queued and flushes.</summary>
    public void Run(Action onFailure)
    {
        ThreadId = Ctfw.Linux.ResourceUsage.CurrentThreadId();
        _interfaces.Refresh(DaemonClock.NowMs());
        long allocatedAtStart = GC.GetAllocatedBytesForCurrentThread();
        while (!_stop)
        {
            if (!ReceiveBatch())
            {
                onFailure();
                return;
            }
            Volatile.Write(ref _allocatedBytes, GC.GetAllocatedBytesForCurrentThread() - allocatedAtStart);
        }
        // Packets queued before the stop still get their verdict: the socket's close would drop them.
        int drained;
        do
        {
            drained = _queue.Receive(_views);
            if (drained > 0)
                Handle(drained);
        }
        while (drained > 0);
        _queue.Verdicts.Flush();
    }

    private bool ReceiveBatch()
    {
        int n = _queue.Receive(_views);
        if (n < 0)
        {
            Failure = $"NFQUEUE queue {_queue.Queue}: receive failed: {_queue.LastError}";
            return false;
        }
        if (n > 0)
            Handle(n);
        return true;
    }

    private void Handle(int count)
    {
        long now = DaemonClock.NowMs();
        _conntrack.Enter();
        try
        {
            for (int i = 0; i < count; i++)
                _queue.Verdicts.Add(_views[i].PacketId, Judge(in _views[i], now));
        }
        finally
        {
            _conntrack.Exit();
        }
    }

    private NfVerdict Judge(in PacketView view, long now)
    {
        DaemonCounters c = Counters;
        c.Packets++;
        ReadOnlySpan<byte> bytes = view.Payload;
        if (bytes.IsEmpty)
        {
            c.NoPayload++;
            return _failClosed ? NfVerdict.Drop : NfVerdict.Accept;
        }

        InvalidReason parseResult = PacketParser.Parse(bytes, out ParsedPacket p);
        // The kernel verifies at PRE_ROUTING only what the NIC did not vouch for; locally generated
        // and CHECKSUM_PARTIAL packets have no final checksum yet, and a cut payload cannot be summed.
        bool verify = view.Hook != NfHook.LocalOut && !view.ChecksumNotReady && (view.Flags & PacketFlags.PayloadTruncated) == 0;
        var context = new PacketContext { DeferConfirm = true, VerifyChecksums = verify };
        _conntrack.ProcessParsed(bytes, p, parseResult, now, context, out Classification ct);
        c.States[(int)ct.State]++;
        if (ct.State == CtState.Invalid && (uint)ct.Reason < (uint)c.InvalidReasons.Length)
            c.InvalidReasons[(int)ct.Reason]++;

        // Shadow mode: compare with the kernel's answer carried in the mark; the rules see the
        // kernel's ctstate unless ctfw enforces, and never see the mark bits shadow mode owns.
        CtState ruleState = ct.State;
        CtDirection ruleDirection = ct.Direction;
        uint mark = view.Mark;
        bool disagree = false;
        CtState kernelState = CtState.Invalid;
        CtDirection kernelDirection = CtDirection.None;
        if (_shadow is { } shadow)
        {
            mark &= ~shadow.Mark.Mask;
            if (shadow.Mark.TryDecode(view.Mark, out kernelState, out kernelDirection))
            {
                c.AbCompared++;
                c.AbMatrix[(int)kernelState * DaemonCounters.CtfwStates + (int)ct.State]++;
                if (kernelState == ct.State && kernelDirection == ct.Direction)
                {
                    c.AbAgreed++;
                }
                else
                {
                    disagree = true;
                    if (kernelState == ct.State)
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

        Hook hook;
        switch (view.Hook)
        {
            case NfHook.LocalIn: hook = Hook.Input; break;
            case NfHook.Forward: hook = Hook.Forward; break;
            case NfHook.LocalOut: hook = Hook.Output; break;
            default:
                // Not a filter-table hook (someone queued from raw/mangle): track only.
                return Confirm(ref ct);
        }

        var facts = new PacketFacts(hook, in p, bytes, parseResult)
        {
            In = _interfaces.Lookup(view.InputInterface, now),
            Out = _interfaces.Lookup(view.OutputInterface, now),
            State = ruleState,
            Direction = ruleDirection,
            Status = ct.Status,
            Mark = mark,
            Length = (int)view.OriginalLength,
        };
        if (disagree)
            _shadow!.Log.Write(kernelState, kernelDirection, ct, facts, now);
        if (ct.Rescued)
            _rescueLog?.Write(ct, facts, now);
        RuleVerdict verdict = _rules.Evaluate(facts, _logHits);
        int logs = Math.Min(verdict.LogCount, _logHits.Length);
        for (int i = 0; i < logs; i++)
        {
            if (_rules.Rules[_logHits[i]].Log is { } options)
                _log.Write(facts, options, now);
        }

        switch (verdict.Verdict)
        {
            case Verdict.Accept:
                return Confirm(ref ct);
            case Verdict.Reject:
                _conntrack.Abort(ref ct);
                c.Rejected++;
                SendReject(verdict.RejectWith, facts, verify);
                return NfVerdict.Drop;
            default:
                _conntrack.Abort(ref ct);
                c.Dropped++;
                return NfVerdict.Drop;
        }
    }

    private NfVerdict Confirm(ref Classification ct)
    {
        if (_conntrack.Confirm(ref ct))
        {
            Counters.Accepted++;
            return NfVerdict.Accept;
        }
        // Another packet of the same new TCP/ICMP flow was confirmed first (the kernel's insert_failed).
        Counters.ConfirmDrops++;
        return NfVerdict.Drop;
    }

    private void SendReject(RejectWith with, in PacketFacts facts, bool verifyChecksum)
    {
        // ICMP errors to forwarded packets come from the gateway's own address, as the kernel's do;
        // for INPUT the rejected packet's (local) destination is right.
        IpAddress? icmpSource = facts.Hook == Hook.Forward ? _icmpSources.For(facts.Packet.Src, facts.Packet.IsV6) : null;
        int length = RejectBuilder.Build(_reply, with, facts, icmpSource, verifyChecksum);
        if (length == 0)
            return;
        if (_reject.Send(_reply.AsSpan(0, length)) == 0)
            Counters.RejectsSent++;
        else
            Counters.RejectSendErrors++;
    }
}

/// <summary>Shadow mode (<c>--ab kernel</c>): where the kernel's answer is, whose answer the rules use, where disagreements go.</summary>
internal sealed record ShadowMode(KernelStateMark Mark, bool EnforceCtfw, AbLog Log);
