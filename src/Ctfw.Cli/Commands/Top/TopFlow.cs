using System.Globalization;
using System.Text.Json;

namespace Ctfw.Cli.Commands.Top;

/// <summary>
/// One entry of the table as `ctfw top` shows it, parsed from a line of the control socket's `list`
/// answer: a `-o json` object (what `top` asks for) or a `conntrack -L` line (an older daemon).
/// Packets and bytes are both directions' sums, null when the daemon's listing has no counters
/// (nf_conntrack_acct off, or a ctfw without accounting). <see cref="AgeSeconds"/> is the entry's
/// own age when the daemon says it (JSON's <c>age_ms</c>), else null.
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

    /// <summary>Seconds since the daemon created the entry; null when the line does not say.</summary>
    public long? AgeSeconds { get; init; }

    /// <summary>
    /// Parses one listing line (<c>tcp      6 431999 ESTABLISHED src=… dst=… sport=… dport=… [packets=… bytes=…] [UNREPLIED] src=… … [ASSURED] mark=0 use=1</c>,
    /// also the <c>-o extended</c> form); false for anything else.
    /// </summary>
    public static bool TryParse(string line, out TopFlow? flow)
    {
        flow = null;
        if (line.StartsWith('{'))
            return TryParseJson(line, out flow);
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

    /// <summary>One `-o json` listing object (schema in docs/OPERATIONS.md); false for anything else.</summary>
    private static bool TryParseJson(string line, out TopFlow? flow)
    {
        flow = null;
        try
        {
            using var doc = JsonDocument.Parse(line);
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("protocol", out JsonElement protocolElement) || protocolElement.GetString() is not { } protocol
                || !root.TryGetProperty("timeout", out JsonElement timeout) || !timeout.TryGetInt64(out long ttl)
                || !root.TryGetProperty("original", out JsonElement orig) || orig.ValueKind != JsonValueKind.Object
                || !orig.TryGetProperty("src", out JsonElement src) || !orig.TryGetProperty("dst", out JsonElement dst))
            {
                return false;
            }
            string state = root.TryGetProperty("state", out JsonElement st) ? st.GetString() ?? "" : "";
            string sport = "", dport = "";
            if (orig.TryGetProperty("sport", out JsonElement sp) && orig.TryGetProperty("dport", out JsonElement dp))
            {
                sport = Number(sp);
                dport = Number(dp);
            }
            else if (orig.TryGetProperty("type", out JsonElement type))
            {
                dport = "type " + Number(type) + (orig.TryGetProperty("code", out JsonElement code) ? "/" + Number(code) : "");
                sport = orig.TryGetProperty("id", out JsonElement id) ? "id " + Number(id) : "";
            }
            long? packets = null, bytes = null;
            foreach (string direction in (ReadOnlySpan<string>)["original", "reply"])
            {
                if (root.TryGetProperty(direction, out JsonElement d) && d.ValueKind == JsonValueKind.Object)
                {
                    if (d.TryGetProperty("packets", out JsonElement p) && p.TryGetInt64(out long pn))
                        packets = (packets ?? 0) + pn;
                    if (d.TryGetProperty("bytes", out JsonElement b) && b.TryGetInt64(out long bn))
                        bytes = (bytes ?? 0) + bn;
                }
            }
            bool seenReply = root.TryGetProperty("seen_reply", out JsonElement sr) && sr.ValueKind == JsonValueKind.True;
            bool assured = root.TryGetProperty("assured", out JsonElement a) && a.ValueKind == JsonValueKind.True;
            long? age = root.TryGetProperty("age_ms", out JsonElement ageMs) && ageMs.TryGetInt64(out long ms) ? Math.Max(0, ms / 1000) : null;
            string source = src.GetString() ?? "", destination = dst.GetString() ?? "";
            string key = string.Join(' ', protocol, source, destination, sport, dport);
            flow = new TopFlow(protocol, state, source, sport, destination, dport, ttl, packets, bytes, !seenReply, assured)
            {
                Key = key,
                AgeSeconds = age,
            };
            return true;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            return false;
        }
    }

    private static string Number(JsonElement e) =>
        e.ValueKind == JsonValueKind.Number ? e.GetRawText() : e.GetString() ?? "";
}
