namespace Ctfw.Firewall.Logging;

/// <summary>
/// Lines to stderr through a token bucket shared by all workers (<c>burst</c> lines, refilled at
/// <c>perSecond</c> per second), like the kernel's <c>-m limit</c> on log floods. Suppressed lines
/// are counted and announced with the next line written. Callers ask <see cref="TryAcquire"/> first
/// and build their line only when it says yes; the lock is taken only by packets that produce a
/// line (LOG hits, A/B disagreements, rescues), never on the common path.
/// </summary>
public sealed class RateLimitedLines
{
    private readonly Lock _lock = new();
    private readonly TextWriter _writer;
    private readonly string _prefix;
    private readonly string _what;
    private readonly int _perSecond;
    private readonly int _burst;
    private double _tokens;
    private long _lastRefill;
    private long _suppressedSinceLast;

    /// <param name="prefix">Starts the suppression notice, e.g. "ctfw: ab: ".</param>
    /// <param name="what">Names the lines in the notice, e.g. "LOG lines".</param>
    public RateLimitedLines(TextWriter writer, string prefix, string what, int perSecond, int burst)
    {
        _writer = writer;
        _prefix = prefix;
        _what = what;
        _perSecond = perSecond;
        _burst = burst;
        _tokens = burst;
    }

    public long Written { get; private set; }

    public long Suppressed { get; private set; }

    /// <summary>Takes a token for one line at <paramref name="now"/> (ms); false (and counted) when none is left.</summary>
    public bool TryAcquire(long now)
    {
        lock (_lock)
        {
            _tokens = Math.Min(_burst, _tokens + (now - _lastRefill) * (_perSecond / 1000.0));
            _lastRefill = now;
            if (_tokens < 1)
            {
                Suppressed++;
                _suppressedSinceLast++;
                return false;
            }
            _tokens -= 1;
            return true;
        }
    }

    /// <summary>Writes one line (a newline is added) for a token taken with <see cref="TryAcquire"/>.</summary>
    public void WriteLine(ReadOnlySpan<char> line)
    {
        lock (_lock)
        {
            if (_suppressedSinceLast > 0)
            {
                _writer.WriteLine($"{_prefix}{_suppressedSinceLast} {_what} suppressed (rate limit {_perSecond}/s)");
                _suppressedSinceLast = 0;
            }
            _writer.Write(line);
            _writer.Write('\n');
            Written++;
        }
    }
}
