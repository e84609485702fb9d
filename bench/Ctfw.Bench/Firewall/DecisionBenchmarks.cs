using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Bench.Rules;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Packets;
using Ctfw.Rules;
using Slot = Ctfw.Bench.Fixtures.EstablishedTrace.Slot;

namespace Ctfw.Bench.Firewall;

/// <summary>
/// The whole per-packet decision (parse → track → rules → confirm/abort) under the gateway ruleset of
/// <see cref="RulesFixture.LoadGateway"/>, FORWARD hook, eth1 → eth0. One operation is one packet;
/// each invocation decides 1024 packets in receive batches of up to 64, each batch in one epoch.
/// <list type="bullet">
/// <item><c>Pipeline</c>: <see cref="FirewallPipeline.DecideBatch{TBatch}"/> over a struct batch, as the daemon does.</item>
/// <item><c>Composition</c> (baseline): the pre-pipeline composition from QueueWorker.Judge (commit
/// ff78d71): <see cref="PacketParser.Parse"/> → <see cref="ConntrackWorker.ProcessParsed"/> with
/// DeferConfirm → <see cref="Ruleset.Evaluate(in PacketFacts, Span{int})"/> → Confirm/Abort, reading the
/// transport's fields directly. The ratio Pipeline ÷ Composition is the cost of the refactor.</item>
/// </list>
/// Cases: an ESTABLISHED packet of one of 1 000 or 100 000 flows (<see cref="EstablishedTrace"/>:
/// client data and server ACKs, accepted by the second rule), the latter also with a raw table of two
/// `CT --helper` rules (ftp on TCP 21, tftp on UDP 69) that the packets walk without matching; a NEW TCP SYN of a fresh tuple accepted
/// by the last rule of the NEW chain (entry created and confirmed); a NEW SYN that no rule accepts
/// (policy DROP, entry aborted). The NEW cases take each SYN from a pool of distinct tuples, one per
/// packet of an iteration; after each iteration the table is flushed and checked (every accepted SYN
/// left exactly one confirmed entry, every dropped one none), so each measured SYN is a real NEW.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[InvocationCount(DecisionFixture.InvocationsPerIteration)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class DecisionBenchmarks
{
    private const int Batch = 1024;

    public enum DecisionCase { Established1k, Established100k, Established100kRaw, NewAccepted, NewDropped }

    private DecisionFixture _f = null!;

    [Params(DecisionCase.Established1k, DecisionCase.Established100k, DecisionCase.Established100kRaw, DecisionCase.NewAccepted, DecisionCase.NewDropped)]
    public DecisionCase Case { get; set; }

    [GlobalSetup]
    public void Setup() => _f = Case switch
    {
        DecisionCase.Established1k => DecisionFixture.Established(1_000),
        DecisionCase.Established100k => DecisionFixture.Established(100_000),
        DecisionCase.Established100kRaw => DecisionFixture.Established(new EstablishedTrace(100_000), raw: true),
        DecisionCase.NewAccepted => DecisionFixture.New(accepted: true, DecisionFixture.InvocationsPerIteration * Batch),
        _ => DecisionFixture.New(accepted: false, DecisionFixture.InvocationsPerIteration * Batch),
    };

    [IterationCleanup]
    public void AfterIteration() => _f.Reset();

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// decision {Case}: {_f.Packets:N0} packets, {_f.Unexpected} not {_f.Expected}, table count {_f.Engine.Count}");
        _f.ThrowIfUnexpected();
    }

    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public int Composition() => _f.RunComposition(Batch);

    [Benchmark(OperationsPerInvoke = Batch)]
    public int Pipeline() => _f.RunPipeline(Batch);
}

/// <summary>
/// Packets, tracker, ruleset and both ways of deciding for <see cref="DecisionBenchmarks"/> and the
/// quick run. Packets are <see cref="Slot"/>s of one buffer; the slot plays the transport's packet
/// view (the daemon's PacketView): the composition reads its fields, the pipeline gets a
/// <see cref="PacketMeta"/> built from it, as the daemon's batch adapter does.
/// </summary>
internal sealed class DecisionFixture : IDisposable
{
    /// <summary>Invocations per BenchmarkDotNet iteration; a NEW pool holds this × 1024 tuples.</summary>
    public const int InvocationsPerIteration = 128;
    public const int MaxBatch = 64;
    public const uint Lan = 1, Wan = 2;
    /// <summary>Accepted by the last rule of FWD_NEW; port 9 matches none of them.</summary>
    public const ushort AcceptedPort = 1000 + RulesBenchmarks.NewRules - 1;
    public const ushort DroppedPort = 9;
    private const long NewNow = 1_000_000;

    private readonly EstablishedTrace? _trace;
    private readonly byte[] _buffer;
    private readonly Slot[] _slots;
    private readonly FirewallPipeline _pipeline;

    /// <summary>Releases the pipeline's conntrack worker (its epoch slot).</summary>
    public void Dispose() => _pipeline.Dispose();
    private readonly Composition _composition;
    private readonly FirewallVerdict _expectVerdict;
    private readonly CtState _expectState;
    private readonly bool _createsEntries;
    private int _poolCursor;
    private long _sinceReset;

    public readonly ConntrackEngine Engine;
    public long Packets;
    public long Unexpected;

    private DecisionFixture(ConntrackEngine engine, ConntrackWorker worker, EstablishedTrace? trace, byte[] buffer, Slot[] slots,
        FirewallVerdict verdict, CtState state, bool createsEntries, bool raw = false)
    {
        Engine = engine;
        _trace = trace;
        _buffer = buffer;
        _slots = slots;
        _expectVerdict = verdict;
        _expectState = state;
        _createsEntries = createsEntries;
        Ruleset rules = RulesFixture.LoadGateway(raw);
        var names = new FixedInterfaceNames((Lan, "eth1"), (Wan, "eth0"));
        _pipeline = new FirewallPipeline(worker, new FirewallConfig { Rules = rules }, new FirewallEnvironment { Interfaces = names });
        _composition = new Composition(worker, rules, names);
    }

    public string Expected => $"{_expectState.Name()}/{_expectVerdict}";

    /// <summary>ESTABLISHED traffic of <paramref name="flows"/> flows, validated for one round.</summary>
    public static DecisionFixture Established(int flows) => Established(new EstablishedTrace(flows));

    /// <summary>Decides on <paramref name="trace"/>'s packets (shares its cursor and clock with its own replay).</summary>
    /// <paramref name="raw"/>: the ruleset also has the raw table assigning the FTP and TFTP helpers, which these packets
    /// (not to port 21 or 69) walk before conntrack without getting a helper.
    public static DecisionFixture Established(EstablishedTrace trace, bool raw = false)
    {
        if (trace.Cursor == 0)
            trace.ValidateRound(verifyChecksums: false);
        var f = new DecisionFixture(trace.Engine, trace.Worker, trace, trace.Buffer, trace.Slots, FirewallVerdict.Accept, CtState.Established, createsEntries: false, raw);
        f.CheckOnePacket();
        return f;
    }

    /// <summary>
    /// A pool of <paramref name="pool"/> SYNs of distinct tuples (Linux's options: MSS, SACK, TS, WS),
    /// client 10.x → server port <see cref="AcceptedPort"/> or <see cref="DroppedPort"/>; the table
    /// holds up to twice the pool.
    /// </summary>
    public static DecisionFixture New(bool accepted, int pool)
    {
        var settings = new ConntrackSettings();
        if (settings.Set("nf_conntrack_max", Math.Max(262_144, pool * 2).ToString(System.Globalization.CultureInfo.InvariantCulture)) is { } error)
            throw new InvalidOperationException(error);
        var engine = new ConntrackEngine(settings, NewNow, maxWorkers: 2, hashSeed: 1);
        ConntrackWorker worker = engine.CreateWorker();
        byte[] buffer = GC.AllocateArray<byte>(pool * 64, pinned: true);
        var slots = new Slot[pool];
        int offset = 0;
        for (int i = 0; i < pool; i++)
        {
            var spec = new TcpSpec
            {
                Src = SyntheticFlows.Client(i),
                Dst = SyntheticFlows.Server(i),
                SrcPort = SyntheticFlows.ClientPort(i),
                DstPort = accepted ? AcceptedPort : DroppedPort,
                Seq = unchecked((uint)i * 2654435761u),
                Flags = TcpFlags.Syn,
                Window = 64240,
                Mss = 1460,
                SackPermitted = true,
                WindowScale = 7,
                Timestamp = true,
                TsVal = (uint)(1000 + i),
            };
            int n = PacketBuilder.Tcp(buffer.AsSpan(offset), spec);
            slots[i] = new Slot { Offset = offset, Length = (ushort)n, FromClient = true };
            offset += n;
        }
        var f = new DecisionFixture(engine, worker, null, buffer, slots,
            accepted ? FirewallVerdict.Accept : FirewallVerdict.Drop, CtState.New, createsEntries: accepted);
        f.CheckOnePacket();
        return f;
    }

    /// <summary>
    /// Decides the next packet through each path outside the measurement and checks the decision in
    /// detail: state, verdict, deciding rule, and for a SYN that it created (accepted) or left
    /// (dropped) no entry, and that a second copy of it finds the entry (so the measured SYNs, each of
    /// a fresh tuple, are the only ones that take the NEW-entry path).
    /// </summary>
    private void CheckOnePacket()
    {
        for (int path = 0; path < 2; path++)
        {
            int before = Engine.Count;
            int one = 1;
            Slot s = _slots[NextBatch(ref one, out _)];
            ReadOnlySpan<byte> bytes = new(_buffer, s.Offset, s.Length);
            long now = Now;
            FirewallVerdict verdict;
            Classification ct;
            if (path == 0)
            {
                _pipeline.BeginBatch();
                _pipeline.Decide(bytes, ToMeta(in s), now, out FirewallDecision d);
                _pipeline.EndBatch();
                verdict = d.Verdict;
                ct = d.Conntrack;
                int expectedRule = _expectState == CtState.Established ? 1 : _expectVerdict == FirewallVerdict.Accept ? 4 + RulesBenchmarks.NewRules - 1 : -1;
                DecisionCause expectedCause = expectedRule >= 0 ? DecisionCause.Rule : DecisionCause.Policy;
                if (d.Rule != expectedRule || d.Cause != expectedCause || d.Chain != Hook.Forward)
                    throw new InvalidOperationException($"pipeline: rule {d.Rule} ({d.Cause}, {d.Chain}), expected {expectedRule} ({expectedCause}, FORWARD)");
            }
            else
            {
                _composition.Worker.Enter();
                verdict = _composition.Judge(bytes, in s, now, out ct);
                _composition.Worker.Exit();
            }
            string which = path == 0 ? "pipeline" : "composition";
            if (verdict != _expectVerdict || ct.State != _expectState || ct.PendingEntry != -1)
                throw new InvalidOperationException($"{which}: {ct.State.Name()}/{verdict} (pending {ct.PendingEntry}), expected {Expected}");
            if (_expectState != CtState.New)
                continue;
            bool confirmed = (ct.Status & CtStatus.Confirmed) != 0;
            int grown = Engine.Count - before;
            if (confirmed != _createsEntries || grown != (_createsEntries ? 1 : 0))
                throw new InvalidOperationException($"{which}: SYN left {grown} entries, confirmed={confirmed}; expected {(_createsEntries ? 1 : 0)}");
            if (_createsEntries)
            {
                // The same SYN again belongs to the entry just made: no second entry.
                _composition.Worker.Enter();
                _composition.Judge(bytes, in s, now, out _);
                _composition.Worker.Exit();
                if (Engine.Count != before + 1)
                    throw new InvalidOperationException($"{which}: a repeated SYN made another entry");
            }
        }
        if (_trace == null)
            Flush();
    }

    private ref int Cursor => ref _trace != null ? ref _trace.Cursor : ref _poolCursor;

    private long Now => _trace?.Now ?? NewNow;

    /// <summary>
    /// NEW cases: checks that every SYN decided since the last reset left exactly the entries it
    /// should (one each when accepted, none when dropped), then flushes the table and reclaims the
    /// entries, and rewinds the pool. Not measured (BenchmarkDotNet's iteration cleanup).
    /// </summary>
    public void Reset()
    {
        if (_trace != null)
            return;
        long expected = _createsEntries ? _sinceReset : 0;
        if (Engine.Count != expected)
        {
            Unexpected += Math.Abs(Engine.Count - expected);
            throw new InvalidOperationException($"{Engine.Count} entries after {_sinceReset} SYNs, expected {expected}");
        }
        Flush();
    }

    private void Flush()
    {
        Engine.Flush(NewNow);
        for (int i = 0; i < 3; i++)
            Engine.Maintain(NewNow);
        if (Engine.Count != 0 || Engine.AllocFailures != 0 || Engine.EarlyDrops != 0)
            throw new InvalidOperationException($"after flush: {Engine.Count} entries, {Engine.AllocFailures} allocation failures, {Engine.EarlyDrops} early drops");
        _poolCursor = 0;
        _sinceReset = 0;
    }

    public void ThrowIfUnexpected()
    {
        if (Unexpected != 0)
            throw new InvalidOperationException($"{Unexpected} of {Packets} packets were not {Expected}");
    }

    /// <summary>Decides <paramref name="packets"/> packets through <see cref="FirewallPipeline.DecideBatch{TBatch}"/>; returns how many came out as expected.</summary>
    public int RunPipeline(int packets)
    {
        int matched = 0, total = packets;
        while (packets > 0)
        {
            int start = NextBatch(ref packets, out int n);
            var batch = new SlotBatch(_buffer, _slots, start, n, _expectVerdict, _expectState);
            _pipeline.DecideBatch(ref batch, Now);
            matched += batch.Matched;
        }
        return Tally(total, matched);
    }

    /// <summary>Decides <paramref name="packets"/> packets the way QueueWorker.Handle/Judge did at ff78d71; returns how many came out as expected.</summary>
    public int RunComposition(int packets)
    {
        int matched = 0, total = packets;
        Composition composition = _composition;
        byte[] buffer = _buffer;
        Slot[] slots = _slots;
        while (packets > 0)
        {
            int start = NextBatch(ref packets, out int n);
            long now = Now;
            composition.Worker.Enter();
            try
            {
                for (int i = 0; i < n; i++)
                {
                    ref readonly Slot s = ref slots[start + i];
                    FirewallVerdict v = composition.Judge(new ReadOnlySpan<byte>(buffer, s.Offset, s.Length), in s, now, out Classification ct);
                    matched += v == _expectVerdict && ct.State == _expectState ? 1 : 0;
                }
            }
            finally
            {
                composition.Worker.Exit();
            }
        }
        return Tally(total, matched);
    }

    private int Tally(int total, int matched)
    {
        Packets += total;
        _sinceReset += total;
        Unexpected += total - matched;
        return matched;
    }

    /// <summary>The next receive batch: up to <see cref="MaxBatch"/> packets, not across a round of the trace.</summary>
    private int NextBatch(ref int packets, out int n)
    {
        ref int cursor = ref Cursor;
        if (cursor == _slots.Length)
        {
            _trace?.NextRound();
            cursor = 0; // a NEW pool that wraps repeats tuples: counted as unexpected, never measured silently
        }
        n = Math.Min(Math.Min(packets, MaxBatch), _slots.Length - cursor);
        int start = cursor;
        cursor += n;
        packets -= n;
        return start;
    }

    /// <summary>What the transport knows, as the daemon's adapter builds it from NFQA_* attributes.</summary>
    private static PacketMeta ToMeta(in Slot s) => new()
    {
        Hook = PacketHook.Forward,
        InInterface = s.FromClient ? Lan : Wan,
        OutInterface = s.FromClient ? Wan : Lan,
        OriginalLength = s.Length,
        VerifyChecksums = false,
    };

    /// <summary>A receive batch over the fixture's slots, as the daemon's NfqueueBatch over its views; counts decisions that came out as expected.</summary>
    private struct SlotBatch : IPacketBatch
    {
        private readonly byte[] _buffer;
        private readonly Slot[] _slots;
        private readonly int _start;
        private readonly FirewallVerdict _verdict;
        private readonly CtState _state;
        public int Matched;

        public SlotBatch(byte[] buffer, Slot[] slots, int start, int count, FirewallVerdict verdict, CtState state)
        {
            _buffer = buffer;
            _slots = slots;
            _start = start;
            Count = count;
            _verdict = verdict;
            _state = state;
            Matched = 0;
        }

        public int Count { get; }

        public readonly ReadOnlySpan<byte> Packet(int index)
        {
            Slot s = _slots[_start + index];
            return new ReadOnlySpan<byte>(_buffer, s.Offset, s.Length);
        }

        public readonly PacketMeta Meta(int index) => ToMeta(in _slots[_start + index]);

        public void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply) =>
            Matched += decision.Verdict == _verdict && decision.Conntrack.State == _state ? 1 : 0;
    }

    /// <summary>
    /// QueueWorker.Judge as of commit ff78d71, with the transport's PacketView replaced by the slot
    /// (hook FORWARD, interfaces by direction, checksums not verified) and the socket sends left out
    /// (no REJECT rule here). Interface names through the sealed class, as Judge called its
    /// InterfaceNames; no shadow mode, no rescue log, no LOG rule, as in the pipeline's configuration.
    /// </summary>
    private sealed class Composition(ConntrackWorker worker, Ruleset rules, FixedInterfaceNames interfaces)
    {
        public readonly ConntrackWorker Worker = worker;
        private readonly Ruleset _rules = rules;
        private readonly FixedInterfaceNames _interfaces = interfaces;
        private readonly FirewallCounters _counters = new();
        private readonly int[] _logHits = new int[8];
        private readonly byte[] _reply = new byte[RejectBuilder.MaxReplyLength];
        // Judge's optional collaborators, off here as in the pipeline's configuration: fields (never
        // assigned) rather than constants, so the checks stay run-time ones as they were in Judge.
#pragma warning disable CS0649
        private readonly ShadowMode? _shadow;
        private readonly RescueLog? _rescueLog;
        private readonly LogSink? _log;
        private readonly IIcmpSourceSelector? _icmpSources;
#pragma warning restore CS0649
        // Judge switched on the view's hook; a field, so the switch stays a run-time one.
        private readonly PacketHook _hook = PacketHook.Forward;

        public FirewallVerdict Judge(ReadOnlySpan<byte> bytes, in Slot view, long now, out Classification ct)
        {
            FirewallCounters c = _counters;
            c.Packets++;
            if (bytes.IsEmpty)
            {
                c.NoPayload++;
                ct = default;
                return FirewallVerdict.Accept;
            }

            InvalidReason parseResult = PacketParser.Parse(bytes, out ParsedPacket p);
            bool verify = false; // FORWARD, CHECKSUM_PARTIAL (veth): as ToMeta
            var context = new PacketContext { DeferConfirm = true, VerifyChecksums = verify };
            Worker.ProcessParsed(bytes, p, parseResult, now, context, out ct);
            c.States[(int)ct.State]++;
            if (ct.State == CtState.Invalid && (uint)ct.Reason < (uint)c.InvalidReasons.Length)
                c.InvalidReasons[(int)ct.Reason]++;

            CtState ruleState = ct.State;
            CtDirection ruleDirection = ct.Direction;
            uint mark = 0;
            bool disagree = false;
            CtState kernelState = CtState.Invalid;
            CtDirection kernelDirection = CtDirection.None;
            if (_shadow is { } shadow)
            {
                mark &= ~shadow.Mark.Mask;
                if (shadow.Mark.TryDecode(mark, out kernelState, out kernelDirection))
                {
                    c.AbCompared++;
                    c.AbMatrix[(int)kernelState * FirewallCounters.CtfwStates + (int)ct.State]++;
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
            switch (_hook)
            {
                case PacketHook.Input: hook = Hook.Input; break;
                case PacketHook.Forward: hook = Hook.Forward; break;
                case PacketHook.Output: hook = Hook.Output; break;
                default:
                    return Worker.Confirm(ref ct) ? FirewallVerdict.Accept : FirewallVerdict.Drop;
            }

            var facts = new PacketFacts(hook, in p, bytes, parseResult)
            {
                In = _interfaces.Lookup(view.FromClient ? DecisionFixture.Lan : DecisionFixture.Wan, now),
                Out = _interfaces.Lookup(view.FromClient ? DecisionFixture.Wan : DecisionFixture.Lan, now),
                State = ruleState,
                Direction = ruleDirection,
                Status = ct.Status,
                Mark = mark,
                Length = view.Length,
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
                    _log?.Write(facts, options, now);
            }

            switch (verdict.Verdict)
            {
                case Verdict.Accept:
                    if (Worker.Confirm(ref ct))
                    {
                        c.Accepted++;
                        return FirewallVerdict.Accept;
                    }
                    c.ConfirmDrops++;
                    return FirewallVerdict.Drop;
                case Verdict.Reject:
                    Worker.Abort(ref ct);
                    c.Rejected++;
                    RejectBuilder.Build(_reply, verdict.RejectWith, facts, _icmpSources?.For(p.Src, p.IsV6), verify);
                    return FirewallVerdict.Reject;
                default:
                    Worker.Abort(ref ct);
                    c.Dropped++;
                    return FirewallVerdict.Drop;
            }
        }
    }
}
