using System.Globalization;
using System.Text;
using Ctfw.Lab.Traffic;

namespace Ctfw.Lab.Flood;

/// <summary>
/// One sample of the firewall during a run (every 500 ms). ctfw: its table and drop counters from the
/// control socket and its RSS from /proc; the kernel: its conntrack count in the gateway namespace.
/// Null where the source did not answer.
/// </summary>
/// <param name="Seconds">Since the flood started (negative before it).</param>
/// <param name="TableEntries">ctfw's table.entries, or the kernel's nf_conntrack_count.</param>
/// <param name="TableMax">ctfw's table.max, or the kernel's nf_conntrack_max.</param>
/// <param name="QueueDrops">Sum of every queue's queue_dropped + user_dropped (the kernel's counters).</param>
public sealed record HostileSample(double Seconds, long? TableEntries, long? TableMax, long? RssBytes, long? Packets, long? QueueDrops, long? UnjudgedDropped);

/// <summary>Everything one hostile-load run measured; <see cref="Report"/> prints it.</summary>
public sealed record HostileResult
{
    public required string Firewall { get; init; }
    public required string Load { get; init; }

    public FloodResult? Syn { get; init; }
    public FloodResult? Udp { get; init; }
    public FloodResult? ForbiddenTcpSent { get; init; }
    public FloodResult? ForbiddenUdpSent { get; init; }

    /// <summary>What reached the server during the run (its counting rules).</summary>
    public ServerCounts Arrived { get; init; } = new(0, 0, 0, 0);

    /// <summary>Packets received by the gateway's client-side veth and by the server's veth during the run.</summary>
    public long GatewayRxPackets { get; init; }
    public long ServerRxPackets { get; init; }

    public IReadOnlyList<ConversationFigures> Conversations { get; init; } = [];
    public ProbeFigures? Probe { get; init; }
    public IReadOnlyList<HostileSample> Samples { get; init; } = [];

    /// <summary>ctfw's counters at the end of the load (before SIGTERM); null for the kernel.</summary>
    public IReadOnlyDictionary<string, long>? FinalStats { get; init; }

    /// <summary>The daemon's RSS before the flood, and the highest sampled.</summary>
    public long? RssBeforeBytes { get; init; }
    public long? RssMaxBytes { get; init; }

    /// <summary>The daemon still ran at the end of the load (always true for the kernel).</summary>
    public bool DaemonAlive { get; init; } = true;

    /// <summary>How long the daemon took to exit after SIGTERM (null: it did not exit within the bound, or no daemon), and its exit code.</summary>
    public double? StopSeconds { get; init; }
    public int? ExitCode { get; init; }

    /// <summary>The daemon's stderr tail when something went wrong, or other notes.</summary>
    public string? Note { get; init; }

    public long ForbiddenPassed => Arrived.Forbidden;

    public int ConversationsSurvived => Conversations.Count(c => c.Survived);

    /// <summary>Every sample with both figures had entries ≤ max; false when one exceeded it.</summary>
    public bool TableWithinMax => Samples.All(s => s.TableEntries is not long e || s.TableMax is not long m || e <= m);

    /// <summary>The highest sampled table size, or null when none was read.</summary>
    public long? TableEntriesMax => Samples.Max(s => s.TableEntries);

    public long? Stat(string name) => FinalStats is not null && FinalStats.TryGetValue(name, out long v) ? v : null;

    public string Report()
    {
        var text = new StringBuilder();
        Line(text, $"firewall: {Firewall}");
        Line(text, $"load: {Load}");
        Line(text, $"SYN flood: {Flood(Syn)}; UDP overload: {Flood(Udp)}");
        Line(text, $"reached the server: {Arrived.Syn} flood SYNs, {Arrived.Udp} overload datagrams; veth rx: gateway client side {GatewayRxPackets}, server {ServerRxPackets}");
        Line(text, $"forbidden probe: sent {Flood(ForbiddenTcpSent)} TCP SYN + {Flood(ForbiddenUdpSent)} UDP; PASSED to the server: {ForbiddenPassed} ({Arrived.ForbiddenTcp} TCP, {Arrived.ForbiddenUdp} UDP)");
        Line(text, $"conversations: {ConversationsSurvived}/{Conversations.Count} survived");
        for (int i = 0; i < Conversations.Count; i++)
            Line(text, $"  {i + 1}: {Conversations[i].Describe()}");
        Line(text, $"new-connection probe: {Probe?.Describe() ?? "-"}");
        Line(text, $"table: max sampled {Num(TableEntriesMax)} of {Num(Samples.LastOrDefault(s => s.TableMax is not null)?.TableMax)}, within max at every sample: {(TableWithinMax ? "yes" : "NO")}");
        if (FinalStats is not null)
        {
            Line(text, $"ctfw: packets {Num(Stat("packets"))}, unjudged_dropped {Num(Stat("unjudged_dropped"))}, table.early_drops {Num(Stat("table.early_drops"))}, "
                + $"table.full_drops {Num(Stat("table.full_drops"))}, table.insert_failed {Num(Stat("table.insert_failed"))}, table.alloc_failures {Num(Stat("table.alloc_failures"))}, "
                + $"log.written {Num(Stat("log.written"))}, log.suppressed {Num(Stat("log.suppressed"))}, log.pending {Num(Stat("log.pending"))}, log.lost {Num(Stat("log.lost"))}, ab.compared {Num(Stat("ab.compared"))}, ab.disagreed {Num(Stat("ab.disagreed"))}");
            string invalid = string.Join(", ", FinalStats.Where(kv => kv.Key.StartsWith("invalid.", StringComparison.Ordinal) && kv.Value > 0).Select(kv => $"{kv.Key} {kv.Value}"));
            Line(text, $"  verdicts: accept {Num(Stat("verdict.accept"))}, drop {Num(Stat("verdict.drop"))}; {(invalid.Length == 0 ? "no INVALID" : invalid)}");
            foreach (KeyValuePair<string, long> kv in FinalStats.Where(kv => kv.Key.StartsWith("queue.", StringComparison.Ordinal)
                && (kv.Key.EndsWith(".queue_dropped", StringComparison.Ordinal) || kv.Key.EndsWith(".user_dropped", StringComparison.Ordinal)
                    || kv.Key.EndsWith(".packets", StringComparison.Ordinal) || kv.Key.EndsWith(".enobufs", StringComparison.Ordinal))))
            {
                Line(text, $"  {kv.Key} {kv.Value}");
            }
        }
        if (RssBeforeBytes is not null || RssMaxBytes is not null)
            Line(text, $"daemon RSS: before the flood {Mb(RssBeforeBytes)}, max sampled {Mb(RssMaxBytes)}");
        Line(text, $"daemon alive at the end: {(DaemonAlive ? "yes" : "NO")}; SIGTERM: {(StopSeconds is double stop ? $"exited {ExitCode} after {stop:F2} s" : ExitCode is null && FinalStats is null ? "-" : "did not exit in time")}");
        if (Note is not null)
            Line(text, $"note: {Note}");
        Line(text, "samples (s: entries/max, RSS MB, packets, queue drops, unjudged_dropped):");
        foreach (HostileSample s in Samples)
            Line(text, $"  {s.Seconds,6:F1}: {Num(s.TableEntries)}/{Num(s.TableMax)}, {Mb(s.RssBytes)}, {Num(s.Packets)}, {Num(s.QueueDrops)}, {Num(s.UnjudgedDropped)}");
        return text.ToString();
    }

    /// <summary>One line of the headline figures, for tables and logs.</summary>
    public string Summary() => string.Concat(
        $"{Firewall}: forbidden passed {ForbiddenPassed}, conversations {ConversationsSurvived}/{Conversations.Count}, "
        , $"probe {Probe?.Successes ?? 0}/{Probe?.Attempts ?? 0} ({Probe?.SuccessPercent ?? 0:F1} %), table max {Num(TableEntriesMax)}{(TableWithinMax ? "" : " OVER MAX")}, "
        , $"SYN flood {Flood(Syn)}, UDP {Flood(Udp)}, RSS {Mb(RssBeforeBytes)} → {Mb(RssMaxBytes)}");

    internal static string Flood(FloodResult? f) =>
        f is null ? "-" : string.Create(CultureInfo.InvariantCulture, $"{f.Sent} ({f.Pps / 1000:F0} kpps{(f.Errors > 0 ? $", {f.Errors} errors" : "")})");

    internal static string Num(long? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "-";

    internal static string Mb(long? bytes) => bytes is long b ? string.Create(CultureInfo.InvariantCulture, $"{b / 1048576.0:F0} MB") : "-";

    // The process runs with InvariantGlobalization: plain interpolation formats numbers invariantly.
    private static void Line(StringBuilder text, string line) => text.Append(line).Append('\n');
}
