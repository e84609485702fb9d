using System.Globalization;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// Rates over the last seconds of a few monotonic counters: a ring of the last
/// <see cref="Capacity"/> samples (time and values), taken about once a second off the packet path
/// (a timer), so `ctfw stats` can say what is happening now next to the totals since start. A
/// rate over W seconds compares the newest sample with the newest one at least W seconds older (or
/// the oldest there is, in the first W seconds), scaled to per second by the time between them.
/// Not thread-safe on its own: the owner serialises <see cref="Sample"/> and <see cref="Rates"/>.
/// </summary>
internal sealed class CounterRates
{
    /// <summary>Samples kept: a minute of history at one a second, and the one before it.</summary>
    public const int Capacity = 61;

    /// <summary>The windows `stats` reports, seconds.</summary>
    public static readonly int[] Windows = [1, 10, 60];

    private readonly string[] _names;
    private readonly long[] _times = new long[Capacity];
    private readonly long[][] _values;
    private int _count;
    private int _newest = -1;

    public CounterRates(IReadOnlyList<string> names)
    {
        _names = [.. names];
        _values = new long[Capacity][];
        for (int i = 0; i < Capacity; i++)
            _values[i] = new long[_names.Length];
    }

    public IReadOnlyList<string> Names => _names;

    /// <summary>Records the counters (in <see cref="Names"/> order) as they are at <paramref name="nowMs"/>.</summary>
    public void Sample(long nowMs, ReadOnlySpan<long> values)
    {
        if (values.Length != _names.Length)
            throw new ArgumentException($"expected {_names.Length} values, got {values.Length}", nameof(values));
        if (_newest >= 0 && nowMs <= _times[_newest])
            return; // the clock did not move: a second sample at the same time says nothing new
        _newest = (_newest + 1) % Capacity;
        _times[_newest] = nowMs;
        values.CopyTo(_values[_newest]);
        _count = Math.Min(_count + 1, Capacity);
    }

    /// <summary>
    /// Counter <paramref name="index"/>'s rate per second over the last <paramref name="seconds"/>,
    /// rounded; false before there are two samples. A counter that went down (zeroed) reads 0.
    /// </summary>
    public bool TryRate(int index, int seconds, out long perSecond)
    {
        perSecond = 0;
        if (_count < 2)
            return false;
        long newestTime = _times[_newest];
        int older = -1;
        for (int back = 1; back < _count; back++)
        {
            int i = (_newest - back + Capacity) % Capacity;
            older = i;
            if (newestTime - _times[i] >= seconds * 1000L)
                break;
        }
        long span = newestTime - _times[older];
        long delta = _values[_newest][index] - _values[older][index];
        perSecond = delta <= 0 ? 0 : (long)Math.Round(delta * 1000.0 / span, MidpointRounding.AwayFromZero);
        return true;
    }

    /// <summary>`rate.Ws.NAME` counters, per window then per name; empty before there are two samples.</summary>
    public void Rates(List<KeyValuePair<string, long>> into)
    {
        foreach (int window in Windows)
        {
            string prefix = string.Create(CultureInfo.InvariantCulture, $"rate.{window}s.");
            for (int i = 0; i < _names.Length; i++)
            {
                if (TryRate(i, window, out long rate))
                    into.Add(new(prefix + _names[i], rate));
            }
        }
    }
}
