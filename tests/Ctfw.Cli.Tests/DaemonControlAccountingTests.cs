using Ctfw.Cli.Control;
using Ctfw.Cli.Daemon;
using Ctfw.Conntrack;
using Ctfw.Firewall.Logging;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Cli.Tests;

/// <summary>
/// nf_conntrack_acct through the daemon's control: off, listings (text and `-o json`) carry no
/// counters and nothing is counted; a sysctl reload that turns it on starts counting new packets.
/// </summary>
public sealed class DaemonControlAccountingTests : IDisposable
{
    private readonly byte[] _buf = new byte[256];
    private readonly ConntrackEngine _engine = new(new ConntrackSettings(), 0); // nf_conntrack_acct=0, the kernel's default
    private readonly ConntrackWorker _worker;
    private readonly DaemonControl _control;
    private ConntrackSettings _sysctls = new();

    public DaemonControlAccountingTests()
    {
        _worker = _engine.CreateWorker();
        Assert.True(Ruleset.TryLoad("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "test.rules", out Ruleset? rules, out _));
        var queue = new LogQueue(16);
        _control = new DaemonControl(_engine, [], new LogSink(queue), null, 0, () => (_sysctls, null), rules!)
        {
            Output = new LogWriter(queue, Stream.Null), // never started: nothing here logs
        };
    }

    public void Dispose() => _worker.Dispose();

    private void Udp(bool reply, int len)
    {
        IpAddress a = IpAddress.FromV4(0x0A000001), b = IpAddress.FromV4(0x0A000002);
        int n = reply ? PacketBuilder.Udp(_buf, false, b, a, 53, 40000, len) : PacketBuilder.Udp(_buf, false, a, b, 40000, 53, len);
        _worker.Enter();
        _worker.Process(_buf.AsSpan(0, n), DaemonClock.NowMs(), PacketContext.Forwarded, out _); // the clock Snapshot reads
        _worker.Exit();
    }

    private FlowInfo OnlyFlow() => Assert.Single(_control.Snapshot(out _));

    private string Line(OutputFormat format) => OutputOptions.FormatEntry(OnlyFlow(), format, _control.ListingOptions, 1000);

    [Fact]
    public void AcctOff_ListingsHaveNoCounters()
    {
        Udp(false, 10);
        Udp(true, 20);
        Assert.Equal(ListingOptions.None, _control.ListingOptions);
        Assert.False(_engine.Accounting);
        Assert.False(OnlyFlow().HasAccounting);
        Assert.DoesNotContain("packets=", Line(OutputFormat.Plain));
        Assert.DoesNotContain("\"packets\"", Line(OutputFormat.Json));
        Assert.DoesNotContain("\"bytes\"", Line(OutputFormat.Json));
    }

    [Fact]
    public void ReloadSysctls_TurnsAcctOn_CountsFromThenAndListsCounters()
    {
        Udp(false, 10); // before: not counted
        _sysctls = new ConntrackSettings();
        Assert.Null(_sysctls.Set("nf_conntrack_acct", "1"));
        Assert.Null(_control.ReloadSysctls());
        Assert.True(_engine.Accounting);
        Assert.Equal(ListingOptions.Accounting, _control.ListingOptions);
        Assert.Equal(1, _control.SettingsReloads);

        Udp(false, 10);
        Udp(true, 20);
        // 20-byte IP header + 8-byte UDP header + payload, one packet each way since the reload.
        Assert.Contains("packets=1 bytes=38 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=40000 packets=1 bytes=48", Line(OutputFormat.Plain));
        using var doc = System.Text.Json.JsonDocument.Parse(Line(OutputFormat.Json));
        Assert.Equal(1, doc.RootElement.GetProperty("original").GetProperty("packets").GetInt64());
        Assert.Equal(48, doc.RootElement.GetProperty("reply").GetProperty("bytes").GetInt64());
    }
}
