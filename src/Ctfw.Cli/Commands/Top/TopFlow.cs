using System.Globalization;

namespace Ctfw.Cli.Commands.Top;

/// <summary>
/// One entry of the table as `ctfw top` shows it, parsed from a `conntrack -L` line of the control
/// socket's `list` answer. Packets and bytes are both directions' sums, null when the daemon's
/// listing has no counters (nf_conntrack_acct off, or a ctfw without accounting).
/// </summary>
internal sealed record TopFlow(
    string Protocol,
    string State,
    string Source,
    string SourcePort,
    string Destination,
    string DestinationPort,
    long TtlSeconds,
    long? Packets,
    long? Bytes,
    bool Unreplied,
    bool Assured)
{
    /// <summary>The original tuple: what identifies the flow from one poll to the next.</summary>
    public required string Key { get; init; }

    /// <summary>
    /// Parses one listing line (<c>tcp      6 431999 ESTABLISHED src=… dst=… sport=… dport=… [packets=… bytes=…] [UNREPLIED] src=… … [ASSURED] mark=0 use=1</c>,
    /// also the <c>-o extended</c> form); false for anything else.
    /// </summary>
    public static bool TryParse(string line, out TopFlow? flow)
    {
        flow = null;
        string[] words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int i = 0;
        if (words.Length > 2 && words[0] is "ipv4" or "ipv6")
            i = 2;
        if (words.Length < i + 4)
            return false;
        string protocol = words[i];
        if (!byte.TryParse(words[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out _)
            || !long.TryParse(words[i + 2], NumberStyles.None, CultureInfo.InvariantCulture, out long ttl))
        {
            return false;
        }
        i += 3;
        string state = "";
        if (!words[i].Contains('=', StringComparison.Ordinal) && !words[i].StartsWith('['))
            state = words[i++];
        int tuple = 0;
        string? src = null, dst = null, sport = null, dport = null;
        long? packets = null, bytes = null;
        bool unreplied = false, assured = false;
        int keyStart = i, keyEnd = i;
        for (; i < words.Length; i++)
        {
            string w = words[i];
            if (w == "[UNREPLIED]")
            {
                unreplied = true;
                continue;
            }
            if (w == "[ASSURED]")
            {
                assured = true;
                continue;
            }
            int eq = w.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                continue;
            string name = w[..eq];
            string value = w[(eq + 1)..];
            if (name == "src")
            {
                tuple++;
                if (tuple == 2)
                    keyEnd = i;
            }
            if (tuple == 1)
            {
                switch (name)
                {
                    case "src": src = value; break;
                    case "dst": dst = value; break;
                    case "sport": sport = value; break;
                    case "dport": dport = value; break;
                    case "type": dport = "type " + value; break;
                    case "code": dport += "/" + value; break;
                    case "id": sport = "id " + value; break;
                }
            }
            if (name is "packets" or "bytes" && tuple is 1 or 2)
            {
                if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
                    return false;
                if (name == "packets")
                    packets = (packets ?? 0) + n;
                else
                    bytes = (bytes ?? 0) + n;
            }
        }
        if (src is null || dst is null || tuple < 2)
            return false;
        string key = protocol + " " + string.Join(' ', words[keyStart..keyEnd].Where(w => !w.StartsWith("packets=", StringComparison.Ordinal) && !w.StartsWith("bytes=", StringComparison.Ordinal) && w != "[UNREPLIED]"));
        flow = new TopFlow(protocol, state, src, sport ?? "", dst, dport ?? "", ttl, packets, bytes, unreplied, assured) { Key = key };
        return true;
    }
}
