using Ctfw.Rules;

namespace Ctfw.Firewall.Logging;

/// <summary>
/// LOG lines, rate limited like the kernel's <c>-m limit</c> default for log floods
/// (<see cref="Burst"/> lines, refilled at <see cref="PerSecond"/> per second, shared by all
/// workers), into the <see cref="LogQueue"/> that the daemon's log writer thread empties to
/// stderr. Only packets that hit a LOG rule come here; the line is formatted on the stack and copied
/// into the queue's own memory, so a LOG hit never waits for the output and allocates nothing (but
/// the suppression notice that follows a rate-limited spell).
/// </summary>
public sealed class LogSink
{
    public const int PerSecond = 20;
    public const int Burst = 100;

    private readonly RateLimitedLines _lines;

    public LogSink(LogQueue queue)
    {
        _lines = new RateLimitedLines(queue, "ctfw: ", "LOG lines", PerSecond, Burst);
    }

    public long Written => _lines.Written;

    public long Suppressed => _lines.Suppressed;

    public void Write(in PacketFacts facts, LogOptions options, long now)
    {
        if (!_lines.TryAcquire(now))
            return;
        Span<char> line = stackalloc char[LogFormatter.MaxLineLength];
        int length = LogFormatter.Format(line, facts, options);
        _lines.WriteLine(line[..length]);
    }
}
