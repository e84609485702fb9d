using Prometheus;

namespace Ctfw.Cli.Metrics;

/// <summary>
/// The Prometheus side: a prometheus-net registry of its own (none of the library's default
/// process/.NET collectors; ours come from the source) whose families are filled at collect time
/// from <see cref="IMetricsSource"/>. The daemon's counters are already aggregated, so a counter is
/// moved to the source's value (<c>IncTo</c>), never incremented: a scrape reads, nothing on the
/// packet path calls into this library.
/// </summary>
internal sealed class MetricsRegistry
{
    private readonly IMetricsSource _source;
    private readonly Dictionary<MetricFamily, Collector> _collectors = [];
    // Scrapes may overlap (the listener serves requests concurrently); only scrapes take this lock.
    private readonly Lock _collectLock = new();

    public MetricsRegistry(IMetricsSource source)
    {
        _source = source;
        Registry = Prometheus.Metrics.NewCustomRegistry();
        MetricFactory factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        foreach (MetricFamily family in MetricFamilies.All)
        {
            _collectors[family] = family.Kind == MetricKind.Counter
                ? factory.CreateCounter(family.Name, family.Help, family.Labels)
                : factory.CreateGauge(family.Name, family.Help, family.Labels);
        }
        Registry.AddBeforeCollectCallback(Update);
    }

    public CollectorRegistry Registry { get; }

    /// <summary>The exposition text (format 0.0.4), as a scrape would get it.</summary>
    public async Task<string> ExportAsync(CancellationToken cancel = default)
    {
        using var stream = new MemoryStream();
        await Registry.CollectAndExportAsTextAsync(stream, cancel).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private void Update()
    {
        lock (_collectLock)
        {
            foreach (KeyValuePair<string, long> stat in _source.Read())
            {
                if (!MetricFamilies.TryMap(stat.Key, out MetricTarget target))
                    continue;
                double value = stat.Value * target.Scale;
                switch (_collectors[target.Family])
                {
                    case Counter counter:
                        ((ICounter)(target.LabelValues.Length == 0 ? counter : counter.WithLabels(target.LabelValues))).IncTo(value);
                        break;
                    case Gauge gauge:
                        ((IGauge)(target.LabelValues.Length == 0 ? gauge : gauge.WithLabels(target.LabelValues))).Set(value);
                        break;
                }
            }
        }
    }
}
