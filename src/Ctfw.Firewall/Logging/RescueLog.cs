using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall.Logging;

/// <summary>
/// One line per rescued packet (<c>--rescue</c>): the FIN or RST that kernel conntrack would have
/// called INVALID and ctfw let through, with the state its entry came back in and the packet in LOG
/// format. Rate limited like <see cref="AbLog"/> (burst <see cref="Burst"/>, <see cref="PerSecond"/>/s,
/// shared by all workers); suppressed lines are counted and announced with the next one.
/// </summary>
public sealed class RescueLog
{
    public const int PerSecond = 10;
    public const int Burst = 50;

    private static readonly LogOptions s_packetFormat = new() { Prefix = "", Flags = LogFlags.TcpSequence };

    private readonly RateLimitedLines _lines;

    public RescueLog(LogQueue queue)
    {
        _lines = new RateLimitedLines(queue, "ctfw: rescue: ", "lines", PerSecond, Burst);
    }

    public long Written => _lines.Written;

    public long Suppressed => _lines.Suppressed;

    public void Write(in Classification ct, in PacketFacts facts, long now)
    {
        if (_lines.TryAcquire(now))
            _lines.WriteLine(Format(ct, facts, stackalloc char[LogFormatter.MaxLineLength]));
    }

    /// <summary>e.g. <c>ctfw: rescued FIN: ESTABLISHED ORIGINAL, tcp NONE->FIN_WAIT: IN=… SRC=…</c>.</summary>
    public static string Format(in Classification ct, in PacketFacts facts, Span<char> scratch)
    {
        int length = LogFormatter.Format(scratch, facts, s_packetFormat);
        string what = (facts.Packet.TcpFlags & TcpFlags.Rst) != 0 ? "RST" : "FIN";
        return $"ctfw: rescued {what}: {ct.State.Name()} {ct.Direction.Name()}, tcp {ct.PreviousTcpState.Name()}->{ct.TcpState.Name()}: {scratch[..length]}";
    }
}
