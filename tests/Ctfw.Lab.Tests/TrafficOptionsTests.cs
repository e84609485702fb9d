namespace Ctfw.Lab.Tests;

public sealed class TrafficOptionsTests
{
    private static readonly TimeSpan s_three = TimeSpan.FromSeconds(3);

    [Fact]
    public void DurationOf_NoOverride_UsesFallbackRoundedUpToSeconds()
    {
        Assert.Equal(s_three, TrafficOptions.Default.DurationOf(Workloads.HttpV4, s_three));
        Assert.Equal(TimeSpan.FromSeconds(3), TrafficOptions.Default.DurationOf(Workloads.PingV6, TimeSpan.FromSeconds(2.2)));
        Assert.Equal(TimeSpan.FromSeconds(1), TrafficOptions.Default.DurationOf(Workloads.PingV6, TimeSpan.FromMilliseconds(1)));
    }

    [Fact]
    public void DurationOf_GroupAndExactOverrides_ExactWins()
    {
        var o = new TrafficOptions
        {
            Durations = new Dictionary<Workloads, TimeSpan>
            {
                [Workloads.HttpV6] = TimeSpan.FromSeconds(7),
                [Workloads.Http] = TimeSpan.FromSeconds(5),
            },
        };

        Assert.Equal(TimeSpan.FromSeconds(5), o.DurationOf(Workloads.HttpV4, s_three));
        Assert.Equal(TimeSpan.FromSeconds(7), o.DurationOf(Workloads.HttpV6, s_three));
        Assert.Equal(s_three, o.DurationOf(Workloads.UdpV6, s_three));
    }

    [Theory]
    [InlineData("all", Workloads.All)]
    [InlineData("http", Workloads.Http)]
    [InlineData("tcp4, udp6", Workloads.TcpBulkV4 | Workloads.UdpV6)]
    [InlineData("ping,http4", Workloads.Ping | Workloads.HttpV4)]
    [InlineData("TCP,udp", Workloads.TcpBulkV4 | Workloads.UdpV6)]
    [InlineData("", Workloads.None)]
    public void ParseWorkloads_Names_Combine(string text, Workloads expected) =>
        Assert.Equal(expected, TrafficOptions.ParseWorkloads(text));

    [Fact]
    public void ParseWorkloads_UnknownName_ThrowsNamingIt()
    {
        var e = Assert.Throws<FormatException>(() => TrafficOptions.ParseWorkloads("http,quic"));
        Assert.Contains("'quic'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_NamesRoundTripAndCoverAll()
    {
        Workloads union = Workloads.None;
        foreach (Workloads w in TrafficOptions.Each)
        {
            Assert.Equal(w, TrafficOptions.ParseWorkloads(TrafficOptions.NameOf(w)));
            union |= w;
        }
        Assert.Equal(Workloads.All, union);
        Assert.Throws<ArgumentOutOfRangeException>(() => TrafficOptions.NameOf(Workloads.Http));
    }

    [Fact]
    public void Validate_Defaults_Pass() => TrafficOptions.Default.Validate();

    public static TheoryData<TrafficOptions> Invalid() =>
    [
        new TrafficOptions { HttpConnections = 0 },
        new TrafficOptions { UdpPayloadBytes = 8 },
        new TrafficOptions { PingInterval = TimeSpan.Zero },
        new TrafficOptions { UdpBitsPerSecond = 0 },
        new TrafficOptions { TcpBulkPort = 0 },
        new TrafficOptions { UdpPort = 70000 },
        new TrafficOptions { UdpPort = 5201 },
    ];

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Validate_Nonsense_Throws(TrafficOptions options) =>
        Assert.ThrowsAny<ArgumentException>(options.Validate);
}
