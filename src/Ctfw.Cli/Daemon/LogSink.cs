using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// Writes LOG lines to stderr, rate limited like the kernel's <c>-m limit</c> default for log
/// floods: a token bucket of <see cref="Burst"/> lines refilled at <see cref="PerSecond"/> per
/// second, shared by all workers. Suppressed lines are counted and reported with the next line
/// that passes. Only packets that hit a LOG rule come here, so the lock is off the common path.
/// </summary>
internal sealed class LogSink
{
    public const int PerSecond = 20;
    public const int Burst = 100;

    private readonly Lock _lock = new();
    private readonly TextWriter _writer;
    private readonly char[] _line = new char[LogFormatter.MaxLineLength + 1];
    private double _tokens = Burst;
    private long _lastRefill;
    private long _suppressedSinceLast;

    public LogSink(TextWriter writer)
    {
        _writer = writer;
    }

    public long Written { get; private set; }

    public long Suppressed { get; private set; }

    public void Write(in PacketFacts facts, LogOptions options, long now)
    {
        lock (_lock)
        {
            _tokens = Math.Min(Burst, _tokens + (now - _lastRefill) * (PerSecond / 1000.0));
            _lastRefill = now;
            if (_tokens < 1)
            {
                Suppressed++;
                _suppressedSinceLast++;
                return;
            }
            _tokens -= 1;
            if (_suppressedSinceLast > 0)
            {
                _writer.WriteLine($"ctfw: {_suppressedSinceLast} LOG lines suppressed (rate limit {PerSecond}/s)");
                _suppressedSinceLast = 0;
            }
            int length = LogFormatter.Format(_line, facts, options);
            _line[length] = '\n';
            _writer.Write(_line.AsSpan(0, length + 1));
            Written++;
        }
    }
}
