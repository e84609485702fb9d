namespace Ctfw.Lab.Tests;

public sealed class Iperf3ResultTests
{
    [Fact]
    public void TcpParse_ClientJson_ReadsBothSidesAndRetransmits()
    {
        TcpBulkResult r = TcpBulkResult.Parse(TestData.Read("iperf3-tcp.json"));

        Assert.Equal(3237740544, r.BytesSent);
        Assert.Equal(3237740544, r.BytesReceived);
        Assert.Equal(12950314660.266985, r.SentBitsPerSecond, 3);
        Assert.Equal(12946327390.794094, r.ReceivedBitsPerSecond, 3);
        Assert.Equal(12.946, r.ReceivedGbitPerSecond, 3);
        Assert.Equal(2863, r.Retransmits);
        Assert.Equal(2.0001, r.Elapsed.TotalSeconds, 6);
    }

    [Fact]
    public void UdpParse_LossyRun_ReadsSentFromClientAndLossFromServer()
    {
        UdpStreamResult r = UdpStreamResult.Parse(TestData.Read("iperf3-udp-loss.json"));

        Assert.Equal(7810, r.PacketsSent);
        Assert.Equal(825, r.PacketsLost);
        Assert.Equal(6985, r.PacketsReceived);
        Assert.Equal(100.0 * 825 / 7810, r.LossPercent, 9);
        Assert.Equal(1788004.4436134058, r.ReceivedBitsPerSecond, 3);
        Assert.Equal(0.006789660362316426, r.JitterMs, 12);
    }

    [Fact]
    public void UdpParse_CleanRun_NoLoss()
    {
        UdpStreamResult r = UdpStreamResult.Parse(TestData.Read("iperf3-udp.json"));

        Assert.Equal(7810, r.PacketsSent);
        Assert.Equal(0, r.PacketsLost);
        Assert.Equal(7810, r.PacketsReceived);
    }

    [Fact]
    public void UdpParse_OlderIperfWithOnlySum_ReadsSum()
    {
        const string json = """
            {"start": {}, "intervals": [], "end": {"sum": {"start": 0, "end": 3.0, "seconds": 3.0, "bytes": 96000,
             "bits_per_second": 256000.0, "jitter_ms": 0.25, "lost_packets": 7, "packets": 1500, "lost_percent": 0.46}}}
            """;

        UdpStreamResult r = UdpStreamResult.Parse(json);

        Assert.Equal((1500L, 7L, 1493L), (r.PacketsSent, r.PacketsLost, r.PacketsReceived));
        Assert.Equal(0.25, r.JitterMs);
    }

    [Fact]
    public void Parse_IperfErrorField_ThrowsWithItsMessage()
    {
        string json = TestData.Read("iperf3-refused.json");

        var tcp = Assert.Throws<FormatException>(() => TcpBulkResult.Parse(json));
        var udp = Assert.Throws<FormatException>(() => UdpStreamResult.Parse(json));

        Assert.Contains("unable to connect to server: Connection refused", tcp.Message, StringComparison.Ordinal);
        Assert.Contains("Connection refused", udp.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("iperf3: error - unable to connect to server")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("""{"end": {}}""")]
    [InlineData("""{"end": {"sum_sent": {"bytes": "many"}, "sum_received": {}}}""")]
    public void Parse_NotAReport_ThrowsFormatException(string json)
    {
        Assert.Throws<FormatException>(() => TcpBulkResult.Parse(json));
        Assert.Throws<FormatException>(() => UdpStreamResult.Parse(json));
    }

    [Theory]
    [InlineData("iperf3-tcp.json")]
    [InlineData("iperf3-udp-loss.json")]
    public void Parse_EveryTruncation_ThrowsFormatException(string file)
    {
        string full = TestData.Read(file).TrimEnd();
        bool udp = file.Contains("udp", StringComparison.Ordinal);
        foreach (string prefix in TestData.Prefixes(full))
        {
            if (udp)
                Assert.Throws<FormatException>(() => UdpStreamResult.Parse(prefix));
            else
                Assert.Throws<FormatException>(() => TcpBulkResult.Parse(prefix));
        }
    }
}
