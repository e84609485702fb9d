using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall.Logging;

/// <summary>
/// Shadow mode's disagreement log: one line per packet on which ctfw and kernel conntrack disagree,
/// with the kernel's answer, ctfw's answer and reason, the TCP state of ctfw's entry before and after
/// the packet, and the packet in LOG format (with sequence numbers and TCP options). Rate limited by
/// a token bucket shared by all workers (<see cref="Burst"/> lines, refilled at
/// <see cref="PerSecond"/>/s); suppressed lines are counted and announced with the next one written.
/// Only disagreeing packets come here.
/// </summary>
public sealed class AbLog
{
    public const int PerSecond = 10;
    public const int Burst = 50;

    private static readonly LogOptions s_packetFormat = new() { Prefix = "", Flags = LogFlags.TcpSequence | LogFlags.TcpOptions };

    private readonly RateLimitedLines _lines;

    public AbLog(LogQueue queue)
    {
        _lines = new RateLimitedLines(queue, "ctfw: ab: ", "disagreement lines", PerSecond, Burst);
    }

    public long Written => _lines.Written;

    public long Suppressed => _lines.Suppressed;

    public void Write(CtState kernelState, CtDirection kernelDir, in Classification ctfw, in PacketFacts facts, long now)
    {
        if (_lines.TryAcquire(now))
            _lines.WriteLine(Format(kernelState, kernelDir, ctfw, facts, stackalloc char[LogFormatter.MaxLineLength]));
    }

    /// <summary>The line, e.g. <c>ctfw: ab: kernel ESTABLISHED REPLY, ctfw INVALID - (tcp-invalid-seq), tcp SYN_RECV→SYN_RECV: IN=… SRC=…</c>.</summary>
    public static string Format(CtState kernelState, CtDirection kernelDir, in Classification ctfw, in PacketFacts facts, Span<char> scratch)
    {
        int length = LogFormatter.Format(scratch, facts, s_packetFormat);
        string reason = ctfw.State is CtState.Invalid or CtState.Dropped ? $" ({ctfw.Reason.Name()})" : ctfw.Ignored ? " (ignored)" : "";
        string tcp = facts.Packet.Protocol == IpProto.Tcp ? $", tcp {ctfw.PreviousTcpState.Name()}->{ctfw.TcpState.Name()}" : "";
        return $"ctfw: ab: kernel {kernelState.Name()} {kernelDir.Name()}, ctfw {ctfw.State.Name()} {ctfw.Direction.Name()}{reason}{tcp}: {scratch[..length]}";
    }
}
