using Ctfw.Cli.Control;
using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Cli.Tests.Control;

/// <summary>--half-closed, --stalled and the RSTs of --reset-on-expiry, on hand-built flows.</summary>
public sealed class FlowAgesTests
{
    private static ConnTuple Tcp(ushort sport, ushort dport) => new()
    {
        Src = IpAddress.FromV4(0x0A630102),
        Dst = IpAddress.FromV4(0x0A630202),
        SrcId = sport,
        DstId = dport,
        Protocol = IpProto.Tcp,
        IpVersion = 4,
    };

    private static FlowInfo Flow(TcpState state, long stateSince = 0, long zeroOrig = long.MinValue, long zeroReply = long.MinValue,
        bool finOrig = false, bool finReply = false)
    {
        ConnTuple o = Tcp(40000, 8088);
        Assert.True(o.TryInvert(out ConnTuple r));
        return new FlowInfo(o, r, CtStatus.SeenReply | CtStatus.Assured, state, 60_000)
        {
            StateSinceMs = stateSince,
            ZeroWindowSinceOriginal = zeroOrig,
            ZeroWindowSinceReply = zeroReply,
            FinSeenOriginal = finOrig,
            FinSeenReply = finReply,
        };
    }

    [Theory]
    [InlineData(TcpState.FinWait, true)]
    [InlineData(TcpState.CloseWait, true)]
    [InlineData(TcpState.LastAck, true)]
    [InlineData(TcpState.Established, false)]
    [InlineData(TcpState.TimeWait, false)]
    [InlineData(TcpState.Close, false)]
    public void HalfClosed_IsTheThreeClosingStates(TcpState state, bool halfClosed) =>
        Assert.Equal(halfClosed, FlowAges.IsHalfClosed(Flow(state)));

    [Fact]
    public void HalfClosedFilter_ListsAgeAndWhoSentFin()
    {
        ConntrackFilter filter = ConntrackFilter.Parse(["--half-closed"], out string? error)!;
        Assert.Null(error);
        FlowInfo f = Flow(TcpState.CloseWait, stateSince: 1_000, finOrig: true);

        Assert.True(filter.Matches(f, nowMs: 13_500));
        Assert.False(filter.Matches(Flow(TcpState.Established), nowMs: 13_500));
        Assert.Equal(" half-closed=12s fin=original", filter.Annotate(f, nowMs: 13_500));
    }

    [Fact]
    public void StalledFilter_NeedsAZeroWindowOlderThanTheThreshold()
    {
        ConntrackFilter filter = ConntrackFilter.Parse(["--stalled", "--stalled-after", "5"], out string? error)!;
        Assert.Null(error);
        FlowInfo f = Flow(TcpState.Established, zeroReply: 10_000);

        Assert.False(filter.Matches(f, nowMs: 14_999));
        Assert.True(filter.Matches(f, nowMs: 15_000));
        Assert.Equal(" zero-window=reply:7s fin=none", filter.Annotate(f, nowMs: 17_900));
        Assert.False(filter.Matches(Flow(TcpState.Established), nowMs: 1_000_000)); // no zero window at all
    }

    [Fact]
    public void StalledFilter_DefaultThreshold_AndOldestSideWins()
    {
        ConntrackFilter filter = ConntrackFilter.Parse(["--stalled"], out _)!;
        FlowInfo f = Flow(TcpState.FinWait, zeroOrig: 5_000, zeroReply: 2_000, finOrig: true);

        Assert.False(filter.Matches(f, nowMs: 2_000 + FlowAges.DefaultStalledAfterSeconds * 1000L - 1));
        Assert.True(filter.Matches(f, nowMs: 2_000 + FlowAges.DefaultStalledAfterSeconds * 1000L));
        Assert.StartsWith(" zero-window=reply:", filter.Annotate(f, nowMs: 20_000), StringComparison.Ordinal);
        Assert.EndsWith("fin=original", filter.Annotate(f, nowMs: 20_000), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--stalled-after", "5" }, "--stalled-after needs --stalled")]
    [InlineData(new[] { "--stalled", "--stalled-after", "0" }, "--stalled-after 0: expected 1..86400 seconds")]
    [InlineData(new[] { "--half-closed", "-p", "udp" }, "--half-closed and --stalled describe TCP flows and cannot match udp entries")]
    public void Filter_Errors(string[] args, string message)
    {
        Assert.Null(ConntrackFilter.Parse(args, out string? error));
        Assert.Equal(message, error);
    }

    [Fact]
    public void Count_CountsBothKinds()
    {
        List<FlowInfo> flows = [Flow(TcpState.CloseWait), Flow(TcpState.Established, zeroOrig: 0), Flow(TcpState.FinWait, zeroReply: 0), Flow(TcpState.Established)];

        Assert.Equal((2, 2), FlowAges.Count(flows, nowMs: 60_000, stalledAfterMs: 10_000));
    }

    [Fact]
    public void ResetOnExpiry_Rst_CarriesThePeersNextSequenceNumber()
    {
        var buffer = new byte[128];
        ReadOnlySpan<byte> rst = ExpiryResetter.BuildRst(buffer, v6: false, IpAddress.FromV4(0x0A630202), IpAddress.FromV4(0x0A630102), 8088, 40000, seq: 777_000, ack: 123_456);

        Assert.Equal(InvalidReason.None, PacketParser.Parse(rst, out ParsedPacket p));
        Assert.Equal(IpProto.Tcp, p.Protocol);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, p.TcpFlags);
        Assert.Equal(777_000u, p.Seq);
        Assert.Equal(123_456u, p.AckSeq);
        Assert.Equal((ushort)8088, p.SrcPort);
        Assert.Equal((ushort)40000, p.DstPort);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(rst, p));
    }
}
