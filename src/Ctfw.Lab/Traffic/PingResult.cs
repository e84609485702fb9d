using System.Globalization;
using System.Text.RegularExpressions;

namespace Ctfw.Lab.Traffic;

/// <summary>
/// What one iputils ping run achieved. Percentiles come from the per-reply <c>time=</c> lines
/// (duplicates excluded); min/avg/max from the closing rtt line, absent when nothing came back.
/// </summary>
public sealed partial record PingResult(
    int Transmitted,
    int Received,
    int Duplicates,
    int Errors,
    TimeSpan? RttMin,
    TimeSpan? RttAvg,
    TimeSpan? RttMax,
    TimeSpan? RttP50,
    TimeSpan? RttP99)
{
    public int Lost => Math.Max(0, Transmitted - Received);

    /// <summary>
    /// Parses iputils ping output, e.g.
    /// <code>
    /// 64 bytes from 10.99.2.2: icmp_seq=1 ttl=63 time=0.179 ms
    /// --- 10.99.2.2 ping statistics ---
    /// 10 packets transmitted, 10 received, 0% packet loss, time 1834ms
    /// rtt min/avg/max/mdev = 0.071/0.087/0.179/0.030 ms
    /// </code>
    /// (with "+N duplicates" and "+N errors" inserted after "received" when there are any).
    /// </summary>
    /// <exception cref="FormatException">No statistics line: ping was killed before its summary.</exception>
    public static PingResult Parse(string output)
    {
        Match stats = StatisticsLine().Match(output);
        if (!stats.Success)
            throw new FormatException($"no 'N packets transmitted, M received' line in ping output: {HttpLoadResult.Excerpt(output)}");
        int transmitted = Int(stats.Groups[1].Value);
        int received = Int(stats.Groups[2].Value);
        Match dup = DuplicatesField().Match(stats.Value);
        Match err = ErrorsField().Match(stats.Value);

        TimeSpan? min = null, avg = null, max = null;
        Match rtt = RttLine().Match(output);
        if (rtt.Success)
        {
            min = Ms(rtt.Groups[1].Value);
            avg = Ms(rtt.Groups[2].Value);
            max = Ms(rtt.Groups[3].Value);
        }

        List<TimeSpan> times = [];
        foreach (Match m in ReplyLine().Matches(output))
        {
            if (!m.Value.Contains("(DUP!)", StringComparison.Ordinal))
                times.Add(Ms(m.Groups[1].Value));
        }
        times.Sort();

        return new PingResult(transmitted, received,
            dup.Success ? Int(dup.Groups[1].Value) : 0,
            err.Success ? Int(err.Groups[1].Value) : 0,
            min, avg, max, Percentile(times, 0.50), Percentile(times, 0.99));
    }

    /// <summary>Nearest-rank percentile of sorted samples, null for none.</summary>
    public static TimeSpan? Percentile(IReadOnlyList<TimeSpan> sorted, double p)
    {
        if (sorted.Count == 0)
            return null;
        int rank = (int)Math.Ceiling(p * sorted.Count);
        return sorted[Math.Clamp(rank, 1, sorted.Count) - 1];
    }

    private static int Int(string s) => int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture);

    private static TimeSpan Ms(string s) =>
        TimeSpan.FromTicks((long)Math.Round(double.Parse(s, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture) * TimeSpan.TicksPerMillisecond));

    [GeneratedRegex(@"^(\d+) packets transmitted, (\d+) received.*$", RegexOptions.Multiline)]
    private static partial Regex StatisticsLine();

    [GeneratedRegex(@"\+(\d+) duplicates")]
    private static partial Regex DuplicatesField();

    [GeneratedRegex(@"\+(\d+) errors")]
    private static partial Regex ErrorsField();

    [GeneratedRegex(@"min/avg/max(?:/mdev)? = (\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)")]
    private static partial Regex RttLine();

    [GeneratedRegex(@"^\d+ bytes from .*\btime=(\d+(?:\.\d+)?) ms.*$", RegexOptions.Multiline)]
    private static partial Regex ReplyLine();
}
