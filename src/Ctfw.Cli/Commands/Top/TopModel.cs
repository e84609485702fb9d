using System.Globalization;

namespace Ctfw.Cli.Commands.Top;

/// <summary>One row: the flow and how long `ctfw top` has seen it.</summary>
internal sealed record TopRow(TopFlow Flow, long AgeSeconds);

/// <summary>The header: totals from `stats`, rates from the difference to the previous poll (null on the first).</summary>
internal sealed record TopHeader(
    DateTime Time,
    int Shown,
    long? Entries,
    long? Max,
    double? PacketsPerSecond,
    double? AcceptedPerSecond,
    double? DroppedPerSecond,
    long? EarlyDrops,
    TopSort Sort,
    bool Descending,
    bool Accounting,
    string? Filter);

/// <summary>What one refresh shows.</summary>
internal sealed record TopFrame(TopHeader Header, IReadOnlyList<TopRow> Rows);

/// <summary>
/// `ctfw top` without the terminal: turns each poll's `list` and `stats` answers into a sorted
/// frame, keeps the sort order the keys change, and remembers when each flow was first seen: "age"
/// is the entry's own age when the daemon gives it (JSON's <c>age_ms</c>), else how long this `top`
/// has seen the flow (a daemon whose listing carries no creation time).
/// </summary>
internal sealed class TopModel
{
    private Dictionary<string, long> _firstSeenMs = new(StringComparer.Ordinal);
    private (long Ms, long Packets, long Accepted, long Dropped)? _previous;

    public TopModel(TopSort sort = TopSort.Bytes, bool reverse = false, string? filter = null)
    {
        Sort = sort;
        Reverse = reverse;
        Filter = filter;
    }

    public TopSort Sort { get; private set; }

    /// <summary>Against <see cref="TopSorts.DescendingByDefault"/>.</summary>
    public bool Reverse { get; private set; }

    public string? Filter { get; }

    public bool Descending => Sort.DescendingByDefault() != Reverse;

    /// <summary>A key press: <c>s</c> next sort column (back to its natural direction), <c>r</c> reverse,
    /// <c>b</c>/<c>p</c>/<c>a</c>/<c>t</c> sort by bytes/packets/age/ttl. False for keys that mean nothing here.</summary>
    public bool OnKey(char key)
    {
        switch (char.ToLowerInvariant(key))
        {
            case 's':
                Sort = Sort.Next();
                Reverse = false;
                return true;
            case 'r':
                Reverse = !Reverse;
                return true;
            case 'b':
                return SortBy(TopSort.Bytes);
            case 'p':
                return SortBy(TopSort.Packets);
            case 'a':
                return SortBy(TopSort.Age);
            case 't':
                return SortBy(TopSort.Ttl);
            default:
                return false;
        }
    }

    private bool SortBy(TopSort sort)
    {
        Sort = sort;
        Reverse = false;
        return true;
    }

    /// <summary>One poll: the body of `list` (listing lines), the `stats` counters (may be empty), the client's clock in ms.</summary>
    public TopFrame Update(string listing, IReadOnlyList<KeyValuePair<string, long>> stats, long nowMs, DateTime time)
    {
        List<TopRow> rows = [];
        var seen = new Dictionary<string, long>(StringComparer.Ordinal);
        bool accounting = false;
        foreach (string line in listing.Split('\n'))
        {
            if (!TopFlow.TryParse(line, out TopFlow? flow))
                continue;
            accounting |= flow!.Packets is not null;
            long first = _firstSeenMs.TryGetValue(flow.Key, out long f) ? f : nowMs;
            seen[flow.Key] = first;
            rows.Add(new TopRow(flow, flow.AgeSeconds ?? Math.Max(0, (nowMs - first) / 1000)));
        }
        _firstSeenMs = seen; // flows gone from the table are forgotten
        rows.Sort(Compare);

        long? Stat(string name)
        {
            foreach (KeyValuePair<string, long> s in stats)
            {
                if (s.Key == name)
                    return s.Value;
            }
            return null;
        }
        long? packets = Stat("packets"), accepted = Stat("verdict.accept"), dropped = Stat("verdict.drop");
        double? pps = null, aps = null, dps = null;
        if (packets is { } p && accepted is { } a && dropped is { } d)
        {
            if (_previous is { } prev && nowMs > prev.Ms)
            {
                double seconds = (nowMs - prev.Ms) / 1000.0;
                pps = Math.Max(0, p - prev.Packets) / seconds;
                aps = Math.Max(0, a - prev.Accepted) / seconds;
                dps = Math.Max(0, d - prev.Dropped) / seconds;
            }
            _previous = (nowMs, p, a, d);
        }
        var header = new TopHeader(time, rows.Count, Stat("table.entries"), Stat("table.max"), pps, aps, dps,
            Stat("table.early_drops"), Sort, Descending, accounting, Filter);
        return new TopFrame(header, rows);
    }

    private int Compare(TopRow x, TopRow y)
    {
        int c = Sort switch
        {
            TopSort.Bytes => Nullable.Compare(x.Flow.Bytes, y.Flow.Bytes),
            TopSort.Packets => Nullable.Compare(x.Flow.Packets, y.Flow.Packets),
            TopSort.Age => x.AgeSeconds.CompareTo(y.AgeSeconds),
            TopSort.Ttl => x.Flow.TtlSeconds.CompareTo(y.Flow.TtlSeconds),
            TopSort.State => string.CompareOrdinal(x.Flow.State, y.Flow.State),
            TopSort.Protocol => string.CompareOrdinal(x.Flow.Protocol, y.Flow.Protocol),
            TopSort.Source => CompareAddress(x.Flow.Source, y.Flow.Source),
            _ => CompareAddress(x.Flow.Destination, y.Flow.Destination),
        };
        if (Descending)
            c = -c;
        // Ties in a stable, readable order whatever the sort: by the original tuple.
        return c != 0 ? c : string.CompareOrdinal(x.Flow.Key, y.Flow.Key);
    }

    private static int CompareAddress(string x, string y)
    {
        if (System.Net.IPAddress.TryParse(x, out var a) && System.Net.IPAddress.TryParse(y, out var b))
        {
            int family = a.AddressFamily.CompareTo(b.AddressFamily);
            if (family != 0)
                return family;
            return a.GetAddressBytes().AsSpan().SequenceCompareTo(b.GetAddressBytes());
        }
        return string.CompareOrdinal(x, y);
    }

    /// <summary>Numbers as the columns show them: exact below 100 000, then k/M/G (powers of 1000) with one decimal.</summary>
    public static string Human(long? value)
    {
        if (value is not { } v)
            return "-";
        if (v < 100_000)
            return v.ToString(CultureInfo.InvariantCulture);
        ReadOnlySpan<string> units = ["k", "M", "G", "T", "P"];
        double d = v;
        int u = -1;
        while (d >= 1000 && u < units.Length - 1)
        {
            d /= 1000;
            u++;
        }
        return d.ToString("0.0", CultureInfo.InvariantCulture) + units[u];
    }

    /// <summary>Seconds as <c>42s</c>, <c>3m07s</c>, <c>2h05m</c>, <c>5d03h</c>.</summary>
    public static string Duration(long seconds) => seconds switch
    {
        < 60 => string.Create(CultureInfo.InvariantCulture, $"{seconds}s"),
        < 3600 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 60}m{seconds % 60:00}s"),
        < 86400 => string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600}h{seconds / 60 % 60:00}m"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{seconds / 86400}d{seconds / 3600 % 24:00}h"),
    };
}
