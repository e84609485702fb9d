using System.Text;
using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Firewall.Logging;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall.Tests;

/// <summary>
/// A gateway on paper: LAN interface 1 (lan0), WAN interface 2 (wan0), a client on the LAN and a
/// server beyond the WAN, a conntrack engine with the kernel's defaults, and a pipeline over it.
/// </summary>
internal sealed class Gateway : IDisposable
{
    public const uint Lan = 1, Wan = 2;
    public static readonly IpAddress Client = Addr("192.0.2.10");
    public static readonly IpAddress Server = Addr("198.51.100.20");
    public static readonly IpAddress Client6 = Addr("2001:db8::10");
    public static readonly IpAddress Server6 = Addr("2001:db8:1::20");

    private readonly StringBuilder _log = new();

    public Gateway(string? rules, ConntrackSettings? settings = null, bool failClosed = false, ShadowMode? shadow = null, OffloadPolicy? offload = null, int generation = 0)
    {
        Engine = new ConntrackEngine(settings ?? new ConntrackSettings(), Now, hashSeed: 7);
        if (offload != null)
            Engine.EnableOffload(offload);
        FirewallConfig config = Config(rules, failClosed, shadow);
        Pipeline = new FirewallPipeline(Engine.CreateWorker(), new FirewallConfig { Rules = config.Rules, FailClosed = failClosed, Shadow = shadow, Generation = generation }, new FirewallEnvironment
        {
            Interfaces = new FixedInterfaceNames((Lan, "lan0"), (Wan, "wan0")),
            Log = new LogSink(Lines),
        });
    }

    public ConntrackEngine Engine { get; }
    public FirewallPipeline Pipeline { get; }

    /// <summary>Where the LOG lines go (the daemon's log writer thread is played by <see cref="LogText"/>).</summary>
    public LogQueue Lines { get; } = new(64);

    /// <summary>Every LOG line queued so far, each with its newline.</summary>
    public string LogText
    {
        get
        {
            QueuedLines.DrainInto(Lines, _log);
            return _log.ToString();
        }
    }

    public MemoryQueue Queue { get; } = new();
    public long Now { get; set; } = 1_000_000;

    public static FirewallConfig Config(string? rules, bool failClosed = false, ShadowMode? shadow = null) =>
        new() { Rules = rules is null ? null : Load(rules), FailClosed = failClosed, Shadow = shadow };

    public static Ruleset Load(string text)
    {
        Assert.True(Ruleset.TryLoad(text, "test.rules", out Ruleset? rules, out IReadOnlyList<RuleError> errors), string.Join("\n", errors));
        return rules!;
    }

    public static IpAddress Addr(string text)
    {
        Assert.True(IpAddress.TryParse(text, out IpAddress a, out _), text);
        return a;
    }

    /// <summary>Queues the packets (all forwarded, LAN→WAN for the client's, WAN→LAN for the server's) and runs one pass.</summary>
    public IReadOnlyList<MemoryQueue.Outcome> Forward(params byte[][] packets)
    {
        foreach (byte[] p in packets)
            Queue.Enqueue(p, ForwardMeta(p));
        return Queue.Run(Pipeline, Now);
    }

    public MemoryQueue.Outcome ForwardOne(byte[] packet) => Forward(packet)[0];

    public static PacketMeta ForwardMeta(byte[] packet, uint mark = 0)
    {
        PacketParser.Parse(packet, out ParsedPacket p);
        bool fromClient = p.Src == Client || p.Src == Client6;
        return new PacketMeta
        {
            Hook = PacketHook.Forward,
            InInterface = fromClient ? Lan : Wan,
            OutInterface = fromClient ? Wan : Lan,
            Mark = mark,
            VerifyChecksums = true,
        };
    }

    public static byte[] Tcp(bool fromClient, ushort clientPort, ushort serverPort, TcpFlags flags, uint seq, uint ack, int payload = 0, bool v6 = false, ushort window = 64240)
    {
        IpAddress c = v6 ? Client6 : Client, s = v6 ? Server6 : Server;
        var spec = new TcpSpec
        {
            V6 = v6,
            Src = fromClient ? c : s,
            Dst = fromClient ? s : c,
            SrcPort = fromClient ? clientPort : serverPort,
            DstPort = fromClient ? serverPort : clientPort,
            Seq = seq,
            Ack = ack,
            Flags = flags,
            Window = window,
            PayloadLength = payload,
        };
        byte[] buffer = new byte[1600];
        int n = PacketBuilder.Tcp(buffer, spec);
        return buffer[..n];
    }

    public static byte[] Udp(bool fromClient, ushort clientPort, ushort serverPort, int payload = 8, bool v6 = false)
    {
        IpAddress c = v6 ? Client6 : Client, s = v6 ? Server6 : Server;
        byte[] buffer = new byte[1600];
        int n = fromClient
            ? PacketBuilder.Udp(buffer, v6, c, s, clientPort, serverPort, payload)
            : PacketBuilder.Udp(buffer, v6, s, c, serverPort, clientPort, payload);
        return buffer[..n];
    }

    /// <summary>SYN, SYN/ACK, ACK of a connection client:cport → server:sport (ISNs 1000 and 5000).</summary>
    public static byte[][] Handshake(ushort cport, ushort sport, bool v6 = false) =>
    [
        Tcp(true, cport, sport, TcpFlags.Syn, 1000, 0, v6: v6),
        Tcp(false, cport, sport, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001, v6: v6),
        Tcp(true, cport, sport, TcpFlags.Ack, 1001, 5001, v6: v6),
    ];

    public void Dispose() => Pipeline.Dispose();
}
