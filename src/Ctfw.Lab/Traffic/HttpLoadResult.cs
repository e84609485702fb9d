using System.Globalization;
using System.Text.RegularExpressions;

namespace Ctfw.Lab.Traffic;

/// <summary>
/// What one wrk run achieved. <see cref="SocketErrors"/> counts connect, read and write errors and
/// timeouts; <see cref="Non2xx"/> counts responses wrk calls "Non-2xx or 3xx". Latency percentiles
/// are present when wrk ran with <c>--latency</c>.
/// </summary>
public sealed partial record HttpLoadResult(
    long Requests,
    TimeSpan Elapsed,
    long ConnectErrors,
    long ReadErrors,
    long WriteErrors,
    long Timeouts,
    long Non2xx,
    TimeSpan? LatencyP50,
    TimeSpan? LatencyP99)
{
    public long SocketErrors => ConnectErrors + ReadErrors + WriteErrors + Timeouts;
    public long Errors => SocketErrors + Non2xx;
    public double RequestsPerSecond => Elapsed > TimeSpan.Zero ? Requests / Elapsed.TotalSeconds : 0;

    /// <summary>
    /// Parses wrk 4's report, e.g.
    /// <code>
    ///   Latency Distribution
    ///      50%  681.00us
    ///      99%    1.72ms
    ///   10863 requests in 2.10s, 1.33GB read
    ///   Socket errors: connect 0, read 308, write 592, timeout 0
    ///   Non-2xx or 3xx responses: 13617
    /// </code>
    /// The two error lines appear only when non-zero.
    /// </summary>
    /// <exception cref="FormatException">No "N requests in T" line: wrk did not get to its report.</exception>
    public static HttpLoadResult Parse(string output)
    {
        Match requests = RequestsLine().Match(output);
        if (!requests.Success)
            throw new FormatException($"no 'N requests in T' line in wrk output: {Excerpt(output)}");

        long connect = 0, read = 0, write = 0, timeout = 0, non2xx = 0;
        Match errors = SocketErrorsLine().Match(output);
        if (errors.Success)
        {
            connect = Long(errors.Groups[1].Value);
            read = Long(errors.Groups[2].Value);
            write = Long(errors.Groups[3].Value);
            timeout = Long(errors.Groups[4].Value);
        }
        Match status = Non2xxLine().Match(output);
        if (status.Success)
            non2xx = Long(status.Groups[1].Value);

        TimeSpan? p50 = null, p99 = null;
        foreach (Match m in PercentileLine().Matches(output))
        {
            TimeSpan t = Time(m.Groups[2].Value, m.Groups[3].Value);
            if (m.Groups[1].Value == "50")
                p50 = t;
            else if (m.Groups[1].Value == "99")
                p99 = t;
        }

        return new HttpLoadResult(Long(requests.Groups[1].Value), Time(requests.Groups[2].Value, requests.Groups[3].Value),
            connect, read, write, timeout, non2xx, p50, p99);
    }

    /// <summary>wrk's time format: a decimal number and one of us, ms, s, m, h.</summary>
    internal static TimeSpan Time(string number, string unit)
    {
        double v = double.Parse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
        double micros = unit switch
        {
            "us" => v,
            "ms" => v * 1e3,
            "s" => v * 1e6,
            "m" => v * 60e6,
            "h" => v * 3600e6,
            _ => throw new FormatException($"unknown wrk time unit '{unit}'"),
        };
        return TimeSpan.FromTicks((long)Math.Round(micros * TimeSpan.TicksPerMicrosecond));
    }

    private static long Long(string s) => long.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture);

    internal static string Excerpt(string output)
    {
        string t = output.Trim();
        return t.Length == 0 ? "(empty)" : t.Length <= 300 ? t : t[..300] + "…";
    }

    [GeneratedRegex(@"^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h)\b", RegexOptions.Multiline)]
    private static partial Regex RequestsLine();

    [GeneratedRegex(@"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")]
    private static partial Regex SocketErrorsLine();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (\d+)")]
    private static partial Regex Non2xxLine();

    [GeneratedRegex(@"^\s*(50|75|90|99)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$", RegexOptions.Multiline)]
    private static partial Regex PercentileLine();
}
