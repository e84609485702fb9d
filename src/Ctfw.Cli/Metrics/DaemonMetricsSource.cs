using Ctfw.Cli.Daemon;
using Ctfw.Firewall;

namespace Ctfw.Cli.Metrics;

/// <summary>
/// The running daemon's counters for a scrape: <see cref="DaemonControl.Counters"/>, the same list
/// `ctfw stats` answers with, but with the zero INVALID reasons and A/B cells included and without
/// the table scan (no half-closed/stalled counts). It reads the per-worker counters (each worker's own
/// object, plain 64-bit reads; a set may be a few packets apart, see <see cref="FirewallCounters"/>),
/// the queue sockets' statistics, the engine's padded counters, /proc, and the GC. It takes no lock a
/// worker takes (nor the control target's lock), and the packet path calls nothing here: a scrape
/// costs the workers only the cache misses of those reads.
/// </summary>
internal sealed class DaemonMetricsSource : IMetricsSource
{
    private readonly DaemonControl _control;

    public DaemonMetricsSource(DaemonControl control) => _control = control;

    public IReadOnlyList<KeyValuePair<string, long>> Read() => _control.Counters(withZeros: true, scanTable: false);
}
