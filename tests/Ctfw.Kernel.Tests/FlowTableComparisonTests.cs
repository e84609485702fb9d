namespace Ctfw.Kernel.Tests;

/// <summary>The kernel-vs-ctfw table comparison of `ctfw lab`: only flows that held still are judged.</summary>
public sealed class FlowTableComparisonTests
{
    private const string Est = "tcp      6 431999 ESTABLISHED src=10.99.1.2 dst=10.99.2.2 sport=40001 dport=80 src=10.99.2.2 dst=10.99.1.2 sport=80 dport=40001 [ASSURED] mark=0 use=1";
    private const string Fin = "tcp      6 119 FIN_WAIT src=10.99.1.2 dst=10.99.2.2 sport=40001 dport=80 src=10.99.2.2 dst=10.99.1.2 sport=80 dport=40001 [ASSURED] mark=0 use=1";
    private const string Udp = "udp      17 29 src=10.99.1.2 dst=10.99.2.2 sport=5000 dport=53 [UNREPLIED] src=10.99.2.2 dst=10.99.1.2 sport=53 dport=5000 mark=0 use=1";
    private const string UdpReplied = "udp      17 29 src=10.99.1.2 dst=10.99.2.2 sport=5000 dport=53 src=10.99.2.2 dst=10.99.1.2 sport=53 dport=5000 mark=0 use=1";
    private const string Icmp6 = "icmpv6   58 29 src=fd99:1::2 dst=fd99:2::2 type=128 code=0 id=7 src=fd99:2::2 dst=fd99:1::2 type=129 code=0 id=7 mark=0 use=1";

    private static IReadOnlyList<ConntrackEntry> T(params string[] lines) => ConntrackEntry.ParseAll(string.Join('\n', lines));

    [Fact]
    public void SameTables_Agree_AndEveryStableFlowIsChecked()
    {
        FlowTableResult r = FlowTableComparison.Compare(T(Est, Udp, Icmp6), T(Est, Udp, Icmp6), T(Est, Udp, Icmp6), T(Est, Udp, Icmp6), 0.1);

        Assert.True(r.Agree);
        Assert.Equal(3, r.KernelStableChecked);
        Assert.Equal(3, r.CtfwStableChecked);
    }

    [Fact]
    public void FlowMissingInCtfw_IsAMismatch()
    {
        FlowTableResult r = FlowTableComparison.Compare(T(Est, Udp), T(Est), T(Est, Udp), T(Est), 0.1);

        string m = Assert.Single(r.Mismatches);
        Assert.StartsWith("only kernel lists udp", m, StringComparison.Ordinal);
    }

    [Fact]
    public void FlowOnlyInCtfw_IsAMismatch()
    {
        FlowTableResult r = FlowTableComparison.Compare(T(Est), T(Est, Icmp6), T(Est), T(Est, Icmp6), 0.1);

        Assert.StartsWith("only ctfw lists icmpv6", Assert.Single(r.Mismatches), StringComparison.Ordinal);
    }

    [Fact]
    public void DifferentStateOrFlags_AreMismatches()
    {
        Assert.False(FlowTableComparison.Compare(T(Est), T(Fin), T(Est), T(Fin), 0.1).Agree);
        Assert.False(FlowTableComparison.Compare(T(Udp), T(UdpReplied), T(Udp), T(UdpReplied), 0.1).Agree);
    }

    [Fact]
    public void FlowThatChangedBetweenListings_IsNotJudged()
    {
        // The kernel moved the flow ESTABLISHED → FIN_WAIT between its two listings; ctfw's listing in
        // between may show either. Ctfw's own two listings also differ: nothing can be concluded.
        FlowTableResult r = FlowTableComparison.Compare(T(Est), T(Est), T(Fin), T(Fin), 0.1);

        Assert.True(r.Agree);
        Assert.Equal(0, r.KernelStableChecked);
        Assert.Equal(0, r.CtfwStableChecked);
    }

    [Fact]
    public void Timeouts_ComparedWithinTolerancePlusListingSpan()
    {
        string estLow = Est.Replace("431999", "431990", StringComparison.Ordinal);
        Assert.True(FlowTableComparison.Compare(T(Est), T(estLow), T(Est), T(estLow), 8).Agree);   // 9 s apart, slack 2 + 8
        FlowTableResult far = FlowTableComparison.Compare(T(Est), T(estLow), T(Est), T(estLow), 1);  // slack 3
        Assert.Contains(far.Mismatches, m => m.StartsWith("timeout 431990 s in ctfw", StringComparison.Ordinal));
    }

    [Fact]
    public void ClosingStateWithHigherTimeoutInTheSecondListing_IsNotJudged()
    {
        // TIME_WAIT at 110 s, then TIME_WAIT at 118 s: a new connection on the same ports went
        // through its life in between; the ctfw listing in between may show it mid-handshake.
        const string tw110 = "tcp      6 110 TIME_WAIT src=10.99.1.2 dst=10.99.2.2 sport=47040 dport=80 src=10.99.2.2 dst=10.99.1.2 sport=80 dport=47040 [ASSURED] mark=0 use=1";
        string tw118 = tw110.Replace(" 110 ", " 118 ", StringComparison.Ordinal);
        const string synRecv = "tcp      6 60 SYN_RECV src=10.99.1.2 dst=10.99.2.2 sport=47040 dport=80 src=10.99.2.2 dst=10.99.1.2 sport=80 dport=47040 mark=0 use=1";

        FlowTableResult r = FlowTableComparison.Compare(T(tw110), T(synRecv), T(tw118), T(synRecv), 0.5);

        Assert.Equal(0, r.KernelStableChecked);
        // The same TIME_WAIT entry ageing normally is judged, and a different state in ctfw is a mismatch.
        Assert.False(FlowTableComparison.Compare(T(tw118), T(synRecv), T(tw110), T(synRecv), 0.5).Agree);
    }

    [Fact]
    public void EstablishedWithDataInFlightInOneListingOnly_IsNotJudgedOnTimeout()
    {
        string unacked = Est.Replace("431999", "299", StringComparison.Ordinal);

        Assert.True(FlowTableComparison.Compare(T(unacked), T(Est), T(unacked), T(Est), 0.5).Agree);
        // A short timeout that is not the unacknowledged one against a long one still counts.
        string closeWait = Est.Replace("431999 ESTABLISHED", "59 CLOSE_WAIT", StringComparison.Ordinal);
        string closeWaitLong = Est.Replace("431999 ESTABLISHED", "431999 CLOSE_WAIT", StringComparison.Ordinal);
        Assert.False(FlowTableComparison.Compare(T(closeWait), T(closeWaitLong), T(closeWait), T(closeWaitLong), 0.5).Agree);
    }
}
