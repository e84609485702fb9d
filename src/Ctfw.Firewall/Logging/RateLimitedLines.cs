namespace Ctfw.Firewall.Logging;

/// <summary>
/// Lines into a <see cref="LogQueue"/> through a token bucket shared by all workers (<c>burst</c>
/// lines, refilled at <c>perSecond</c> per second), like the kernel's <c>-m limit</c> on log floods.
/// Suppressed lines are counted and announced with the next line queued. Callers ask
/// <see cref="TryAcquire"/> first and build their line only when it says yes; the lock is taken only
/// by packets that produce a line (LOG hits, A/B disagreements, rescues), never on the common path,
/// and is never held across I/O: the queue takes the line or refuses it (counted there as lost),
/// and the daemon's log writer thread writes it out.
/// </summary>
public sealed class RateLimitedLines
{
    private readonly Lock _lock = new();
    private readonly LogQueue _queue;
    private readonly string _prefix;
    private readonly string _what;
    private readonly int _perSecond;
    private readonly int _burst;
    private double _tokens;
    private long _lastRefill;
    private long _suppressedSinceLast;

    /// <param name="prefix">Starts the suppression notice, e.g. "ctfw: ab: ".</param>
    /// <param name="what">Names the lines in the notice, e.g. "LOG lines".</param>
    public RateLimitedLines(LogQueue queue, string prefix, string what, int perSecond, int burst)
    {
        _queue = queue;
        _prefix = prefix;
        _what = what;
        _perSecond = perSecond;
        _burst = burst;
        _tokens = burst;
    }

    /// <summary>Lines the queue took.</summary>
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

    /// <summary>Queues a copy of one line (without its newline) for a token taken with <see cref="TryAcquire"/>.</summary>
    public void WriteLine(ReadOnlySpan<char> line)
    {
        lock (_lock)
        {
            AnnounceSuppressed();
            if (_queue.TryEnqueue(line))
                Written++;
        }
    }

    /// <summary>Queues one line by reference for a token taken with <see cref="TryAcquire"/>.</summary>
    public void WriteLine(string line)
    {
        lock (_lock)
        {
            AnnounceSuppressed();
            if (_queue.TryEnqueue(line))
                Written++;
        }
    }

    private void AnnounceSuppressed()
    {
        // A notice the full queue refused is tried again with the next line.
        if (_suppressedSinceLast > 0 && _queue.TryEnqueue($"{_prefix}{_suppressedSinceLast} {_what} suppressed (rate limit {_perSecond}/s)"))
            _suppressedSinceLast = 0;
    }
}
