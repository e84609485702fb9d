using Ctfw.Conntrack;
using Ctfw.Linux;
using Ctfw.Packets;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// <c>--reset-on-expiry</c>: when a TCP entry expires while both endpoints may still believe in the
/// connection (ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK), tell them, so that neither is left with
/// a socket the firewall has forgotten (the FIN_WAIT_1 and CLOSE_WAIT leftovers of the seeds).
/// Each endpoint gets a RST|ACK from its peer's address whose sequence number is the next one it
/// expects from that peer (the peer's highest sequence end seen: RFC 5961 accepts a RST only at
/// exactly rcv_nxt, so an in-window but inexact one would only draw a challenge ACK). Runs on the
/// housekeeper thread, which drains the engine's expiry feed; rate limited by a token bucket
/// (<see cref="PerSecond"/> flows, burst <see cref="Burst"/>), counted.
/// </summary>
internal sealed class ExpiryResetter : IDisposable
{
    public const int PerSecond = 1000;
    public const int Burst = 2000;

    private readonly RawIpSender _sender;
    private readonly byte[] _packet = new byte[128];
    private double _tokens = Burst;
    private long _lastRefill;

    public ExpiryResetter(RawIpSender sender)
    {
        _sender = sender;
    }

    /// <summary>Expired flows answered with two RSTs.</summary>
    public long FlowsReset { get; private set; }

    public long ResetsSent { get; private set; }

    public long SendErrors { get; private set; }

    /// <summary>Flows not reset because of the rate limit.</summary>
    public long Suppressed { get; private set; }

    /// <summary>Drains the engine's expiry feed.</summary>
    public void Drain(ConntrackEngine engine, long now)
    {
        while (engine.TryTakeExpired(out ExpiredTcpFlow flow))
            Reset(flow, now);
    }

    public void Reset(in ExpiredTcpFlow flow, long now)
    {
        _tokens = Math.Min(Burst, _tokens + (now - _lastRefill) * (PerSecond / 1000.0));
        _lastRefill = now;
        if (_tokens < 1)
        {
            Suppressed++;
            return;
        }
        _tokens -= 1;
        ConnTuple o = flow.Original;
        // To the original sender (e.g. the client), from its peer: the peer's next sequence number.
        Send(BuildRst(_packet, o.IsV6, o.Dst, o.Src, o.DstId, o.SrcId, flow.ReplyEnd, flow.OriginalEnd));
        // To the reply side (e.g. the server), from the original sender.
        Send(BuildRst(_packet, o.IsV6, o.Src, o.Dst, o.SrcId, o.DstId, flow.OriginalEnd, flow.ReplyEnd));
        FlowsReset++;
    }

    /// <summary>A RST|ACK with window 0 and no options; returns the packet.</summary>
    internal static ReadOnlySpan<byte> BuildRst(Span<byte> buffer, bool v6, IpAddress src, IpAddress dst, ushort srcPort, ushort dstPort, uint seq, uint ack)
    {
        var spec = new TcpSpec
        {
            V6 = v6,
            Src = src,
            Dst = dst,
            SrcPort = srcPort,
            DstPort = dstPort,
            Seq = seq,
            Ack = ack,
            Flags = TcpFlags.Rst | TcpFlags.Ack,
            Window = 0,
        };
        int n = PacketBuilder.Tcp(buffer, spec);
        return buffer[..n];
    }

    private void Send(ReadOnlySpan<byte> packet)
    {
        if (_sender.Send(packet) == 0)
            ResetsSent++;
        else
            SendErrors++;
    }

    public void Dispose() => _sender.Dispose();
}
