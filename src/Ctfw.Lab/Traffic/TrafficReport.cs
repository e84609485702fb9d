using System.Globalization;
using System.Text;

namespace Ctfw.Lab.Traffic;

/// <summary>
/// What every workload of one <see cref="TrafficMix"/> run achieved. A workload that was not asked
/// for, or whose program failed, has a null result; a failure also adds a line to <see cref="Problems"/>.
/// </summary>
public sealed record TrafficReport(
    Workloads Requested,
    TimeSpan Elapsed,
    HttpLoadResult? HttpV4,
    HttpLoadResult? HttpV6,
    TcpBulkResult? TcpBulk,
    UdpStreamResult? Udp,
    PingResult? PingV4,
    PingResult? PingV6,
    IReadOnlyList<string> Problems)
{
    public bool Succeeded => Problems.Count == 0;

    /// <summary>
    /// One line, e.g. <c>http4 10863 req 0 err p50 0.68 ms p99 1.72 ms | tcp4 12.95 Gbit/s 2863 retr |
    /// udp6 7810 sent 0 lost | ping4 15/15 p50 0.08 ms p99 0.18 ms</c>, then the problem count.
    /// </summary>
    public string Summary
    {
        get
        {
            var parts = new List<string>();
            foreach (Workloads w in TrafficOptions.Each)
            {
                if ((Requested & w) == 0)
                    continue;
                string name = TrafficOptions.NameOf(w);
                string? text = w switch
                {
                    Workloads.HttpV4 => Http(HttpV4),
                    Workloads.HttpV6 => Http(HttpV6),
                    Workloads.TcpBulkV4 => TcpBulk is { } t
                        ? Invariant($"{t.ReceivedGbitPerSecond:0.00} Gbit/s {t.Retransmits} retr")
                        : null,
                    Workloads.UdpV6 => Udp is { } u
                        ? Invariant($"{u.PacketsSent} sent {u.PacketsLost} lost ({u.LossPercent:0.##}%)")
                        : null,
                    Workloads.PingV4 => Ping(PingV4),
                    Workloads.PingV6 => Ping(PingV6),
                    _ => null,
                };
                parts.Add($"{name} {text ?? "failed"}");
            }
            var sb = new StringBuilder(string.Join(" | ", parts));
            sb.Append(Invariant($" ({Elapsed.TotalSeconds:0.0} s)"));
            if (Problems.Count > 0)
                sb.Append(Invariant($"; {Problems.Count} problem(s): {Problems[0]}"));
            return sb.ToString();
        }
    }

    public override string ToString() => Summary;

    private static string? Http(HttpLoadResult? r) => r is null
        ? null
        : Invariant($"{r.Requests} req {r.Errors} err") + Latency(r.LatencyP50, r.LatencyP99);

    private static string? Ping(PingResult? r) => r is null
        ? null
        : Invariant($"{r.Received}/{r.Transmitted}") + Latency(r.RttP50, r.RttP99);

    private static string Latency(TimeSpan? p50, TimeSpan? p99) =>
        (p50 is { } a ? Invariant($" p50 {a.TotalMilliseconds:0.00} ms") : "")
        + (p99 is { } b ? Invariant($" p99 {b.TotalMilliseconds:0.00} ms") : "");

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
