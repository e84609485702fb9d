using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// Shadow mode's disagreement log: one line per packet on which ctfw and kernel conntrack disagree,
/// with the kernel's answer, ctfw's answer and reason, the TCP state of ctfw's entry before and after
/// the packet, and the packet in LOG format (with sequence numbers and TCP options). Rate limited by
/// a token bucket shared by all workers (<see cref="Burst"/> lines, refilled at
/// <see cref="PerSecond"/>/s); suppressed lines are counted and announced with the next one written.
/// Only disagreeing packets come here, so the lock is off the common path.
/// </summary>
internal sealed class AbLog
{
    public const int PerSecond = 10;
    public const int Burst = 50;

    private static readonly LogOptions s_packetFormat = new() { Prefix = "", Flags = LogFlags.TcpSequence | LogFlags.TcpOptions };

    private readonly Lock _lock = new();
    private readonly TextWriter _writer;
    private readonly char[] _packet = new char[LogFormatter.MaxLineLength];
    private double _tokens = Burst;
    private long _lastRefill;
    private long _suppressedSinceLast;

    public AbLog(TextWriter writer)
    {
        _writer = writer;
    }

    public long Written { get; private set; }

    public long Suppressed { get; private set; }

    public void Write(CtState kernelState, CtDirection kernelDir, in Classification ctfw, in PacketFacts facts, long now)
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
                _writer.WriteLine($"ctfw: ab: {_suppressedSinceLast} disagreement lines suppressed (rate limit {PerSecond}/s)");
                _suppressedSinceLast = 0;
            }
            _writer.WriteLine(Format(kernelState, kernelDir, ctfw, facts, _packet));
            Written++;
        }
    }

    /// <summary>The line, e.g. <c>ctfw: ab: kernel ESTABLISHED REPLY, ctfw INVALID - (tcp-invalid-seq), tcp SYN_RECV→SYN_RECV: IN=… SRC=…</c>.</summary>
    internal static string Format(CtState kernelState, CtDirection kernelDir, in Classification ctfw, in PacketFacts facts, Span<char> scratch)
    {
        int length = LogFormatter.Format(scratch, facts, s_packetFormat);
        string reason = ctfw.State is CtState.Invalid or CtState.Dropped ? $" ({ctfw.Reason.Name()})" : ctfw.Ignored ? " (ignored)" : "";
        string tcp = facts.Packet.Protocol == IpProto.Tcp ? $", tcp {ctfw.PreviousTcpState.Name()}->{ctfw.TcpState.Name()}" : "";
        return $"ctfw: ab: kernel {kernelState.Name()} {kernelDir.Name()}, ctfw {ctfw.State.Name()} {ctfw.Direction.Name()}{reason}{tcp}: {scratch[..length]}";
    }
}
