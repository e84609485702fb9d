using System.Globalization;
using System.Text;

namespace Ctfw.Cli.Commands.Top;

/// <summary>
/// A frame as plain text (`ctfw top --once`, or any output that is not a terminal): a header line,
/// a column line, one line per flow, columns padded with spaces. Exact numbers, so scripts can read them.
/// </summary>
internal static class TopText
{
    public static readonly string[] Columns = ["PROTO", "STATE", "SOURCE", "SPORT", "DESTINATION", "DPORT", "TTL", "AGE", "PACKETS", "BYTES", "FLAGS"];

    /// <summary>Which columns are numbers (right-aligned).</summary>
    public static bool IsNumeric(int column) => column is 6 or 7 or 8 or 9;

    public static string HeaderLine(TopHeader h)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"ctfw top  {h.Time:HH:mm:ss}  entries {Value(h.Entries)}/{Value(h.Max)}");
        if (h.Entries is { } entries && h.Shown != entries)
            sb.Append(CultureInfo.InvariantCulture, $" (shown {h.Shown})");
        if (h.PacketsPerSecond is { } pps)
            sb.Append(CultureInfo.InvariantCulture, $"  packets {pps:0.#}/s (accept {h.AcceptedPerSecond:0.#}/s, drop {h.DroppedPerSecond:0.#}/s)");
        if (h.EarlyDrops is > 0)
            sb.Append(CultureInfo.InvariantCulture, $"  early drops {h.EarlyDrops}");
        sb.Append(CultureInfo.InvariantCulture, $"  sort {h.Sort.Name()} {(h.Descending ? "desc" : "asc")}");
        if (!string.IsNullOrEmpty(h.Filter))
            sb.Append(CultureInfo.InvariantCulture, $"  filter {h.Filter}");
        if (!h.Accounting && h.Shown > 0)
            sb.Append("  (no packets/bytes: nf_conntrack_acct is off)");
        return sb.ToString();
    }

    /// <summary>The cells of a row, in <see cref="Columns"/> order; <paramref name="human"/> abbreviates packets and bytes.</summary>
    public static string[] Cells(TopRow row, bool human)
    {
        TopFlow f = row.Flow;
        string flags = (f.Assured ? "ASSURED" : "") + (f.Unreplied ? (f.Assured ? "," : "") + "UNREPLIED" : "");
        return
        [
            f.Protocol,
            f.State.Length == 0 ? "-" : f.State,
            f.Source,
            f.SourcePort.Length == 0 ? "-" : f.SourcePort,
            f.Destination,
            f.DestinationPort.Length == 0 ? "-" : f.DestinationPort,
            human ? TopModel.Duration(f.TtlSeconds) : f.TtlSeconds.ToString(CultureInfo.InvariantCulture),
            human ? TopModel.Duration(row.AgeSeconds) : row.AgeSeconds.ToString(CultureInfo.InvariantCulture),
            human ? TopModel.Human(f.Packets) : Value(f.Packets),
            human ? TopModel.Human(f.Bytes) : Value(f.Bytes),
            flags.Length == 0 ? "-" : flags,
        ];
    }

    /// <summary>The whole frame, at most <paramref name="maxRows"/> flows (all when null).</summary>
    public static string Format(TopFrame frame, int? maxRows = null)
    {
        List<string[]> table = [Columns];
        foreach (TopRow row in maxRows is { } m ? frame.Rows.Take(m) : frame.Rows)
            table.Add(Cells(row, human: false));
        var widths = new int[Columns.Length];
        foreach (string[] cells in table)
        {
            for (int c = 0; c < cells.Length; c++)
                widths[c] = Math.Max(widths[c], cells[c].Length);
        }
        var sb = new StringBuilder();
        sb.Append(HeaderLine(frame.Header)).Append('\n');
        foreach (string[] cells in table)
        {
            for (int c = 0; c < cells.Length; c++)
            {
                if (c > 0)
                    sb.Append("  ");
                bool last = c == cells.Length - 1;
                if (IsNumeric(c))
                    sb.Append(cells[c].PadLeft(widths[c]));
                else
                    sb.Append(last ? cells[c] : cells[c].PadRight(widths[c]));
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static string Value(long? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "-";
}
