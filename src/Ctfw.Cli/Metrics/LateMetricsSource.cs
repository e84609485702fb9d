namespace Ctfw.Cli.Metrics;

/// <summary>
/// A source that exists before what it reads: the metrics port is bound before the workers are
/// made, and a scrape in between gets no samples (only HELP/TYPE and zeros).
/// </summary>
internal sealed class LateMetricsSource : IMetricsSource
{
    private IMetricsSource? _inner;

    public IMetricsSource? Inner
    {
        get => Volatile.Read(ref _inner);
        set => Volatile.Write(ref _inner, value); // publishes a fully built source to the scrape threads
    }

    public IReadOnlyList<KeyValuePair<string, long>> Read() => Inner?.Read() ?? [];
}
