using System.Globalization;

namespace Ctfw.Lab.Bench;

/// <summary>
/// The exit line of bench/nfq-c-loop/nfq_accept, e.g.
/// <c>packets=812345 batches=40211 avg_batch=20.20 bytes=987654321 truncated=0 recv_calls=40300 send_calls=40211</c>.
/// <see cref="RecvCalls"/> and <see cref="SendCalls"/> are null for a loop built before they were added.
/// </summary>
public sealed record CLoopExit(long Packets, long Batches, long Bytes, long Truncated, long? RecvCalls, long? SendCalls)
{
    public double AverageBatch => Batches > 0 ? (double)Packets / Batches : 0;

    /// <summary>Finds and parses the last line of <paramref name="stdout"/> that holds <c>packets=</c> and <c>batches=</c>.</summary>
    /// <exception cref="FormatException">No such line, or a field that is not a number.</exception>
    public static CLoopExit Parse(string stdout)
    {
        string? line = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .LastOrDefault(l => l.StartsWith("packets=", StringComparison.Ordinal) && l.Contains(" batches=", StringComparison.Ordinal));
        if (line is null)
            throw new FormatException($"no 'packets=N batches=M' exit line in the C loop's output: {Traffic.HttpLoadResult.Excerpt(stdout)}");
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string part in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
                fields[part[..eq]] = part[(eq + 1)..];
        }
        long Required(string name) => Optional(name) ?? throw new FormatException($"C loop exit line lacks {name}=: {line}");
        long? Optional(string name)
        {
            if (!fields.TryGetValue(name, out string? text))
                return null;
            return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long v)
                ? v
                : throw new FormatException($"C loop exit line: {name}={text} is not a count");
        }
        return new CLoopExit(Required("packets"), Required("batches"), Optional("bytes") ?? 0, Optional("truncated") ?? 0,
            Optional("recv_calls"), Optional("send_calls"));
    }
}
