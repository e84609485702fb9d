using Ctfw.Lab.Network;
using Ctfw.Packets;
using static Ctfw.Lab.Scenarios.Expect;
using static Ctfw.Lab.Scenarios.TcpStates;

namespace Ctfw.Lab.Scenarios;

/// <summary>How one end of a TCP connection talks: what its SYN offers and the window it advertises.</summary>
public sealed record TcpEndpoint
{
    /// <summary>Window in the SYN or SYN/ACK (never scaled).</summary>
    public ushort SynWindow { get; init; } = 64240;
    /// <summary>Raw window field after the handshake (scaled by the peer only if both sides offered wscale).</summary>
    public ushort Window { get; init; } = 502;
    public ushort Mss { get; init; } = 1460;
    /// <summary>-1 = no window-scale option in the SYN.</summary>
    public sbyte WindowScale { get; init; } = 7;
    public bool SackPermitted { get; init; } = true;
    public bool Timestamps { get; init; } = true;

    /// <summary>What a current Linux client sends: 64240, mss 1460, sackOK, TS, wscale 7, then 502 (×128).</summary>
    public static TcpEndpoint LinuxClient { get; } = new();

    /// <summary>What a current Linux server answers: 65160, mss 1460, sackOK, TS, wscale 7, then 509 (×128).</summary>
    public static TcpEndpoint LinuxServer { get; } = new() { SynWindow = 65160, Window = 509 };
}

/// <summary>
/// Builds the segments of one TCP connection between the lab client and server, keeping each
/// side's next sequence number and timestamp clock, so scenarios read like a trace:
/// <c>f.Syn(), f.SynAck(), f.Ack(Client), f.Data(Client, 517)</c>. By default a segment carries the
/// sender's next sequence number and acknowledges everything the peer has sent; explicit
/// <c>seq</c>/<c>ack</c> arguments build retransmissions and broken segments without moving the flow.
/// </summary>
public sealed class TcpFlow
{
    private readonly uint[] _isn = new uint[2];
    private readonly uint[] _nxt = new uint[2];
    private readonly uint[] _tsVal = new uint[2];
    private readonly TcpEndpoint[] _endpoint = new TcpEndpoint[2];

    public TcpFlow(bool v6, ushort clientPort, ushort serverPort, uint clientIsn, uint serverIsn,
        TcpEndpoint? client = null, TcpEndpoint? server = null)
    {
        V6 = v6;
        ClientPort = clientPort;
        ServerPort = serverPort;
        _isn[0] = _nxt[0] = clientIsn;
        _isn[1] = _nxt[1] = serverIsn;
        _endpoint[0] = client ?? TcpEndpoint.LinuxClient;
        _endpoint[1] = server ?? TcpEndpoint.LinuxServer;
        if (v6)
        {
            _endpoint[0] = _endpoint[0] with { Mss = (ushort)(_endpoint[0].Mss - 20) };
            _endpoint[1] = _endpoint[1] with { Mss = (ushort)(_endpoint[1].Mss - 20) };
        }
        // Timestamp clocks in the ranges Linux's per-connection random offsets produce.
        _tsVal[0] = 2_083_107_423u ^ clientIsn >> 8;
        _tsVal[1] = 3_215_437_785u ^ serverIsn >> 8;
    }

    public bool V6 { get; }
    public ushort ClientPort { get; }
    public ushort ServerPort { get; }

    public uint Isn(Side side) => _isn[(int)side];

    /// <summary>The next sequence number <paramref name="side"/> will send.</summary>
    public uint Nxt(Side side) => _nxt[(int)side];

    private bool TimestampsOn => _endpoint[0].Timestamps && _endpoint[1].Timestamps;

    /// <summary>SYN from <paramref name="from"/> (the server too, for simultaneous open).</summary>
    public TcpPacket Syn(Side from = Side.Client)
    {
        TcpPacket p = SynLike(from, TcpFlags.Syn, ack: 0);
        _nxt[(int)from] = Isn(from) + 1;
        return p;
    }

    /// <summary>SYN/ACK acknowledging the peer's SYN.</summary>
    public TcpPacket SynAck(Side from = Side.Server, uint? ack = null)
    {
        TcpPacket p = SynLike(from, TcpFlags.Syn | TcpFlags.Ack, ack ?? Nxt(Peer(from)));
        _nxt[(int)from] = Isn(from) + 1;
        return p;
    }

    /// <summary>A resend of the SYN exactly as first sent (same ISN, options, window), with a later timestamp.</summary>
    public TcpPacket SynRetransmit(Side from = Side.Client) => SynLike(from, TcpFlags.Syn, ack: 0);

    public TcpPacket Ack(Side from, uint? ack = null, IReadOnlyList<uint>? sack = null) =>
        Segment(from, TcpFlags.Ack, Nxt(from), ack ?? Nxt(Peer(from)), sack: sack);

    /// <summary>Data with PSH/ACK at the sender's next sequence number (advances it), or at <paramref name="seq"/> (a resend; does not).</summary>
    public TcpPacket Data(Side from, int length, uint? seq = null, uint? ack = null)
    {
        TcpPacket p = Segment(from, TcpFlags.Psh | TcpFlags.Ack, seq ?? Nxt(from), ack ?? Nxt(Peer(from)), length);
        if (seq is null)
            _nxt[(int)from] += (uint)length;
        return p;
    }

    /// <summary>
    /// Data with PSH/ACK carrying <paramref name="text"/> (e.g. an FTP command with its CRLF), at the
    /// sender's next sequence number (advances it), or at <paramref name="seq"/> (a resend; does not).
    /// </summary>
    public TcpPacket Text(Side from, string text, uint? seq = null) => Data(from, text.Length, seq) with { Text = text };

    /// <summary>FIN/ACK at the sender's next sequence number; the FIN consumes one sequence number.</summary>
    public TcpPacket Fin(Side from, uint? ack = null)
    {
        TcpPacket p = Segment(from, TcpFlags.Fin | TcpFlags.Ack, Nxt(from), ack ?? Nxt(Peer(from)));
        _nxt[(int)from] += 1;
        return p;
    }

    /// <summary>RST (with ACK when <paramref name="ack"/> is given), window 0 and no options, as Linux sends resets.</summary>
    public TcpPacket Rst(Side from, uint? seq = null, uint? ack = null) => new(from, V6)
    {
        SrcPort = Port(from),
        DstPort = Port(Peer(from)),
        Seq = seq ?? Nxt(from),
        Ack = ack ?? 0,
        Flags = ack is null ? TcpFlags.Rst : TcpFlags.Rst | TcpFlags.Ack,
        Window = 0,
    };

    /// <summary>Any segment, fully explicit; does not move the flow. Carries timestamps when both sides negotiated them.</summary>
    public TcpPacket Segment(Side from, TcpFlags flags, uint seq, uint ack, int length = 0, ushort? window = null,
        IReadOnlyList<uint>? sack = null, bool badChecksum = false)
    {
        bool ts = TimestampsOn;
        return new TcpPacket(from, V6)
        {
            SrcPort = Port(from),
            DstPort = Port(Peer(from)),
            Seq = seq,
            Ack = ack,
            Flags = flags,
            Window = window ?? _endpoint[(int)from].Window,
            PayloadLength = length,
            Timestamp = ts,
            TsVal = ts ? Tick(from) : 0,
            TsEcr = ts ? _tsVal[(int)Peer(from)] : 0,
            Sack = sack ?? [],
            BadChecksum = badChecksum,
        };
    }

    private TcpPacket SynLike(Side from, TcpFlags flags, uint ack)
    {
        TcpEndpoint e = _endpoint[(int)from];
        return new TcpPacket(from, V6)
        {
            SrcPort = Port(from),
            DstPort = Port(Peer(from)),
            Seq = Isn(from),
            Ack = ack,
            Flags = flags,
            Window = e.SynWindow,
            Mss = e.Mss,
            WindowScale = e.WindowScale,
            SackPermitted = e.SackPermitted,
            Timestamp = e.Timestamps,
            TsVal = e.Timestamps ? Tick(from) : 0,
            TsEcr = e.Timestamps && (flags & TcpFlags.Ack) != 0 ? _tsVal[(int)Peer(from)] : 0,
        };
    }

    private uint Tick(Side from) => _tsVal[(int)from] += 7;

    private ushort Port(Side side) => side == Side.Client ? ClientPort : ServerPort;

    private static Side Peer(Side side) => side == Side.Client ? Side.Server : Side.Client;
}

public static class ScenarioBuilderTcpExtensions
{
    /// <summary>
    /// The three-way handshake with the spec's verdicts (§4.14 vectors 1, 3, 4): SYN NEW/SYN_SENT,
    /// SYN/ACK ESTABLISHED-reply/SYN_RECV, ACK ESTABLISHED/ESTABLISHED.
    /// </summary>
    public static ScenarioBuilder Handshake(this ScenarioBuilder s, TcpFlow f) => s
        .Send(f.Syn(), NewOrig(SynSent))
        .Send(f.SynAck(), EstReply(SynRecv))
        .Send(f.Ack(Side.Client), EstOrig(Established));
}
