using System.Globalization;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Control;

/// <summary>
/// The two kinds of lingering TCP flow operators ask about (the seeds' half-closed pile-ups and the
/// FIN_WAIT_1 zero-window case), judged from what ctfw's tracker saw on the wire.
/// <list type="bullet">
/// <item><b>Half-closed</b>: FIN_WAIT, CLOSE_WAIT or LAST_ACK — one side has sent FIN and the other
/// has not finished closing. The age is the time since the entry entered its current state.</item>
/// <item><b>Stalled</b>: one side has advertised a zero receive window continuously for at least the
/// threshold. A Linux sender that closes while its peer's window is zero keeps its FIN queued behind
/// the unsent data and only sends zero-window probes, so the FIN is usually not on the wire; whether
/// one was seen is reported separately (<see cref="FinSeen"/>).</item>
/// </list>
/// </summary>
internal static class FlowAges
{
    public const int DefaultStalledAfterSeconds = 10;

    public static bool IsHalfClosed(in FlowInfo f) =>
        f.Original.Protocol == IpProto.Tcp && f.TcpState is TcpState.FinWait or TcpState.CloseWait or TcpState.LastAck;

    public static bool IsStalled(in FlowInfo f, long nowMs, long afterMs) => ZeroWindowSide(f, nowMs, afterMs, out _, out _);

    /// <summary>The side whose zero window has lasted longest, if that is at least <paramref name="afterMs"/>.</summary>
    public static bool ZeroWindowSide(in FlowInfo f, long nowMs, long afterMs, out string side, out long since)
    {
        side = "";
        since = long.MaxValue;
        if (f.Original.Protocol != IpProto.Tcp)
            return false;
        if (f.ZeroWindowSinceOriginal != long.MinValue && f.ZeroWindowSinceOriginal < since)
        {
            since = f.ZeroWindowSinceOriginal;
            side = "original";
        }
        if (f.ZeroWindowSinceReply != long.MinValue && f.ZeroWindowSinceReply < since)
        {
            since = f.ZeroWindowSinceReply;
            side = "reply";
        }
        return side.Length > 0 && nowMs - since >= afterMs;
    }

    /// <summary>Which ends have sent a FIN: <c>original</c>, <c>reply</c>, <c>both</c> or <c>none</c>.</summary>
    public static string FinSeen(in FlowInfo f) => (f.FinSeenOriginal, f.FinSeenReply) switch
    {
        (true, true) => "both",
        (true, false) => "original",
        (false, true) => "reply",
        _ => "none",
    };

    /// <summary>Whole seconds of a duration in ms, never negative.</summary>
    public static string Seconds(long ms) => (Math.Max(0, ms) / 1000).ToString(CultureInfo.InvariantCulture);

    public static (int HalfClosed, int Stalled) Count(List<FlowInfo> flows, long nowMs, long stalledAfterMs)
    {
        var counter = new Counter(nowMs, stalledAfterMs);
        foreach (FlowInfo f in flows)
            counter.Add(f);
        return (counter.HalfClosed, counter.Stalled);
    }

    /// <summary>The same counts straight from the engine's table, without a copy of it (stats at 1 M flows).</summary>
    public static (int HalfClosed, int Stalled) Count(ConntrackEngine engine, long nowMs, long stalledAfterMs)
    {
        var counter = new Counter(nowMs, stalledAfterMs);
        engine.ForEachFlow(nowMs, counter.Add);
        return (counter.HalfClosed, counter.Stalled);
    }

    private sealed class Counter(long nowMs, long stalledAfterMs)
    {
        public int HalfClosed;
        public int Stalled;

        public void Add(FlowInfo f)
        {
            if (IsHalfClosed(f))
                HalfClosed++;
            if (IsStalled(f, nowMs, stalledAfterMs))
                Stalled++;
        }
    }
}
