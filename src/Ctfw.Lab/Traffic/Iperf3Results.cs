using System.Text.Json;

namespace Ctfw.Lab.Traffic;

/// <summary>An iperf3 TCP test as the client's <c>-J</c> report states it.</summary>
public sealed record TcpBulkResult(long BytesSent, long BytesReceived, TimeSpan Elapsed, double SentBitsPerSecond, double ReceivedBitsPerSecond, long Retransmits)
{
    public double ReceivedGbitPerSecond => ReceivedBitsPerSecond / 1e9;

    /// <summary>Parses <c>end.sum_sent</c> and <c>end.sum_received</c> (the receiver's side, reported back to the client).</summary>
    /// <exception cref="FormatException">Not JSON, an <c>"error"</c> from iperf3, or the sums are missing.</exception>
    public static TcpBulkResult Parse(string json)
    {
        using JsonDocument doc = Iperf3Json.Open(json);
        JsonElement end = Iperf3Json.End(doc);
        JsonElement sent = Iperf3Json.Object(end, "sum_sent");
        JsonElement received = Iperf3Json.Object(end, "sum_received");
        return new TcpBulkResult(
            Iperf3Json.Long(sent, "bytes"),
            Iperf3Json.Long(received, "bytes"),
            TimeSpan.FromSeconds(Iperf3Json.Double(sent, "seconds")),
            Iperf3Json.Double(sent, "bits_per_second"),
            Iperf3Json.Double(received, "bits_per_second"),
            sent.TryGetProperty("retransmits", out JsonElement r) && r.TryGetInt64(out long retransmits) ? retransmits : 0);
    }
}

/// <summary>
/// An iperf3 UDP test as the client's <c>-J</c> report states it. The server counts loss from gaps
/// in the datagrams' sequence numbers and reports it back at the end of the test.
/// </summary>
public sealed record UdpStreamResult(long PacketsSent, long PacketsLost, TimeSpan Elapsed, double ReceivedBitsPerSecond, double JitterMs)
{
    public long PacketsReceived => Math.Max(0, PacketsSent - PacketsLost);
    public double LossPercent => PacketsSent > 0 ? 100.0 * PacketsLost / PacketsSent : 0;

    /// <summary>
    /// Parses <c>end.sum_sent.packets</c> and the server's <c>end.sum_received</c> (iperf3 ≥ 3.11);
    /// older versions report only <c>end.sum</c>, which holds both.
    /// </summary>
    /// <exception cref="FormatException">Not JSON, an <c>"error"</c> from iperf3, or the sums are missing.</exception>
    public static UdpStreamResult Parse(string json)
    {
        using JsonDocument doc = Iperf3Json.Open(json);
        JsonElement end = Iperf3Json.End(doc);
        bool split = end.TryGetProperty("sum_received", out JsonElement received) && received.ValueKind == JsonValueKind.Object
            && end.TryGetProperty("sum_sent", out JsonElement sentProbe) && sentProbe.ValueKind == JsonValueKind.Object;
        JsonElement sent = split ? end.GetProperty("sum_sent") : Iperf3Json.Object(end, "sum");
        if (!split)
            received = sent;
        return new UdpStreamResult(
            Iperf3Json.Long(sent, "packets"),
            Iperf3Json.Long(received, "lost_packets"),
            TimeSpan.FromSeconds(Iperf3Json.Double(received, "seconds")),
            Iperf3Json.Double(received, "bits_per_second"),
            Iperf3Json.Double(received, "jitter_ms"));
    }
}

internal static class Iperf3Json
{
    public static JsonDocument Open(string json)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"iperf3 output is not JSON ({e.Message}): {HttpLoadResult.Excerpt(json)}", e);
        }
        if (doc.RootElement.ValueKind == JsonValueKind.Object
            && doc.RootElement.TryGetProperty("error", out JsonElement error) && error.ValueKind == JsonValueKind.String)
        {
            string message = error.GetString() ?? "";
            doc.Dispose();
            throw new FormatException($"iperf3: {message}");
        }
        return doc;
    }

    public static JsonElement End(JsonDocument doc) =>
        doc.RootElement.ValueKind == JsonValueKind.Object ? Object(doc.RootElement, "end") : throw new FormatException("iperf3 JSON is not an object");

    public static JsonElement Object(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.Object
            ? e
            : throw new FormatException($"iperf3 JSON has no '{name}' object");

    public static long Long(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.Number
            ? (e.TryGetInt64(out long v) ? v : (long)e.GetDouble())
            : throw new FormatException($"iperf3 JSON has no number '{name}'");

    public static double Double(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.Number
            ? e.GetDouble()
            : throw new FormatException($"iperf3 JSON has no number '{name}'");
}
