using System.Text;
using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>
/// Random and mutated rulesets and packets: loading never throws and every error is located;
/// evaluation, LOG formatting and REJECT building never throw and stay within their bounds.
/// Seeds are fixed so a failure reproduces.
/// </summary>
public class FuzzTests
{
    // A rule is [protocol piece] [0-2 generic pieces] target; a few pieces and targets are wrong on purpose.
    private static readonly string[] s_protocolPieces =
    [
        "-p tcp", "-p udp", "! -p tcp", "-p all", "-p 47", "-p tcp --dport 22", "-p tcp --sport 1:1024 ! --dport 80",
        "-p tcp --syn", "-p tcp ! --syn", "-p tcp --tcp-flags ALL NONE", "-p tcp -m tcp --tcp-flags SYN,ACK SYN",
        "-p udp -m multiport --dports 22,80:90", "-p tcp -m multiport ! --sports 53", "-p udp -m udp --dport 53",
        "-p icmp --icmp-type echo-request", "-p icmp -m icmp --icmp-type 3/4", "-p ipv6-icmp --icmpv6-type 128",
        "-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation", "-p icmp ! --icmp-type any",
    ];

    private static readonly string[] s_pieces =
    [
        "-s 10.0.0.0/8", "-s 192.0.2.10", "-s 2001:db8::/32", "! -d 192.0.2.0/24", "-d ::1", "-s 10.1.1.1,10.2.2.2",
        "-i eth+", "-i eth0", "! -i lo", "-f", "-4", "-6",
        "-m state --state NEW,ESTABLISHED", "-m state ! --state INVALID", "-m conntrack --ctstate INVALID",
        "-m conntrack --ctstate SNAT,DNAT", "-m conntrack --ctdir REPLY", "-m conntrack --ctstate NEW --ctdir ORIGINAL",
        "-m comment --comment \"x y\"",
    ];

    private static readonly string[] s_wrongPieces = ["--bogus", "-m foo", "!", "-s 300.1.1.1", "-p tcp --dport 9:3", "--dport 22"];

    private static readonly string[] s_targets =
    [
        "-j ACCEPT", "-j DROP", "-j REJECT", "-j REJECT --reject-with icmp-host-prohibited",
        "-j REJECT --reject-with icmp6-adm-prohibited", "-j LOG --log-prefix \"p: \" --log-tcp-sequence", "-j RETURN", "",
    ];

    private static readonly string[] s_builtins = ["INPUT", "FORWARD", "OUTPUT"];

    private static string RandomRuleset(Random random)
    {
        const int userChains = 4;
        var sb = new StringBuilder("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for (int c = 0; c < userChains; c++)
            sb.Append(":C").Append(c).Append(" - [0:0]\n");
        int rules = random.Next(0, 16);
        for (int i = 0; i < rules; i++)
        {
            // Chains -1 (a built-in) .. userChains-1; jumps go "downwards" except for the odd deliberate loop.
            int chain = random.Next(-1, userChains);
            sb.Append("-A ").Append(chain < 0 ? s_builtins[random.Next(3)] : $"C{chain}");
            if (random.Next(2) == 0)
                sb.Append(' ').Append(s_protocolPieces[random.Next(s_protocolPieces.Length)]);
            for (int k = random.Next(0, 3); k > 0; k--)
                sb.Append(' ').Append(s_pieces[random.Next(s_pieces.Length)]);
            if (random.Next(40) == 0)
                sb.Append(' ').Append(s_wrongPieces[random.Next(s_wrongPieces.Length)]);
            int roll = random.Next(10);
            if (roll < 3 && chain < userChains - 1)
                sb.Append(random.Next(3) == 0 ? " -g C" : " -j C").Append(random.Next(chain + 1, userChains));
            else if (roll == 3 && random.Next(15) == 0)
                sb.Append(" -j C").Append(random.Next(userChains)); // may close a loop
            else if (roll == 4 && random.Next(15) == 0)
                sb.Append(" -j NOWHERE");
            else
                sb.Append(' ').Append(s_targets[random.Next(s_targets.Length)]);
            sb.Append('\n');
        }
        return sb.Append("COMMIT\n").ToString();
    }

    private static TestPacket RandomPacket(Random random)
    {
        bool v6 = random.Next(2) == 0;
        TestPacket p = random.Next(9) switch
        {
            0 => T.Tcp(v6, (ushort)random.Next(65536), (ushort)random.Next(65536), (TcpFlags)random.Next(256), (uint)random.Next(), (uint)random.Next(), random.Next(0, 40)),
            1 => T.Udp(v6, (ushort)random.Next(65536), (ushort)random.Next(65536), random.Next(0, 40)),
            2 => T.Icmp(v6, (byte)random.Next(256), (byte)random.Next(4)),
            3 => T.IcmpError(v6, v6 ? (byte)1 : (byte)3, (byte)random.Next(5), T.Tcp(v6)),
            4 => T.Generic(v6, (byte)random.Next(256), random.Next(0, 30)),
            5 => MatchTests.Fragment(T.Tcp(), 8 * random.Next(0, 4), random.Next(2) == 0),
            6 => T.Tcp(v6, src: v6 ? T.Addr("ff02::1") : T.Addr("224.0.0.1")),
            _ => T.Udp(v6),
        };
        byte[] bytes = p.Bytes;
        switch (random.Next(4))
        {
            case 0:
                bytes = bytes[..random.Next(0, bytes.Length + 1)];
                break;
            case 1:
                bytes = (byte[])bytes.Clone();
                for (int i = random.Next(1, 4); i > 0 && bytes.Length > 0; i--)
                    bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                break;
            case 2:
                bytes = new byte[random.Next(0, 80)];
                random.NextBytes(bytes);
                if (bytes.Length > 0)
                    bytes[0] = (byte)((random.Next(2) == 0 ? 0x40 : 0x60) | (bytes[0] & 0x0F));
                break;
        }
        return new TestPacket(bytes);
    }

    private static void Exercise(Ruleset rs, Random random, int packets)
    {
        Span<int> logs = stackalloc int[4];
        byte[] reply = new byte[RejectBuilder.MaxReplyLength];
        CtState[] states = Enum.GetValues<CtState>();
        for (int i = 0; i < packets; i++)
        {
            TestPacket p = RandomPacket(random);
            var hook = (Hook)random.Next(3);
            var facts = new PacketFacts(hook, ref p.Parsed, p.Bytes, p.Result)
            {
                In = hook == Hook.Output ? IfName.None : IfName.Create(random.Next(2) == 0 ? "eth0" : "lo"),
                Out = hook == Hook.Input ? IfName.None : IfName.Create("eth1"),
                State = states[random.Next(states.Length)],
                Direction = (CtDirection)random.Next(3),
                Status = (CtStatus)random.Next(64),
                Mark = (uint)random.Next(3),
                MacHeader = random.Next(2) == 0 ? new byte[14] : default,
            };
            RuleVerdict v = rs.Evaluate(facts, logs);
            Assert.InRange(v.Rule, -1, rs.Rules.Count - 1);
            Assert.True(v.LogCount >= 0);
            Assert.True(v.Verdict != Verdict.Reject || v.RejectWith != RejectWith.Default);
            for (int k = 0; k < Math.Min(v.LogCount, logs.Length); k++)
            {
                string line = LogFormatter.Format(facts, rs.Rules[logs[k]].Log!);
                Assert.InRange(line.Length, 1, LogFormatter.MaxLineLength);
            }
            // REJECT's builder on every packet, whatever the verdict: it must refuse what it cannot answer.
            int n = RejectBuilder.Build(reply, (RejectWith)random.Next(15), facts, verifyChecksum: random.Next(2) == 0);
            if (n > 0)
            {
                // The quote is whatever arrived (maybe mangled), so only the reply's own headers must be sound.
                InvalidReason result = PacketParser.Parse(reply.AsSpan(0, n), out ParsedPacket parsed);
                Assert.True(result is InvalidReason.None or InvalidReason.IcmpErrorBadInner, result.ToString());
                Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(reply.AsSpan(0, n), parsed));
            }
            Assert.False(string.IsNullOrEmpty(LogFormatter.Format(facts, new LogOptions { Flags = LogFlags.IpOptions | LogFlags.TcpOptions | LogFlags.TcpSequence })));
        }
    }

    [Fact]
    public void RandomRulesetsAndPackets_NeverThrow()
    {
        var random = new Random(20240611);
        int loaded = 0, rejected = 0;
        for (int i = 0; i < 400; i++)
        {
            string text = RandomRuleset(random);
            if (Ruleset.TryLoad(text, "fuzz", out Ruleset? rs, out IReadOnlyList<RuleError> errors))
            {
                loaded++;
                Assert.Empty(errors);
                Assert.Equal(rs!.Rules.Count, rs.Chains.Sum(c => c.RuleCount));
                Exercise(rs, random, 50);
            }
            else
            {
                rejected++;
                Assert.All(errors, e => Assert.True(e.Line >= 1 && e.Column >= 1 && e.Message.Length > 0, e.ToString()));
            }
        }
        Assert.True(loaded > 100, $"only {loaded} random rulesets loaded");
        Assert.True(rejected > 20, $"only {rejected} random rulesets were rejected");
    }

    [Fact]
    public void MutatedRulesFiles_NeverThrowAndLocateEveryError()
    {
        var random = new Random(7);
        string[] originals = Directory.GetFiles(T.RulesDirectory(), "*.rules").Select(File.ReadAllText).ToArray();
        const string alphabet = "-!:/,.\"\\*[]#\n\t 0123456789abcdefACDEIJNOPRSTUVW+";
        int failures = 0;
        for (int i = 0; i < 3000; i++)
        {
            var text = new StringBuilder(originals[random.Next(originals.Length)]);
            for (int edits = random.Next(1, 5); edits > 0 && text.Length > 0; edits--)
            {
                int at = random.Next(text.Length);
                switch (random.Next(3))
                {
                    case 0:
                        text.Remove(at, Math.Min(random.Next(1, 6), text.Length - at));
                        break;
                    case 1:
                        text.Insert(at, alphabet[random.Next(alphabet.Length)]);
                        break;
                    default:
                        text[at] = alphabet[random.Next(alphabet.Length)];
                        break;
                }
            }
            if (Ruleset.TryLoad(text.ToString(), "mutant.rules", out Ruleset? rs, out IReadOnlyList<RuleError> errors))
            {
                Exercise(rs!, random, 5);
                continue;
            }
            failures++;
            int lines = text.ToString().Split('\n').Length;
            Assert.All(errors, e =>
            {
                Assert.Equal("mutant.rules", e.File);
                Assert.InRange(e.Line, 1, lines);
                Assert.True(e.Column >= 1, e.ToString());
            });
        }
        Assert.True(failures > 300, $"only {failures} mutants failed to load");
    }

    [Fact]
    public void RandomText_NeverThrows()
    {
        var random = new Random(99);
        for (int i = 0; i < 2000; i++)
        {
            char[] chars = new char[random.Next(0, 200)];
            for (int k = 0; k < chars.Length; k++)
                chars[k] = (char)random.Next(1, 128);
            string text = (random.Next(2) == 0 ? "*filter\n" : "") + new string(chars) + (random.Next(2) == 0 ? "\nCOMMIT\n" : "");
            Ruleset.TryLoad(text, "random", out _, out IReadOnlyList<RuleError> errors);
            Assert.All(errors, e => Assert.True(e.Line >= 1 && e.Column >= 1, e.ToString()));
        }
    }
}
