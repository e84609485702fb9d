using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Ctfw.Linux.Firewall;
using Ctfw.Linux.Nfqueue;
using Xunit.Abstractions;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// A short UDP flood from A to B, first with nothing queued, then through one queue that accepts
/// everything (recvmmsg batches + VERDICT_BATCH). Delivered packets are counted by a rule in B's
/// security table (after filter INPUT, where the queue sits). Prints pps for both; asserts what must
/// hold on any machine: the queue moved traffic, every received packet got a verdict the kernel
/// accepted, and the receive/verdict loop allocated nothing per packet.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class ThroughputTests(ITestOutputHelper output)
{
    private const int Port = 5555;
    private static readonly TimeSpan s_duration = TimeSpan.FromSeconds(3);

    [Theory]
    [InlineData(128u)]
    [InlineData(0xFFFFu)]
    public void UdpFlood_ThroughOneQueue_IsVerdictedLosslesslyWithoutAllocating(uint copyRange)
    {
        using var lab = new NetnsLab();
        Tool.RunIn(lab.B, "iptables", "-t", "security", "-A", "INPUT", "-p", "udp", "--dport", "5555", "-j", "DROP");
        using Socket sender = lab.Udp(lab.A, v6: false);
        sender.Connect(lab.AddressB4, Port);

        (long sentPlain, long deliveredPlain) = Flood(lab, sender);

        using IptablesInstaller rules = lab.InstallInB(NfqueueLiveTests.UdpRule(queue: 20));
        using NfqueueSocket queue = NfqueueLiveTests.OpenInB(lab, new NfqueueOptions { Queue = 20, CopyRange = copyRange });
        using var stop = new CancellationTokenSource();
        long allocated = -1, verdicted = 0;
        var pump = new Thread(() =>
        {
            var packets = new PacketView[64];
            long start = GC.GetAllocatedBytesForCurrentThread();
            while (!stop.IsCancellationRequested)
            {
                int n = queue.Receive(packets);
                for (int i = 0; i < n; i++)
                    queue.Verdicts.Accept(packets[i].PacketId);
                verdicted += Math.Max(n, 0);
            }
            queue.Verdicts.Flush();
            allocated = GC.GetAllocatedBytesForCurrentThread() - start;
        })
        { IsBackground = true, Name = "nfqueue pump" };
        pump.Start();
        (long sentQueued, long deliveredQueued) = Flood(lab, sender);
        stop.Cancel();
        pump.Join();

        NfqueueStatistics stats = queue.Statistics;
        Assert.True(queue.TryReadKernelCounters(out NfqueueKernelCounters kernel));
        double seconds = s_duration.TotalSeconds;
        output.WriteLine($"copy range {copyRange}, {Environment.ProcessorCount} CPUs, 3 s each:");
        output.WriteLine($"  no queue : offered {sentPlain / seconds,10:N0} pps, delivered {deliveredPlain / seconds,10:N0} pps");
        output.WriteLine($"  one queue: offered {sentQueued / seconds,10:N0} pps, delivered {deliveredQueued / seconds,10:N0} pps " +
                         $"({(double)deliveredQueued / Math.Max(deliveredPlain, 1):P0} of no queue)");
        output.WriteLine($"  {stats.ReceiveCalls:N0} recvmmsg ({(double)stats.Packets / Math.Max(stats.ReceiveCalls, 1):F1} packets each), " +
                         $"{stats.Flushes:N0} sendmsg ({(double)stats.VerdictsAdded / Math.Max(stats.Flushes, 1):F1} verdicts each, " +
                         $"{stats.BatchVerdictMessages:N0} VERDICT_BATCH of {stats.VerdictMessages:N0} messages)");
        output.WriteLine($"  kernel: queue_dropped {kernel.QueueDropped}, user_dropped {kernel.UserDropped}; pump allocated {allocated} bytes");

        Assert.True(deliveredPlain > 0 && deliveredQueued > 0);
        Assert.Equal(verdicted, stats.Packets);
        Assert.Equal(verdicted, deliveredQueued); // every packet received was accepted and arrived, nothing else did
        Assert.Equal((0L, 0L, 0L), (stats.VerdictErrors, stats.SendErrors, stats.MalformedMessages));
        // One object per packet would be ≥ 24 B × hundreds of thousands; the runtime's one-off
        // allocations on a fresh thread (first calls, tier-up) stay far below this bound.
        Assert.True(allocated < 64 * 1024, $"{allocated} bytes allocated for {verdicted} packets");
    }

    /// <summary>Sends as fast as one thread can for <see cref="s_duration"/>; returns (sent, delivered to B's socket layer).</summary>
    private static (long Sent, long Delivered) Flood(NetnsLab lab, Socket sender)
    {
        Tool.RunIn(lab.B, "iptables", "-t", "security", "-Z", "INPUT");
        byte[] datagram = new byte[18];
        long sent = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < s_duration)
        {
            for (int i = 0; i < 256; i++)
            {
                try
                {
                    sender.Send(datagram);
                    sent++;
                }
                catch (SocketException)
                {
                    // ENOBUFS/ECONNREFUSED under flood: not sent.
                }
            }
        }
        Thread.Sleep(300); // let queued packets drain
        string listing = Tool.RunIn(lab.B, "iptables", "-t", "security", "-L", "INPUT", "-v", "-x", "-n");
        string rule = listing.Split('\n').First(l => l.Contains("dpt:5555", StringComparison.Ordinal));
        return (sent, long.Parse(rule.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture));
    }
}
