using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>A built packet with its parse, kept in a class so facts can reference the parse.</summary>
internal sealed class TestPacket
{
    public TestPacket(byte[] bytes)
    {
        Bytes = bytes;
        Result = PacketParser.Parse(bytes, out Parsed);
    }

    public byte[] Bytes { get; }
    public ParsedPacket Parsed;
    public InvalidReason Result { get; }
}

internal static class T
{
    public static readonly IpAddress V4Client = Addr("192.0.2.10");
    public static readonly IpAddress V4Server = Addr("198.51.100.20");
    public static readonly IpAddress V6Client = Addr("2001:db8::10");
    public static readonly IpAddress V6Server = Addr("2001:db8:1::20");

    public static IpAddress Addr(string text)
    {
        Assert.True(IpAddress.TryParse(text, out IpAddress address, out _), text);
        return address;
    }

    public static IpAddress Client(bool v6) => v6 ? V6Client : V4Client;
    public static IpAddress Server(bool v6) => v6 ? V6Server : V4Server;

    public static Ruleset Load(string text, string file = "test.rules")
    {
        bool ok = Ruleset.TryLoad(text, file, out Ruleset? rs, out IReadOnlyList<RuleError> errors);
        Assert.True(ok, string.Join("\n", errors));
        Assert.Empty(errors);
        return rs!;
    }

    /// <summary>A *filter table with the given lines between the chain declarations and COMMIT.</summary>
    public static Ruleset Table(string body, string input = "ACCEPT", string forward = "ACCEPT", string output = "ACCEPT", string chains = "") =>
        Load($"*filter\n:INPUT {input} [0:0]\n:FORWARD {forward} [0:0]\n:OUTPUT {output} [0:0]\n{chains}{body}\nCOMMIT\n");

    public static IReadOnlyList<RuleError> Errors(string text, string file = "rules.v4")
    {
        bool ok = Ruleset.TryLoad(text, file, out Ruleset? rs, out IReadOnlyList<RuleError> errors);
        Assert.False(ok);
        Assert.Null(rs);
        Assert.NotEmpty(errors);
        return errors;
    }

    /// <summary>The single error of a table whose rule lines start at line 5.</summary>
    public static string TableError(string body, string chains = "")
    {
        IReadOnlyList<RuleError> errors = Errors($"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{chains}{body}\nCOMMIT\n");
        Assert.Single(errors);
        return errors[0].ToString();
    }

    public static TestPacket Tcp(bool v6 = false, ushort sport = 40000, ushort dport = 80, TcpFlags flags = TcpFlags.Syn,
        uint seq = 1000, uint ack = 0, int payload = 0, IpAddress? src = null, IpAddress? dst = null)
    {
        var spec = new TcpSpec
        {
            V6 = v6,
            Src = src ?? Client(v6),
            Dst = dst ?? Server(v6),
            SrcPort = sport,
            DstPort = dport,
            Seq = seq,
            Ack = ack,
            Flags = flags,
            Window = 64240,
            PayloadLength = payload,
            PayloadFill = 0x41,
        };
        byte[] buffer = new byte[2000];
        int n = PacketBuilder.Tcp(buffer, spec);
        return new TestPacket(buffer[..n]);
    }

    public static TestPacket Udp(bool v6 = false, ushort sport = 5353, ushort dport = 53, int payload = 20, IpAddress? src = null, IpAddress? dst = null)
    {
        byte[] buffer = new byte[2000];
        int n = PacketBuilder.Udp(buffer, v6, src ?? Client(v6), dst ?? Server(v6), sport, dport, payload, 0x33);
        return new TestPacket(buffer[..n]);
    }

    public static TestPacket Icmp(bool v6 = false, byte? type = null, byte code = 0, ushort id = 0x1234, ushort seq = 1, int payload = 8,
        IpAddress? src = null, IpAddress? dst = null)
    {
        byte[] buffer = new byte[2000];
        byte t = type ?? (byte)(v6 ? 128 : 8);
        int n = v6
            ? PacketBuilder.Icmpv6(buffer, src ?? Client(v6), dst ?? Server(v6), t, code, id, seq, payload)
            : PacketBuilder.Icmp(buffer, src ?? Client(v6), dst ?? Server(v6), t, code, id, seq, payload);
        return new TestPacket(buffer[..n]);
    }

    public static TestPacket IcmpError(bool v6, byte type, byte code, TestPacket quoted)
    {
        byte[] buffer = new byte[2000];
        int n = PacketBuilder.IcmpError(buffer, v6, Server(v6), Client(v6), type, code, quoted.Bytes);
        return new TestPacket(buffer[..n]);
    }

    public static TestPacket Generic(bool v6, byte protocol, int payload = 10)
    {
        byte[] buffer = new byte[2000];
        int n = PacketBuilder.Generic(buffer, v6, Client(v6), Server(v6), protocol, payload);
        return new TestPacket(buffer[..n]);
    }

    public static RuleVerdict Eval(Ruleset rs, TestPacket p, Hook hook = Hook.Input, CtState state = CtState.New,
        CtDirection dir = CtDirection.Original, string? inIf = "", string? outIf = "", CtStatus status = CtStatus.None,
        Span<int> logs = default, uint mark = 0)
    {
        var facts = new PacketFacts(hook, ref p.Parsed, p.Bytes, p.Result)
        {
            In = IfName.Create(inIf == "" ? (hook == Hook.Output ? "" : "eth0") : inIf ?? ""),
            Out = IfName.Create(outIf == "" ? (hook == Hook.Input ? "" : "eth1") : outIf ?? ""),
            State = state,
            Direction = state is CtState.Invalid or CtState.Untracked ? CtDirection.None : dir,
            Status = status,
            Mark = mark,
        };
        return rs.Evaluate(facts, logs);
    }

    /// <summary>Accept or Drop as one word, for compact assertions.</summary>
    public static string V(RuleVerdict v) => v.Verdict.ToString();

    public static string RulesDirectory()
    {
        string? dir = typeof(T).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
            .Cast<System.Reflection.AssemblyMetadataAttribute>().Single(a => a.Key == "RulesDirectory").Value;
        Assert.True(Directory.Exists(dir), dir);
        return Path.GetFullPath(dir!);
    }
}
