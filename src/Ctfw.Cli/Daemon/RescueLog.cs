using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// One line per rescued packet (<c>--rescue</c>): the FIN or RST that kernel conntrack would have
/// called INVALID and ctfw let through, with the state its entry came back in and the packet in LOG
/// format. Rate limited like <see cref="AbLog"/> (burst <see cref="Burst"/>, <see cref="PerSecond"/>/s,
/// shared by all workers); suppressed lines are counted and announced with the next one.
/// </summary>
internal sealed class RescueLog
{
    public const int PerSecond = 10;
    public const int Burst = 50;

    private static readonly LogOptions s_packetFormat = new() { Prefix = "", Flags = LogFlags.TcpSequence };

    private readonly Lock _lock = new();
    private readonly TextWriter _writer;
    private readonly char[] _packet = new char[LogFormatter.MaxLineLength];
    private double _tokens = Burst;
    private long _lastRefill;
    private long _suppressedSinceLast;

    public RescueLog(TextWriter writer)
    {
        _writer = writer;
    }

    public long Written { get; private set; }

    public long Suppressed { get; private set; }

    public void Write(in Classification ct, in PacketFacts facts, long now)
    {
        lock (_lock)
        {
            _tokens = Math.Min(Burst, _tokens + (now - _lastRefill) * (PerSecond / 1000.0));
            _lastRefill = now;
            if (_tokens < 1)
            {
                Suppressed++;
                _suppressedSinceLast++;
                return;
            }
            _tokens -= 1;
            if (_suppressedSinceLast > 0)
            {
                _writer.WriteLine($"ctfw: rescue: {_suppressedSinceLast} lines suppressed (rate limit {PerSecond}/s)");
                _suppressedSinceLast = 0;
            }
            _writer.WriteLine(Format(ct, facts, _packet));
            Written++;
        }
    }

    /// <summary>e.g. <c>ctfw: rescued FIN: ESTABLISHED ORIGINAL, tcp NONE->FIN_WAIT: IN=… SRC=…</c>.</summary>
    internal static string Format(in Classification ct, in PacketFacts facts, Span<char> scratch)
    {
        int length = LogFormatter.Format(scratch, facts, s_packetFormat);
        string what = (facts.Packet.TcpFlags & TcpFlags.Rst) != 0 ? "RST" : "FIN";
        return $"ctfw: rescued {what}: {ct.State.Name()} {ct.Direction.Name()}, tcp {ct.PreviousTcpState.Name()}->{ct.TcpState.Name()}: {scratch[..length]}";
    }
}
