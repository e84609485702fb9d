using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Bench.Rules;

/// <summary>
/// <see cref="Ruleset.Evaluate(in PacketFacts, Span{int})"/> of a stateful gateway ruleset (the shape of
/// rules/bench.rules and rules/gateway.rules: INVALID drop, RELATED/ESTABLISHED accept, NEW by
/// interface and port in a user chain of <see cref="NewRules"/> rules, policy DROP) for three packets: an
/// established ACK (accepted by the second rule, the common case), a NEW SYN accepted by the last rule
/// of the NEW chain, and a NEW SYN that matches nothing (every rule tested, then the policy). One
/// operation is one evaluation; the conntrack state is given, as the daemon passes it in.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class RulesBenchmarks
{
    public const int NewRules = 20;
    private const int Batch = 1024;

    private RulesFixture _f = null!;

    [GlobalSetup]
    public void Setup() => _f = new RulesFixture();

    /// <summary>ESTABLISHED TCP ACK: third rule from the top accepts (the rule most packets hit).</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public int Established() => _f.EvaluateMany(RulesFixture.Case.Established, Batch);

    /// <summary>NEW TCP SYN accepted by the last of the NEW chain's rules.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int NewAcceptedByLastRule() => _f.EvaluateMany(RulesFixture.Case.NewLast, Batch);

    /// <summary>NEW TCP SYN that no rule accepts: every rule is tested, then the chain policy drops.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int NewNoMatchPolicyDrop() => _f.EvaluateMany(RulesFixture.Case.NewNoMatch, Batch);
}

/// <summary>The ruleset and packets of <see cref="RulesBenchmarks"/>, shared with the quick run. Checks every expected verdict once.</summary>
internal sealed class RulesFixture
{
    public enum Case { Established, NewLast, NewNoMatch }

    private readonly Ruleset _rules;
    private readonly byte[] _ack = new byte[128], _synLast = new byte[128], _synNone = new byte[128];
    private readonly int _ackLength, _synLastLength, _synNoneLength;
    private readonly IfName _lan, _wan;
    private readonly int[] _logHits = new int[8];

    public RulesFixture()
    {
        _rules = LoadGateway();
        if (!IfName.TryCreate("eth1", out _lan) || !IfName.TryCreate("eth0", out _wan))
            throw new InvalidOperationException("interface names");

        var spec = new TcpSpec
        {
            Src = SyntheticFlows.Client(7),
            Dst = SyntheticFlows.Server(7),
            SrcPort = 40000,
            DstPort = 1000 + RulesBenchmarks.NewRules - 1,
            Seq = 1,
            Ack = 2,
            Flags = TcpFlags.Ack,
            Window = 502,
        };
        _ackLength = PacketBuilder.Tcp(_ack, spec);
        spec.Flags = TcpFlags.Syn;
        spec.Ack = 0;
        _synLastLength = PacketBuilder.Tcp(_synLast, spec);
        spec.DstPort = 9;
        _synNoneLength = PacketBuilder.Tcp(_synNone, spec);

        Expect(Case.Established, Verdict.Accept);
        Expect(Case.NewLast, Verdict.Accept);
        Expect(Case.NewNoMatch, Verdict.Drop);
    }

    /// <summary>
    /// The gateway ruleset: FORWARD policy DROP, INVALID drop, RELATED/ESTABLISHED accept, NEW from
    /// eth1 to eth0 into FWD_NEW (<see cref="RulesBenchmarks.NewRules"/> TCP port rules, 1000 upwards).
    /// Shared with the whole-decision benchmarks.
    /// </summary>
    public static Ruleset LoadGateway(bool raw = false)
    {
        var text = new StringBuilder();
        if (raw)
        {
            text.Append("""
                *raw
                :PREROUTING ACCEPT [0:0]
                :OUTPUT ACCEPT [0:0]
                -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
                -A PREROUTING -p udp -m udp --dport 69 -j CT --helper tftp
                COMMIT

                """);
        }
        text.Append("""
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD DROP [0:0]
            :OUTPUT ACCEPT [0:0]
            :FWD_NEW - [0:0]
            -A FORWARD -m conntrack --ctstate INVALID -j DROP
            -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
            -A FORWARD -i eth1 -o eth0 -m conntrack --ctstate NEW -j FWD_NEW
            -4 -A FORWARD -p icmp -m icmp --icmp-type echo-request -j ACCEPT

            """);
        for (int i = 0; i < RulesBenchmarks.NewRules; i++)
            text.Append(CultureInfo.InvariantCulture, $"-A FWD_NEW -p tcp -m tcp --dport {1000 + i} -j ACCEPT\n");
        text.Append("COMMIT\n");
        if (!Ruleset.TryLoad(text.ToString(), "bench", out Ruleset? rules, out IReadOnlyList<RuleError> errors))
            throw new InvalidOperationException("bench ruleset: " + string.Join("; ", errors));
        return rules!;
    }

    private void Expect(Case c, Verdict expected)
    {
        (byte[] bytes, int length, CtState state) = Packet(c);
        PacketParser.Parse(bytes.AsSpan(0, length), out ParsedPacket p);
        RuleVerdict v = Evaluate(p, state);
        if (v.Verdict != expected)
            throw new InvalidOperationException($"{c}: {v.Verdict}, expected {expected}");
    }

    private (byte[], int, CtState) Packet(Case c) => c switch
    {
        Case.Established => (_ack, _ackLength, CtState.Established),
        Case.NewLast => (_synLast, _synLastLength, CtState.New),
        _ => (_synNone, _synNoneLength, CtState.New),
    };

    private RuleVerdict Evaluate(in ParsedPacket p, CtState state)
    {
        var facts = new PacketFacts(Hook.Forward, in p, default, InvalidReason.None)
        {
            In = _lan,
            Out = _wan,
            State = state,
            Direction = CtDirection.Original,
            Length = p.IpTotalLength,
        };
        return _rules.Evaluate(facts, _logHits);
    }

    /// <summary>Parses the case's packet once, then evaluates it <paramref name="n"/> times; returns the sum of verdicts (consumed).</summary>
    public int EvaluateMany(Case c, int n)
    {
        (byte[] bytes, int length, CtState state) = Packet(c);
        PacketParser.Parse(bytes.AsSpan(0, length), out ParsedPacket p);
        int acc = 0;
        for (int i = 0; i < n; i++)
            acc += (int)Evaluate(p, state).Verdict;
        return acc;
    }
}
