using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using Ctfw.Linux.Firewall;
using Ctfw.Linux.Nfqueue;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// Real NFQUEUE in real network namespaces: the kernel queues, our socket decides, and the far side
/// of the veth (or the sender) shows what the kernel did with each verdict.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class NfqueueLiveTests
{
    private const int Port = 5555;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(5);

    [Fact]
    public void Receive_UdpIntoInput_FieldsMatchWhatTheKernelQueued()
    {
        using var lab = new NetnsLab();
        Tool.RunIn(lab.B, "iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "udp", "-j", "MARK", "--set-mark", "0x2a");
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 3));
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 3 });
        using Socket receiver = lab.Udp(lab.B, v6: false, Port);
        using Socket sender = lab.Udp(lab.A, v6: false);

        sender.SendTo(Encoding.ASCII.GetBytes("hello"), new IPEndPoint(lab.AddressB4, Port));
        List<SeenPacket> seen = QueuePump.Run(queue, 1, s_timeout, (_, _) => (NfVerdict.Accept, null));

        SeenPacket p = Assert.Single(seen);
        Assert.Equal((ushort)0x0800, p.HwProtocol);
        Assert.Equal(NfHook.LocalIn, p.Hook);
        Assert.Equal(2, p.Family);
        Assert.Equal(3, p.Queue);
        Assert.Equal((uint)lab.VethIndexB, p.InputInterface);
        Assert.Equal(0u, p.OutputInterface);
        Assert.Equal(0x2au, p.Mark);
        Assert.True((p.Flags & PacketFlags.HasMark) != 0);
        Assert.True((p.Flags & (PacketFlags.PayloadTruncated | PacketFlags.MessageTruncated | PacketFlags.Malformed)) == 0);
        Assert.Equal(20 + 8 + 5, p.Payload.Length);
        Assert.Equal((uint)p.Payload.Length, p.OriginalLength);
        Assert.Equal(17, p.Payload[9]);                                        // IPPROTO_UDP
        Assert.Equal(lab.AddressA4.GetAddressBytes(), p.Payload[12..16]);
        Assert.Equal(lab.AddressB4.GetAddressBytes(), p.Payload[16..20]);
        Assert.Equal("hello", p.UdpText);
        Assert.Equal(["hello"], NetnsLab.Drain(receiver, 1));
        Assert.Equal(0, queue.Statistics.VerdictErrors);
    }

    [Fact]
    public void Verdicts_DropAcceptAndAcceptWithMark_ReceiverGetsExactlyTheAccepted()
    {
        using var lab = new NetnsLab();
        // Runs after filter INPUT (priority 50 > 0): drops what our verdict marked 0x77.
        Tool.RunIn(lab.B, "iptables", "-t", "security", "-A", "INPUT", "-m", "mark", "--mark", "0x77", "-j", "DROP");
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 4));
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 4 });
        using Socket receiver = lab.Udp(lab.B, v6: false, Port);
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 30; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"m{i}"), new IPEndPoint(lab.AddressB4, Port));
        List<SeenPacket> seen = QueuePump.Run(queue, 30, s_timeout, (p, _) => (int.Parse(p.UdpText[1..], System.Globalization.CultureInfo.InvariantCulture) % 3) switch
        {
            0 => (NfVerdict.Drop, (uint?)null),
            1 => (NfVerdict.Accept, null),
            _ => (NfVerdict.Accept, 0x77u),
        });

        Assert.Equal(30, seen.Count);
        Assert.Equal(Enumerable.Range(0, 10).Select(k => $"m{(3 * k) + 1}").ToHashSet(), NetnsLab.Drain(receiver, 10).ToHashSet());
        NfqueueStatistics stats = queue.Statistics;
        Assert.Equal((30L, 0L, 0L), (stats.VerdictsAdded, stats.VerdictErrors, stats.LostVerdicts));
        Assert.Equal(0, stats.BatchVerdictMessages); // no two neighbours share verdict and mark
    }

    [Fact]
    public void Verdicts_ConsecutiveRuns_TravelAsVerdictBatchAndTheKernelAppliesThem()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 5));
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 5 });
        using Socket receiver = lab.Udp(lab.B, v6: false, Port);
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 20; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"b{i}"), new IPEndPoint(lab.AddressB4, Port));
        // Collect all 20 first, then verdict: the first 10 dropped, the last 10 accepted.
        List<SeenPacket> seen = [];
        var packets = new PacketView[64];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (seen.Count < 20 && clock.Elapsed < s_timeout)
        {
            int n = queue.Receive(packets);
            for (int i = 0; i < n; i++)
                seen.Add(SeenPacket.From(packets[i]));
        }
        Assert.Equal(20, seen.Count);
        foreach (SeenPacket p in seen)
            queue.Verdicts.Add(p.Id, int.Parse(p.UdpText[1..], System.Globalization.CultureInfo.InvariantCulture) < 10 ? NfVerdict.Drop : NfVerdict.Accept);
        Assert.Equal(Errno.None, queue.Verdicts.Flush());

        Assert.Equal(Enumerable.Range(10, 10).Select(k => $"b{k}").ToHashSet(), NetnsLab.Drain(receiver, 10).ToHashSet());
        NfqueueStatistics stats = queue.Statistics;
        Assert.Equal((2L, 2L, 1L, 1L), (stats.VerdictMessages, stats.BatchVerdictMessages, stats.Flushes, stats.SendSyscalls));
        Assert.InRange(stats.ReceiveSyscalls, stats.ReceiveCalls, long.MaxValue);
        queue.Receive(packets); // picks up any NLMSG_ERROR the batches caused
        Assert.Equal(0, queue.Statistics.VerdictErrors);
    }

    [Fact]
    public async Task Ping_AcceptOddDropEven_SenderGetsRepliesOnlyForTheAccepted()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(new IptablesOptions { QueueFirst = 6, Hooks = [IptablesHook.Input], Ipv6 = false, Match = ["-p", "icmp"] });
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 6 });
        using var stop = new CancellationTokenSource();
        Task<List<SeenPacket>> pump = QueuePump.Background(queue, (_, index) => (index % 2 == 1 ? NfVerdict.Accept : NfVerdict.Drop, null), stop.Token);

        IPStatus[] replies = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.A), () =>
        {
            using var ping = new Ping();
            return Enumerable.Range(0, 6).Select(_ => ping.Send(lab.AddressB4, 1000).Status).ToArray();
        });
        await stop.CancelAsync();
        List<SeenPacket> seen = await pump;

        Assert.Equal(
            [IPStatus.TimedOut, IPStatus.Success, IPStatus.TimedOut, IPStatus.Success, IPStatus.TimedOut, IPStatus.Success],
            replies);
        Assert.Equal(6, seen.Count);
        Assert.All(seen, p => Assert.Equal(1, p.Payload[9])); // IPPROTO_ICMP echo requests only
    }

    [Fact]
    public void Receive_UdpOverIpv6_CarriesIpv6Fields()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 7) with { Ipv4 = false, Ipv6 = true });
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 7 });
        using Socket receiver = lab.Udp(lab.B, v6: true, Port);
        using Socket sender = lab.Udp(lab.A, v6: true);

        sender.SendTo(Encoding.ASCII.GetBytes("six"), new IPEndPoint(lab.AddressB6, Port));
        SeenPacket p = Assert.Single(QueuePump.Run(queue, 1, s_timeout, (_, _) => (NfVerdict.Accept, null)));

        Assert.Equal((ushort)0x86DD, p.HwProtocol);
        Assert.Equal(10, p.Family);
        Assert.Equal(6, p.Payload[0] >> 4);
        Assert.Equal(17, p.Payload[6]);                                        // next header UDP
        Assert.Equal(lab.AddressB6.GetAddressBytes(), p.Payload[24..40]);
        Assert.Equal("six", p.UdpText);
        Assert.Equal(["six"], NetnsLab.Drain(receiver, 1));
    }

    [Fact]
    public void Open_QueueAlreadyBoundBySecondSocket_SaysWhoHoldsIt()
    {
        using var lab = new NetnsLab();
        using NfqueueSocket first = OpenInB(lab, new NfqueueOptions { Queue = 8 });

        var e = Assert.Throws<ErrnoException>(() => OpenInB(lab, new NfqueueOptions { Queue = 8 }));

        Assert.Equal(Errno.EBUSY, e.Errno);
        Assert.Contains("queue 8 is already bound by another process", e.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {Environment.ProcessId}", e.Message, StringComparison.Ordinal);
        Assert.Contains($"netlink port {first.PortId}", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void QueueBypass_NoListener_TrafficFlows()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 9));
        using Socket receiver = lab.Udp(lab.B, v6: false, Port);
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 5; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"p{i}"), new IPEndPoint(lab.AddressB4, Port));

        Assert.Equal(5, NetnsLab.Drain(receiver, 5).Count);
        Assert.Contains(rules.InstalledRules, r => r.Contains("--queue-bypass", StringComparison.Ordinal));
    }

    [Fact]
    public void FailClosed_NoListener_TrafficIsDropped()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 9) with { FailClosed = true });
        using Socket receiver = lab.Udp(lab.B, v6: false, Port);
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 5; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"p{i}"), new IPEndPoint(lab.AddressB4, Port));

        Assert.Empty(NetnsLab.Drain(receiver));
    }

    [Fact]
    public void KernelCounters_QueueFull_ReportsQueueDroppedFromProc()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 10));
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 10, MaxQueueLength = 4, CopyRange = 128 });
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 12; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"f{i}"), new IPEndPoint(lab.AddressB4, Port));
        NfqueueKernelCounters before = WaitForCounters(queue, c => c.Queued + c.QueueDropped == 12);

        Assert.Equal((4u, 8u, 0u, queue.PortId, (byte)2, 128u), (before.Queued, before.QueueDropped, before.UserDropped, before.PortId, before.CopyMode, before.CopyRange));
        Assert.Equal(4, QueuePump.Run(queue, 4, s_timeout, (_, _) => (NfVerdict.Drop, null)).Count);
        Assert.True(queue.TryReadKernelCounters(out NfqueueKernelCounters after));
        Assert.Equal(0u, after.Queued);
    }

    [Fact]
    public void Verdict_ForAnIdTheKernelDoesNotHold_IsCountedWithTheKernelsEnoent()
    {
        using var lab = new NetnsLab();
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 11, ReceiveTimeout = TimeSpan.FromMilliseconds(100) });

        queue.Verdicts.Accept(12345);
        Assert.Equal(Errno.None, queue.Verdicts.Flush()); // the send succeeds; the kernel answers on the socket
        Assert.Equal(0, queue.Receive(new PacketView[4]));

        NfqueueStatistics stats = queue.Statistics;
        Assert.Equal((1L, Errno.ENOENT, 12345u), (stats.VerdictErrors, stats.LastVerdictError, stats.LastFailedVerdictId));
    }

    [Fact]
    public async Task Gso_LargeTcpWritesOverVeth_ArriveAsSuperPacketsThatFitOneSlot()
    {
        using var lab = new NetnsLab();
        // Queue at the sender's OUTPUT: TCP hands the stack segments of up to ~64 KiB there (veth
        // advertises TSO), and NFQA_CFG_F_GSO keeps the kernel from splitting them before queueing.
        using IptablesInstaller rules = IptablesInstaller.Install(new IptablesOptions
        {
            QueueFirst = 12, Hooks = [IptablesHook.Output], Ipv6 = false, NetworkNamespace = lab.A,
            Match = ["-p", "tcp", "--dport", "6666"],
        });
        using NfqueueSocket queue = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.A), () => NfqueueSocket.Open(new NfqueueOptions { Queue = 12 }));
        using var stop = new CancellationTokenSource();
        Task<List<SeenPacket>> pump = QueuePump.Background(queue, (_, _) => (NfVerdict.Accept, null), stop.Token);

        const int Total = 4 << 20;
        using Socket listener = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.B), () =>
        {
            var l = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            l.Bind(new IPEndPoint(IPAddress.Any, 6666));
            l.Listen();
            return l;
        });
        using Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.A), () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        Task<long> server = Task.Run(() =>
        {
            using Socket accepted = listener.Accept();
            byte[] buffer = new byte[1 << 16];
            long total = 0;
            int n;
            while ((n = accepted.Receive(buffer)) > 0)
                total += n;
            return total;
        });
        await client.ConnectAsync(new IPEndPoint(lab.AddressB4, 6666));
        byte[] chunk = new byte[256 * 1024];
        for (int sent = 0; sent < Total; sent += chunk.Length)
            await client.SendAsync(chunk);
        client.Shutdown(SocketShutdown.Send);
        Assert.Equal(Total, await server.WaitAsync(s_timeout));
        await stop.CancelAsync();
        List<SeenPacket> seen = await pump;

        SeenPacket largest = seen.MaxBy(p => p.Payload.Length)!;
        Assert.True(largest.Payload.Length > 16_000, $"largest queued packet: {largest.Payload.Length} bytes");
        Assert.True(largest.Flags.HasFlag(PacketFlags.Gso), $"flags of the largest: {largest.Flags}");
        Assert.True(largest.Flags.HasFlag(PacketFlags.ChecksumNotReady), $"flags of the largest: {largest.Flags}");
        Assert.All(seen, p => Assert.Equal(PacketFlags.None, p.Flags & (PacketFlags.MessageTruncated | PacketFlags.PayloadTruncated | PacketFlags.Malformed)));
        Assert.Equal(0, queue.Statistics.TruncatedDatagrams);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReceiveBufferOverflow_IsCountedByTheKernel_AndAsEnobufsUnlessSuppressed(bool noEnobufs)
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 13));
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 13, ReceiveBufferBytes = 4096, NoEnobufs = noEnobufs });
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 200; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"o{i}"), new IPEndPoint(lab.AddressB4, Port));
        // Every id is used once the kernel has processed all 200, delivered or not.
        NfqueueKernelCounters kernel = WaitForCounters(queue, c => c.LastPacketId == 200);
        List<SeenPacket> seen = QueuePump.Run(queue, 200 - (int)kernel.UserDropped, s_timeout, (_, _) => (NfVerdict.Drop, null));

        Assert.True(kernel.UserDropped > 0, $"receive buffer {queue.ReceiveBufferBytes} B held all 200 packets");
        Assert.Equal(200, seen.Count + (int)kernel.UserDropped);
        Assert.Equal(noEnobufs ? 0 : 1, Math.Sign(queue.Statistics.EnobufsErrors));
    }

    [Fact]
    public void FailOpen_QueueFull_KernelAcceptsTheOverflow()
    {
        using var lab = new NetnsLab();
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 14));
        using NfqueueSocket queue = OpenInB(lab, new NfqueueOptions { Queue = 14, MaxQueueLength = 2, FailOpen = true });
        using Socket receiver = lab.Udp(lab.B, v6: false, Port);
        using Socket sender = lab.Udp(lab.A, v6: false);

        for (int i = 0; i < 10; i++)
            sender.SendTo(Encoding.ASCII.GetBytes($"o{i}"), new IPEndPoint(lab.AddressB4, Port));
        List<string> bypassed = NetnsLab.Drain(receiver, 8); // nobody has read the queue yet
        List<SeenPacket> seen = QueuePump.Run(queue, 2, s_timeout, (_, _) => (NfVerdict.Accept, null));

        Assert.Equal(8, bypassed.Count);
        Assert.Equal(["o0", "o1"], seen.Select(p => p.UdpText));
        Assert.Equal(["o0", "o1"], NetnsLab.Drain(receiver, 2));
        Assert.True(queue.TryReadKernelCounters(out NfqueueKernelCounters kernel));
        Assert.Equal(0u, kernel.QueueDropped);
    }

    [Fact]
    public void Conntrack_Option_AttachesTheKernelsEntryAndCtinfo_OrSaysWhatTheKernelLacks()
    {
        using var lab = new NetnsLab();
        // Any conntrack match turns conntrack on in B.
        Tool.RunIn(lab.B, "iptables", "-t", "mangle", "-A", "PREROUTING", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");
        using IptablesInstaller rules = lab.InstallInB(UdpRule(queue: 15));
        var options = new NfqueueOptions { Queue = 15, Conntrack = true };

        bool? supported = KernelHasNetlinkGlueCt();
        if (supported == false)
        {
            var e = Assert.Throws<ErrnoException>(() => OpenInB(lab, options));
            Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
            Assert.Contains("CONFIG_NETFILTER_NETLINK_GLUE_CT", e.Message, StringComparison.Ordinal);
            return;
        }
        using NfqueueSocket queue = OpenInB(lab, options);
        using Socket sender = lab.Udp(lab.A, v6: false);

        sender.SendTo(Encoding.ASCII.GetBytes("ct"), new IPEndPoint(lab.AddressB4, Port));
        SeenPacket p = Assert.Single(QueuePump.Run(queue, 1, s_timeout, (_, _) => (NfVerdict.Accept, null)));

        Assert.True(p.Flags.HasFlag(PacketFlags.HasConntrack | PacketFlags.HasConntrackInfo), p.Flags.ToString());
        Assert.Equal(2u, p.ConntrackInfo); // IP_CT_NEW
        Assert.NotEmpty(p.ConntrackAttributes);
        Assert.Equal(1, p.ConntrackAttributes[2] | ((p.ConntrackAttributes[3] & 0x3F) << 8)); // CTA_TUPLE_ORIG comes first
    }

    /// <summary>
    /// NFQA_CFG_F_CONNTRACK needs CONFIG_NETFILTER_NETLINK_GLUE_CT; the running kernel's config says
    /// whether it is there (null when no config is readable: then the option must simply work).
    /// </summary>
    private static bool? KernelHasNetlinkGlueCt()
    {
        string text;
        string boot = $"/boot/config-{File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}";
        if (File.Exists("/proc/config.gz"))
        {
            using var config = new System.IO.Compression.GZipStream(File.OpenRead("/proc/config.gz"), System.IO.Compression.CompressionMode.Decompress);
            using var reader = new StreamReader(config);
            text = reader.ReadToEnd();
        }
        else if (File.Exists(boot))
        {
            text = File.ReadAllText(boot);
        }
        else
        {
            return null;
        }
        return text.Contains("CONFIG_NETFILTER_NETLINK_GLUE_CT=y", StringComparison.Ordinal)
            || text.Contains("CONFIG_NETFILTER_NETLINK_GLUE_CT=m", StringComparison.Ordinal);
    }

    /// <summary>Polls nfnetlink_queue until <paramref name="until"/> holds (the kernel may still be working through softirq backlog).</summary>
    private static NfqueueKernelCounters WaitForCounters(NfqueueSocket queue, Func<NfqueueKernelCounters, bool> until)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        NfqueueKernelCounters counters;
        while (!queue.TryReadKernelCounters(out counters) || !until(counters))
        {
            Assert.True(clock.Elapsed < s_timeout, $"nfnetlink_queue never reached the expected state; last: {counters}");
            Thread.Sleep(20);
        }
        return counters;
    }

    internal static IptablesOptions UdpRule(ushort queue) => new()
    {
        QueueFirst = queue,
        Hooks = [IptablesHook.Input],
        Ipv6 = false,
        Match = ["-p", "udp", "--dport", Port.ToString(System.Globalization.CultureInfo.InvariantCulture)],
    };

    internal static NfqueueSocket OpenInB(NetnsLab lab, NfqueueOptions options) =>
        NetworkNamespace.Run(NetworkNamespace.PathOf(lab.B), () => NfqueueSocket.Open(options));
}
