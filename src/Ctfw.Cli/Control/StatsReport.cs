using System.Globalization;
using System.Text;

namespace Ctfw.Cli.Control;

/// <summary>
/// The human `ctfw stats` report. Known counter families get a layout (ctstates with shares, the
/// kernel×ctfw agreement matrix, one line per queue); every counter no layout claims is still
/// printed, grouped by the part of its name before the first dot, so counters a newer daemon adds
/// show up without a change here. Rates (`rate.Ws.NAME`, per second over the last W seconds, from
/// a daemon that samples them) are shown next to the totals they belong to; <see cref="FormatJson"/>
/// gives the same counters as one JSON object.
/// </summary>
internal static class StatsReport
{
    private const int LabelWidth = 26;
    private const int ValueWidth = 14;

    private static readonly string[] s_stateOrder = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DROPPED"];
    private static readonly string[] s_verdictOrder = ["accept", "drop", "reject", "confirm_drop"];
    private static readonly string[] s_abOrder = ["compared", "agreed", "disagreed", "unmarked", "dir_mismatch"];
    private static readonly string[] s_queueOrder = ["packets", "queue_dropped", "user_dropped", "enobufs", "verdict_errors", "lost_verdicts"];
    private static readonly string[] s_tableOrder = ["entries", "max", "early_drops", "alloc_failures", "full_drops", "slot_shortages", "insert_failed", "reclaims_on_demand"];

    public static string Format(IReadOnlyList<KeyValuePair<string, long>> stats)
    {
        var report = new Report(stats);
        report.Header();
        report.Shares("ctstate", "state.", s_stateOrder);
        report.Shares("verdicts", "verdict.", s_verdictOrder);
        report.InvalidReasons();
        report.AgreementBlock();
        report.Queues();
        report.Table();
        report.Rest();
        return report.ToString();
    }

    private const string RatePrefix = "rate.";
    private const int RateWidth = 11;

    /// <summary>
    /// Every counter as JSON: <c>{"counters": {NAME: VALUE, …}, "rates": {"1s": {NAME: PER_SECOND, …},
    /// "10s": {…}, "60s": {…}}}</c>, counters in the daemon's order, rates by window as the daemon
    /// sent them (<c>rates</c> is empty when the daemon sends none). Names are the daemon's, unchanged.
    /// </summary>
    public static string FormatJson(IReadOnlyList<KeyValuePair<string, long>> stats)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer, new System.Text.Json.JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartObject("counters");
            var windows = new List<string>();
            var rates = new Dictionary<string, List<KeyValuePair<string, long>>>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (KeyValuePair<string, long> stat in stats)
            {
                if (!seen.Add(stat.Key))
                    continue; // a JSON object has each name once: the first value wins
                if (TrySplitRate(stat.Key, out string window, out string name))
                {
                    if (!rates.TryGetValue(window, out List<KeyValuePair<string, long>>? list))
                    {
                        windows.Add(window);
                        rates[window] = list = [];
                    }
                    list.Add(new(name, stat.Value));
                }
                else
                {
                    json.WriteNumber(stat.Key, stat.Value);
                }
            }
            json.WriteEndObject();
            json.WriteStartObject("rates");
            foreach (string window in windows)
            {
                json.WriteStartObject(window);
                foreach (KeyValuePair<string, long> rate in rates[window])
                    json.WriteNumber(rate.Key, rate.Value);
                json.WriteEndObject();
            }
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n";
    }

    /// <summary>`rate.10s.packets` → ("10s", "packets").</summary>
    internal static bool TrySplitRate(string key, out string window, out string name)
    {
        window = name = "";
        if (!key.StartsWith(RatePrefix, StringComparison.Ordinal))
            return false;
        int dot = key.IndexOf('.', RatePrefix.Length);
        if (dot < 0 || dot == key.Length - 1 || !key.AsSpan(RatePrefix.Length, dot - RatePrefix.Length).EndsWith("s", StringComparison.Ordinal))
            return false;
        window = key[RatePrefix.Length..dot];
        name = key[(dot + 1)..];
        return true;
    }

    /// <summary>`2h 03m 04s`: the largest unit first, seconds rounded down.</summary>
    internal static string Duration(long ms)
    {
        long s = Math.Max(0, ms) / 1000;
        long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
        return d > 0 ? Invariant($"{d}d {h:00}h {m:00}m {sec:00}s")
            : h > 0 ? Invariant($"{h}h {m:00}m {sec:00}s")
            : m > 0 ? Invariant($"{m}m {sec:00}s")
            : Invariant($"{sec}s");
    }

    /// <summary>
    /// `part` of `whole` with two decimals, never rounded to 100% while something is missing nor
    /// to 0% while something is there (`99.99%`, `<0.01%`); empty when there is nothing to share.
    /// </summary>
    internal static string Percent(long part, long whole)
    {
        if (whole <= 0 || part <= 0)
            return "";
        string text = (100.0 * part / whole).ToString("F2", CultureInfo.InvariantCulture);
        if (part < whole && text == "100.00")
            text = "99.99";
        else if (text == "0.00")
            text = "<0.01";
        return text + "%";
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed class Report
    {
        private readonly IReadOnlyList<KeyValuePair<string, long>> _stats;
        private readonly Dictionary<string, long> _values = new(StringComparer.Ordinal);
        private readonly HashSet<string> _shown = new(StringComparer.Ordinal);
        private readonly StringBuilder _sb = new();
        // The rate windows the daemon sent ("1s", "10s", "60s"), in its order.
        private readonly List<string> _windows = [];

        public Report(IReadOnlyList<KeyValuePair<string, long>> stats)
        {
            _stats = stats;
            foreach (KeyValuePair<string, long> stat in stats)
            {
                _values[stat.Key] = stat.Value;
                if (TrySplitRate(stat.Key, out string window, out _) && !_windows.Contains(window))
                    _windows.Add(window);
            }
        }

        /// <summary>The rates of <paramref name="name"/>, one column per window (`12/s`), or empty when the daemon sent none.</summary>
        private string RateColumns(string name)
        {
            var sb = new StringBuilder();
            bool any = false;
            foreach (string window in _windows)
            {
                long? rate = Take(RatePrefix + window + "." + name);
                any |= rate.HasValue;
                sb.Append((rate is long r ? Number(r) + "/s" : "").PadLeft(RateWidth));
            }
            return any ? sb.ToString() : "";
        }

        /// <summary>A section title with the rate columns' headings when there are rates.</summary>
        private void RateSection(string title, int extraWidth)
        {
            if (_windows.Count == 0)
            {
                Section(title);
                return;
            }
            var heading = new StringBuilder(title.PadRight(LabelWidth + ValueWidth + extraWidth));
            foreach (string window in _windows)
                heading.Append(("last " + window).PadLeft(RateWidth));
            Section(heading.ToString());
        }

        public override string ToString() => _sb.ToString();

        public void Header()
        {
            long uptime = Take("uptime_ms") ?? -1;
            if (uptime >= 0)
                Row("uptime", Duration(uptime), "", indent: false);
            if (Take("packets") is long packets)
            {
                string average = uptime > 0 ? Invariant($"  {packets * 1000.0 / uptime:F1}/s") : "";
                var now = new List<string>();
                foreach (string window in _windows)
                {
                    if (Take(RatePrefix + window + ".packets") is long rate)
                        now.Add(Invariant($"{rate}/s"));
                }
                // "0.1/s since start; last 1s 12/s, 10s 10/s, 60s 9/s"
                string recent = now.Count == 0 ? ""
                    : (average.Length == 0 ? "  " : " since start; ") + "last " + string.Join(", ", now.Select((r, i) => $"{_windows[i]} {r}"));
                Row("packets", Number(packets), average + recent, indent: false);
            }
            // Never judged: the kernel dropped them at a full queue (or socket buffer); TCP resends them.
            if (Take("unjudged_dropped") is long unjudged)
                Row("unjudged", Number(unjudged), unjudged > 0 ? "  dropped at a full queue" : "", indent: false);
        }

        /// <summary>A section of counters under <paramref name="prefix"/>, known names first, each with its share of the section.</summary>
        public void Shares(string title, string prefix, string[] order)
        {
            List<string> names = Ordered(prefix, order);
            if (names.Count == 0)
                return;
            long total = 0;
            foreach (string name in names)
                total += _values[prefix + name];
            RateSection(title, 9);
            foreach (string name in names)
            {
                long value = Take(prefix + name)!.Value;
                string share = Percent(value, total);
                string rates = RateColumns(prefix + name);
                Row(name, Number(value), share.Length == 0 && rates.Length == 0 ? "" : "  " + share.PadLeft(7) + rates);
            }
        }

        public void InvalidReasons()
        {
            const string Prefix = "invalid.";
            List<string> names = Ordered(Prefix, []);
            if (names.Count == 0)
                return;
            // Most frequent first; the daemon's order breaks ties.
            var sorted = names.Select((n, i) => (Name: n, Value: _values[Prefix + n], Index: i))
                .OrderByDescending(x => x.Value).ThenBy(x => x.Index).ToList();
            Section("INVALID reasons");
            foreach (var (name, value, _) in sorted)
            {
                Take(Prefix + name);
                Row(name, Number(value), "");
            }
        }

        public void AgreementBlock()
        {
            const string Prefix = "ab.";
            var cells = new List<(string Kernel, string Ctfw, long Value)>();
            foreach (KeyValuePair<string, long> stat in _stats)
            {
                if (!stat.Key.StartsWith(Prefix, StringComparison.Ordinal) || _shown.Contains(stat.Key))
                    continue;
                string[] parts = stat.Key[Prefix.Length..].Split('.');
                if (parts.Length == 2 && parts[0].Length > 0 && parts[1].Length > 0)
                    cells.Add((parts[0], parts[1], _values[stat.Key]));
            }
            List<string> plain = Ordered(Prefix, s_abOrder);
            if (cells.Count == 0 && plain.Count == 0)
                return;
            foreach ((string k, string c, _) in cells)
                Take($"{Prefix}{k}.{c}");

            Section("A/B against kernel conntrack");
            long compared = _values.GetValueOrDefault(Prefix + "compared");
            foreach (string name in plain)
            {
                long value = Take(Prefix + name)!.Value;
                string share = name is "agreed" or "disagreed" or "dir_mismatch" ? Percent(value, compared) : "";
                Row(name, Number(value), share.Length == 0 ? "" : "  " + share.PadLeft(7));
            }
            if (compared > 0 && cells.Count > 0)
                Matrix(cells);
        }

        /// <summary>Rows: the kernel's verdict on a packet; columns: ctfw's.</summary>
        private void Matrix(List<(string Kernel, string Ctfw, long Value)> cells)
        {
            List<string> rows = StateAxis(cells.Select(c => c.Kernel));
            List<string> columns = StateAxis(cells.Select(c => c.Ctfw));
            var table = new Dictionary<(string, string), long>();
            foreach (var (kernel, ctfw, value) in cells)
                table[(kernel, ctfw)] = value;

            const string Corner = "kernel \\ ctfw";
            int labelWidth = Math.Max(Corner.Length, rows.Max(r => r.Length)) + 2;
            int[] widths = new int[columns.Count];
            for (int c = 0; c < columns.Count; c++)
            {
                widths[c] = columns[c].Length;
                foreach (string row in rows)
                    widths[c] = Math.Max(widths[c], Number(table.GetValueOrDefault((row, columns[c]))).Length);
            }
            _sb.Append("  ").Append(Corner.PadRight(labelWidth));
            for (int c = 0; c < columns.Count; c++)
                _sb.Append(c == 0 ? "" : "  ").Append(columns[c].PadLeft(widths[c]));
            _sb.Append('\n');
            foreach (string row in rows)
            {
                _sb.Append("  ").Append(row.PadRight(labelWidth));
                for (int c = 0; c < columns.Count; c++)
                    _sb.Append(c == 0 ? "" : "  ").Append(Number(table.GetValueOrDefault((row, columns[c]))).PadLeft(widths[c]));
                _sb.Append('\n');
            }
        }

        /// <summary>The ctstates in their usual order, then any other name in order of appearance.</summary>
        private static List<string> StateAxis(IEnumerable<string> names)
        {
            var seen = names.Distinct(StringComparer.Ordinal).ToList();
            var axis = s_stateOrder.Where(seen.Contains).ToList();
            axis.AddRange(seen.Where(n => !s_stateOrder.Contains(n)));
            return axis;
        }

        /// <summary>One line per queue: `queue.N.FIELD` counters, in queue-number order.</summary>
        public void Queues()
        {
            const string Prefix = "queue.";
            var queues = new List<string>();
            var fields = new Dictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (KeyValuePair<string, long> stat in _stats)
            {
                if (!stat.Key.StartsWith(Prefix, StringComparison.Ordinal) || _shown.Contains(stat.Key))
                    continue;
                int dot = stat.Key.IndexOf('.', Prefix.Length);
                if (dot < 0 || dot == Prefix.Length || dot == stat.Key.Length - 1)
                    continue;
                string queue = stat.Key[Prefix.Length..dot];
                if (!fields.TryGetValue(queue, out List<string>? list))
                {
                    queues.Add(queue);
                    fields[queue] = list = [];
                }
                string field = stat.Key[(dot + 1)..];
                if (!list.Contains(field))
                    list.Add(field);
            }
            if (queues.Count == 0)
                return;
            queues.Sort(static (a, b) =>
            {
                bool na = int.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out int ia);
                bool nb = int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out int ib);
                return na && nb ? ia.CompareTo(ib) : na != nb ? (na ? -1 : 1) : string.CompareOrdinal(a, b);
            });
            int width = queues.Max(q => q.Length);
            Section("queues");
            foreach (string queue in queues)
            {
                List<string> list = fields[queue];
                _sb.Append("  queue ").Append(queue.PadRight(width));
                foreach (string field in s_queueOrder.Where(list.Contains).Concat(list.Where(f => !s_queueOrder.Contains(f))))
                    _sb.Append("  ").Append(field).Append(' ').Append(Number(Take($"{Prefix}{queue}.{field}")!.Value));
                _sb.Append('\n');
            }
        }

        public void Table()
        {
            const string Prefix = "table.";
            List<string> names = Ordered(Prefix, s_tableOrder);
            if (names.Count == 0)
                return;
            Section("table");
            long? max = names.Contains("max") ? _values[Prefix + "max"] : null;
            foreach (string name in names)
            {
                long value = Take(Prefix + name)!.Value;
                if (name == "max" && names.Contains("entries"))
                    continue;
                string extra = name == "entries" && max is long m
                    ? Invariant($"  of {m}") + (value > 0 && m > 0 ? $" ({Percent(value, m)})" : "")
                    : "";
                Row(name, Number(value), extra);
            }
        }

        /// <summary>Whatever no layout above claimed, grouped by the name's first part.</summary>
        public void Rest()
        {
            var groups = new List<string>();
            var members = new Dictionary<string, List<KeyValuePair<string, long>>>(StringComparer.Ordinal);
            foreach (KeyValuePair<string, long> stat in _stats)
            {
                if (_shown.Contains(stat.Key))
                    continue;
                int dot = stat.Key.IndexOf('.', StringComparison.Ordinal);
                string group = dot <= 0 ? "other" : stat.Key[..dot];
                string label = dot <= 0 ? stat.Key : stat.Key[(dot + 1)..];
                if (!members.TryGetValue(group, out List<KeyValuePair<string, long>>? list))
                {
                    groups.Add(group);
                    members[group] = list = [];
                }
                if (Take(stat.Key) is long value)
                    list.Add(new(label, value));
            }
            foreach (string group in groups)
            {
                Section(group);
                foreach (KeyValuePair<string, long> stat in members[group])
                    Row(stat.Key, Number(stat.Value), "");
            }
        }

        /// <summary>Names under <paramref name="prefix"/> not shown yet (without the prefix): <paramref name="order"/> first, then as they came.</summary>
        private List<string> Ordered(string prefix, string[] order)
        {
            var present = new List<string>();
            foreach (KeyValuePair<string, long> stat in _stats)
            {
                if (stat.Key.Length > prefix.Length && stat.Key.StartsWith(prefix, StringComparison.Ordinal)
                    && !_shown.Contains(stat.Key) && !stat.Key.AsSpan(prefix.Length).Contains('.'))
                {
                    string name = stat.Key[prefix.Length..];
                    if (!present.Contains(name))
                        present.Add(name);
                }
            }
            var result = order.Where(present.Contains).ToList();
            result.AddRange(present.Where(n => !order.Contains(n)));
            return result;
        }

        /// <summary>Marks a counter shown; its value, or null when absent or already shown.</summary>
        private long? Take(string name)
        {
            if (!_values.TryGetValue(name, out long value) || !_shown.Add(name))
                return null;
            return value;
        }

        private void Section(string title)
        {
            if (_sb.Length > 0)
                _sb.Append('\n');
            _sb.Append(title).Append('\n');
        }

        private void Row(string label, string value, string extra, bool indent = true)
        {
            if (indent)
                _sb.Append("  ").Append(label.PadRight(LabelWidth - 2));
            else
                _sb.Append(label.PadRight(LabelWidth));
            _sb.Append(value.PadLeft(ValueWidth)).Append(extra).Append('\n');
        }

        private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
    }
}
