namespace Ctfw.Cli.Metrics;

/// <summary>
/// Where a scrape's numbers come from: flat counters named as `ctfw stats` names them
/// (<c>state.ESTABLISHED</c>, <c>queue.0.enobufs</c>, <c>table.entries</c> …). Called on a scrape
/// thread, never on a packet worker; it may allocate, but it must not take a lock a worker takes
/// nor scan the flow table.
/// </summary>
internal interface IMetricsSource
{
    IReadOnlyList<KeyValuePair<string, long>> Read();
}
