using Ctfw.Cli.Commands.Top;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests.Top;

public class TopModelTests
{
    // Lines as conntrack v1.4.7 prints them with nf_conntrack_acct=1 (tests/data/conntrack-tools/list.txt).
    private const string Tcp = "tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=45906 dport=5555 packets=4 bytes=221 src=127.0.0.1 dst=127.0.0.1 sport=5555 dport=45906 packets=3 bytes=170 [ASSURED] mark=0 use=1";
    private const string Udp = "udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=51855 dport=5353 packets=1 bytes=29 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=5353 dport=51855 packets=0 bytes=0 mark=0 use=1";
    private const string Icmp = "icmp     1 29 src=10.0.0.2 dst=10.0.0.1 type=8 code=0 id=77 packets=9 bytes=756 src=10.0.0.1 dst=10.0.0.2 type=0 code=0 id=77 packets=9 bytes=756 mark=0 use=1";
    private const string TcpNoAcct = "tcp      6 117 TIME_WAIT src=10.0.0.9 dst=10.0.0.1 sport=40000 dport=22 src=10.0.0.1 dst=10.0.0.9 sport=22 dport=40000 [ASSURED] mark=0 use=1";

    private static TopFlow Parse(string line)
    {
        Assert.True(TopFlow.TryParse(line, out TopFlow? flow), line);
        return flow!;
    }

    [Fact]
    public void TryParse_AccountedTcp_SumsBothDirections()
    {
        TopFlow f = Parse(Tcp);
        Assert.Equal(("tcp", "ESTABLISHED", "127.0.0.1", "45906", "127.0.0.1", "5555"), (f.Protocol, f.State, f.Source, f.SourcePort, f.Destination, f.DestinationPort));
        Assert.Equal(431999, f.TtlSeconds);
        Assert.Equal(7, f.Packets);
        Assert.Equal(391, f.Bytes);
        Assert.True(f.Assured);
        Assert.False(f.Unreplied);
    }

    /// <summary>A `-o json` line as the daemon writes it (what `top` asks for): ConntrackListing.FormatJson itself.</summary>
    private static string JsonLine(long createdMs, long nowMs, bool counters)
    {
        ConnTuple t = default;
        t.Src = IpAddress.FromV4(0x0A000009);
        t.Dst = IpAddress.FromV4(0x0A000001);
        t.SrcId = 40000;
        t.DstId = 22;
        t.Protocol = IpProto.Tcp;
        t.IpVersion = 4;
        Assert.True(t.TryInvert(out ConnTuple reply));
        var f = new FlowInfo(t, reply, CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed, TcpState.Established, 431_999_000)
        {
            CreatedMs = createdMs,
            StateSinceMs = createdMs,
            HasAccounting = counters, // without: -o json has no packets/bytes (nf_conntrack_acct off)
            PacketsOriginal = counters ? 4 : 0, BytesOriginal = counters ? 221 : 0,
            PacketsReply = counters ? 3 : 0, BytesReply = counters ? 170 : 0,
        };
        return ConntrackListing.FormatJson(f, nowMs: nowMs);
    }

    [Fact]
    public void TryParse_JsonLine_TupleStateCountersAndTheEntrysAge()
    {
        TopFlow f = Parse(JsonLine(createdMs: 1_000, nowMs: 126_000, counters: true));
        Assert.Equal(("tcp", "ESTABLISHED", "10.0.0.9", "40000", "10.0.0.1", "22"), (f.Protocol, f.State, f.Source, f.SourcePort, f.Destination, f.DestinationPort));
        Assert.Equal(431999, f.TtlSeconds);
        Assert.Equal(125, f.AgeSeconds);
        Assert.True(f.Assured);
        Assert.False(f.Unreplied);
        Assert.Equal(7, f.Packets);
        Assert.Equal(391, f.Bytes);
    }

    [Fact]
    public void Update_JsonLines_AgeIsTheEntrysOwnFromTheFirstPoll()
    {
        var model = new TopModel(TopSort.Age);
        TopFrame frame = model.Update(JsonLine(createdMs: 1_000, nowMs: 61_000, counters: false) + "\n", [], nowMs: 5_000, DateTime.UnixEpoch);
        TopRow row = Assert.Single(frame.Rows);
        Assert.Equal(60, row.AgeSeconds);
        // Not counted: no counters in the JSON, so top has none (shown as "-"), not zeros.
        Assert.Null(row.Flow.Packets);
        Assert.Null(row.Flow.Bytes);
        Assert.False(frame.Header.Accounting);
    }

    [Theory]
    [InlineData("{")]
    [InlineData("{}")]
    [InlineData("{\"protocol\":\"tcp\",\"timeout\":\"x\"}")]
    [InlineData("{\"protocol\":\"tcp\",\"timeout\":5,\"original\":[]}")]
    public void TryParse_BrokenJson_False(string line) => Assert.False(TopFlow.TryParse(line, out _));

    [Fact]
    public void TryParse_ExtendedForm_SameAsPlain()
    {
        Assert.Equal(Parse(Tcp), Parse("ipv4     2 " + Tcp));
    }

    [Fact]
    public void TryParse_UdpUnreplied_NoStateAndFlag()
    {
        TopFlow f = Parse(Udp);
        Assert.Equal("", f.State);
        Assert.True(f.Unreplied);
        Assert.Equal(1, f.Packets);
        Assert.Equal(29, f.Bytes);
    }

    [Fact]
    public void TryParse_Icmp_TypeCodeAndId()
    {
        TopFlow f = Parse(Icmp);
        Assert.Equal("id 77", f.SourcePort);
        Assert.Equal("type 8/0", f.DestinationPort);
        Assert.Equal(18, f.Packets);
    }

    [Fact]
    public void TryParse_NoAccounting_CountersNull()
    {
        TopFlow f = Parse(TcpNoAcct);
        Assert.Null(f.Packets);
        Assert.Null(f.Bytes);
    }

    [Fact]
    public void TryParse_ListingFromConntrackListing_RoundTrips()
    {
        // The daemon's own formatter, with accounting: top reads what the server writes.
        var original = new ConnTuple { Src = IpAddress.FromV4(0x0A000002), Dst = IpAddress.FromV4(0x0A000001), SrcId = 40000, DstId = 443, Protocol = IpProto.Tcp, IpVersion = 4 };
        Assert.True(original.TryInvert(out ConnTuple reply));
        var flow = new FlowInfo(original, reply, CtStatus.Assured | CtStatus.SeenReply, TcpState.Established, 300_000)
        {
            HasAccounting = true, PacketsOriginal = 10, BytesOriginal = 1000, PacketsReply = 5, BytesReply = 50_000,
        };
        TopFlow f = Parse(ConntrackListing.Format(flow, ListingOptions.Accounting));
        Assert.Equal(15, f.Packets);
        Assert.Equal(51_000, f.Bytes);
        Assert.Equal(300, f.TtlSeconds);
        Assert.Equal("10.0.0.2", f.Source);
        Assert.Equal("443", f.DestinationPort);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ok")]
    [InlineData("tcp 6")]
    [InlineData("tcp x 12 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 src=2.2.2.2 dst=1.1.1.1")]
    [InlineData("tcp 6 12 ESTABLISHED src=1.1.1.1 dst=2.2.2.2")]
    [InlineData("tcp 6 12 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 packets=x src=2.2.2.2 dst=1.1.1.1")]
    public void TryParse_NotAListingLine_False(string line)
    {
        Assert.False(TopFlow.TryParse(line, out _));
    }

    [Fact]
    public void TryParse_EveryPrefixOfALine_NeverThrows()
    {
        int secondTuple = Tcp.IndexOf("src=127.0.0.1 dst=127.0.0.1 sport=5555", StringComparison.Ordinal);
        for (int i = 0; i <= Tcp.Length; i++)
        {
            bool parsed = TopFlow.TryParse(Tcp[..i], out TopFlow? flow);
            // A line cut before its reply tuple is not a listing line.
            if (i < secondTuple + 4)
                Assert.False(parsed, Tcp[..i]);
            Assert.Equal(parsed, flow is not null);
        }
        Assert.True(TopFlow.TryParse(Tcp[..Tcp.IndexOf(" [ASSURED]", StringComparison.Ordinal)], out _));
    }

    private static string Listing(params string[] lines) => string.Join('\n', lines) + "\n";

    [Fact]
    public void Update_DefaultSort_BytesDescending()
    {
        var model = new TopModel();
        TopFrame frame = model.Update(Listing(Udp, Tcp, Icmp), [], 0, DateTime.UnixEpoch);
        Assert.Equal(["icmp", "tcp", "udp"], frame.Rows.Select(r => r.Flow.Protocol));
        Assert.True(frame.Header.Descending);
        Assert.True(frame.Header.Accounting);
    }

    [Fact]
    public void OnKey_SCyclesSortAndRReverses()
    {
        var model = new TopModel();
        Assert.True(model.OnKey('s'));
        Assert.Equal(TopSort.Packets, model.Sort);
        Assert.True(model.OnKey('s'));
        Assert.Equal(TopSort.Age, model.Sort);
        Assert.True(model.OnKey('t'));
        Assert.Equal(TopSort.Ttl, model.Sort);
        Assert.False(model.Descending); // expiring soonest first
        TopFrame ascending = model.Update(Listing(Tcp, Udp, TcpNoAcct), [], 0, DateTime.UnixEpoch);
        Assert.Equal([29L, 117L, 431999L], ascending.Rows.Select(r => r.Flow.TtlSeconds));
        Assert.True(model.OnKey('r'));
        TopFrame descending = model.Update(Listing(Tcp, Udp, TcpNoAcct), [], 0, DateTime.UnixEpoch);
        Assert.Equal([431999L, 117L, 29L], descending.Rows.Select(r => r.Flow.TtlSeconds));
        Assert.False(model.OnKey('x'));
        for (int i = 0; i < Enum.GetValues<TopSort>().Length; i++)
            model.OnKey('s');
        Assert.Equal(TopSort.Ttl, model.Sort);
        Assert.False(model.Reverse); // s starts each column in its natural direction
    }

    [Fact]
    public void Update_Age_CountsFromFirstSightAndForgetsGoneFlows()
    {
        var model = new TopModel(TopSort.Age);
        model.Update(Listing(Tcp), [], 1_000, DateTime.UnixEpoch);
        TopFrame second = model.Update(Listing(Tcp, Udp), [], 6_000, DateTime.UnixEpoch);
        Assert.Equal([("tcp", 5L), ("udp", 0L)], second.Rows.Select(r => (r.Flow.Protocol, r.AgeSeconds)));
        model.Update(Listing(Udp), [], 7_000, DateTime.UnixEpoch);
        TopFrame back = model.Update(Listing(Tcp, Udp), [], 9_000, DateTime.UnixEpoch);
        Assert.Equal(0, back.Rows.Single(r => r.Flow.Protocol == "tcp").AgeSeconds);
        Assert.Equal(3, back.Rows.Single(r => r.Flow.Protocol == "udp").AgeSeconds);
    }

    [Fact]
    public void Update_Stats_TotalsAndRatesFromTheDifference()
    {
        var model = new TopModel();
        KeyValuePair<string, long>[] Stats(long packets, long accept, long drop) =>
            [new("packets", packets), new("verdict.accept", accept), new("verdict.drop", drop), new("table.entries", 3), new("table.max", 1024)];
        TopFrame first = model.Update(Listing(Tcp), Stats(100, 90, 10), 10_000, DateTime.UnixEpoch);
        TopFrame second = model.Update(Listing(Tcp), Stats(300, 250, 50), 12_000, DateTime.UnixEpoch);
        Assert.Null(first.Header.PacketsPerSecond);
        Assert.Equal(3, second.Header.Entries);
        Assert.Equal(1024, second.Header.Max);
        Assert.Equal(1, second.Header.Shown);
        Assert.Equal(100, second.Header.PacketsPerSecond);
        Assert.Equal(80, second.Header.AcceptedPerSecond);
        Assert.Equal(20, second.Header.DroppedPerSecond);
    }

    [Fact]
    public void Format_Frame_HeaderColumnsAndOneLinePerFlowWithExactNumbers()
    {
        var model = new TopModel(TopSort.Packets, filter: "--proto tcp");
        model.Update(Listing(Tcp), [new("table.entries", 5), new("table.max", 65536)], 0, DateTime.UnixEpoch);
        string text = TopText.Format(model.Update(Listing(Tcp), [new("table.entries", 5), new("table.max", 65536)], 2_000, new DateTime(2026, 1, 1, 12, 0, 0, DateTimeKind.Utc)));
        string[] lines = text.TrimEnd('\n').Split('\n');
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("ctfw top  12:00:00  entries 5/65536 (shown 1)", lines[0], StringComparison.Ordinal);
        Assert.Contains("sort packets desc", lines[0], StringComparison.Ordinal);
        Assert.Contains("filter --proto tcp", lines[0], StringComparison.Ordinal);
        Assert.Equal(TopText.Columns, lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["tcp", "ESTABLISHED", "127.0.0.1", "45906", "127.0.0.1", "5555", "431999", "2", "7", "391", "ASSURED"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        // Numbers right-aligned under their heading: the PACKETS heading ends where the count does.
        Assert.Equal(lines[1].IndexOf("PACKETS", StringComparison.Ordinal) + "PACKETS".Length, lines[2].IndexOf(" 7 ", StringComparison.Ordinal) + 2);
    }

    [Fact]
    public void Format_NoAccounting_SaysWhyAndShowsDashes()
    {
        string text = TopText.Format(new TopModel().Update(Listing(TcpNoAcct), [], 0, DateTime.UnixEpoch));
        Assert.Contains("nf_conntrack_acct is off", text, StringComparison.Ordinal);
        Assert.Equal(["-", "-", "ASSURED"], text.TrimEnd('\n').Split('\n')[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[^3..]);
    }

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(99_999L, "99999")]
    [InlineData(100_000L, "100.0k")]
    [InlineData(1_250_000L, "1.3M")]
    [InlineData(5_000_000_000L, "5.0G")]
    public void Human_Values(long value, string expected) => Assert.Equal(expected, TopModel.Human(value));

    [Theory]
    [InlineData(0L, "0s")]
    [InlineData(59L, "59s")]
    [InlineData(187L, "3m07s")]
    [InlineData(7500L, "2h05m")]
    [InlineData(442_800L, "5d03h")]
    public void Duration_Values(long seconds, string expected) => Assert.Equal(expected, TopModel.Duration(seconds));
}
