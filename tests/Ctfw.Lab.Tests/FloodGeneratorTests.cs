using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using Ctfw.Packets;

namespace Ctfw.Lab.Tests;

/// <summary>ctfw-flood's command line and <see cref="FloodGenerator"/>'s side of it, without privileges.</summary>
public sealed class FloodGeneratorTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);

    private static (int Exit, string StdErr) RunTool(params string[] args)
    {
        using ChildProcess p = ChildProcess.Start([FloodGenerator.ExecutablePath, .. args]);
        int? exit = p.WaitForExit(s_timeout);
        Assert.True(exit is not null, "ctfw-flood did not exit");
        return (exit.Value, p.StdErr);
    }

    [Fact]
    public void ExecutablePath_AfterTheBuild_AnExecutableNextToTheAssembly()
    {
        string path = FloodGenerator.ExecutablePath;
        Assert.Equal(Path.GetDirectoryName(typeof(FloodGenerator).Assembly.Location), Path.GetDirectoryName(path));
        // It runs (the copy into the test output kept the execute bit) and wants its arguments.
        (int exit, string stderr) = RunTool();
        Assert.Equal(2, exit);
        Assert.Contains("--kind is required", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--kind wants syn or udp, not 'ack'", "--kind", "ack", "--dst", "10.0.0.1", "--dport", "80", "--src", "10.0.0.2")]
    [InlineData("--src-net: bad prefix length in '10.99.0.0/33'", "--kind", "syn", "--dst", "10.0.0.1", "--dport", "80", "--src-net", "10.99.0.0/33")]
    [InlineData("--src-net wants ADDR/BITS", "--kind", "syn", "--dst", "10.0.0.1", "--dport", "80", "--src-net", "10.99.0.0")]
    [InlineData("--src-net: '10.99.0/16' is not an IPv4 or IPv6 prefix", "--kind", "syn", "--dst", "10.0.0.1", "--dport", "80", "--src-net", "10.99.0/16")]
    [InlineData("--src-net: bad prefix length in 'fd99::/129'", "--kind", "udp", "--dst", "fd00::1", "--dport", "53", "--src-net", "fd99::/129")]
    [InlineData("different families", "--kind", "syn", "--dst", "fd00::1", "--dport", "80", "--src-net", "10.99.0.0/16")]
    [InlineData("--family 4 does not match", "--kind", "syn", "--family", "4", "--dst", "fd00::1", "--dport", "80", "--src", "fd00::2")]
    [InlineData("--dport wants an integer from 1 to 65535, not '0'", "--kind", "syn", "--dst", "10.0.0.1", "--dport", "0", "--src", "10.0.0.2")]
    [InlineData("--rate wants a number", "--kind", "udp", "--dst", "10.0.0.1", "--dport", "9", "--src", "10.0.0.2", "--rate", "-5")]
    [InlineData("--duration wants a number", "--kind", "udp", "--dst", "10.0.0.1", "--dport", "9", "--src", "10.0.0.2", "--duration", "soon")]
    [InlineData("--size is for --kind udp only", "--kind", "syn", "--dst", "10.0.0.1", "--dport", "80", "--src", "10.0.0.2", "--size", "10")]
    [InlineData("--src or --src-net is required", "--kind", "syn", "--dst", "10.0.0.1", "--dport", "80")]
    [InlineData("unknown or incomplete option '--speed'", "--kind", "syn", "--speed", "9")]
    [InlineData("--burst wants ON_MS/PERIOD_MS with 1 <= ON_MS < PERIOD_MS", "--kind", "udp", "--dst", "10.0.0.1", "--dport", "9", "--src", "10.0.0.2", "--burst", "300/200")]
    [InlineData("--burst wants ON_MS/PERIOD_MS", "--kind", "udp", "--dst", "10.0.0.1", "--dport", "9", "--src", "10.0.0.2", "--burst", "100")]
    [InlineData("give one of --rate and --burst", "--kind", "udp", "--dst", "10.0.0.1", "--dport", "9", "--src", "10.0.0.2", "--burst", "100/500", "--rate", "5")]
    public void Run_BadArgument_ExitsWithTwoAndSaysWhy(string message, params string[] args)
    {
        (int exit, string stderr) = RunTool(args);
        Assert.Equal(2, exit);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.Contains("usage: ctfw-flood", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Arguments_UdpFromANetworkWithDefaults_NoSizeSoTheToolPicksSixtyFourBytePackets()
    {
        var spec = new FloodSpec(FloodKind.Udp, IPAddress.Parse("10.0.0.1"), 9) { SourceNetwork = "10.99.0.0/16" };
        Assert.Equal(
            ["--kind", "udp", "--family", "4", "--dst", "10.0.0.1", "--dport", "9", "--src-net", "10.99.0.0/16", "--duration", "15"],
            FloodGenerator.Arguments(spec));
    }

    [Fact]
    public void Arguments_SynV6FixedSourcePacedMarkedUntilStopped_EveryOptionSpelled()
    {
        var spec = new FloodSpec(FloodKind.Syn, IPAddress.Parse("fd00::1"), 443)
        {
            Source = IPAddress.Parse("fd00::2"),
            RatePps = 20000,
            Duration = Timeout.InfiniteTimeSpan,
            Mark = 7,
        };
        Assert.Equal(
            ["--kind", "syn", "--family", "6", "--dst", "fd00::1", "--dport", "443", "--src", "fd00::2", "--rate", "20000", "--mark", "7"],
            FloodGenerator.Arguments(spec));
    }

    [Fact]
    public void Arguments_Bursts_SpelledAsOnSlashPeriod_AndNotWithARate()
    {
        var spec = new FloodSpec(FloodKind.Udp, IPAddress.Parse("10.0.0.1"), 9) { Source = IPAddress.Parse("10.0.0.2"), Burst = (100, 500) };
        Assert.Equal(
            ["--kind", "udp", "--family", "4", "--dst", "10.0.0.1", "--dport", "9", "--src", "10.0.0.2", "--burst", "100/500", "--duration", "15"],
            FloodGenerator.Arguments(spec));
        Assert.Throws<ArgumentException>(() => FloodGenerator.Arguments(spec with { RatePps = 1000 }));
        Assert.Throws<ArgumentException>(() => FloodGenerator.Arguments(spec with { Burst = (500, 500) }));
    }

    [Fact]
    public void Arguments_BothOrNoSource_Throws()
    {
        var none = new FloodSpec(FloodKind.Syn, IPAddress.Parse("10.0.0.1"), 80);
        Assert.Throws<ArgumentException>(() => FloodGenerator.Arguments(none));
        Assert.Throws<ArgumentException>(() => FloodGenerator.Arguments(none with { Source = IPAddress.Parse("10.0.0.2"), SourceNetwork = "10.99.0.0/16" }));
        Assert.Throws<ArgumentException>(() => FloodGenerator.Arguments(none with { Source = IPAddress.Parse("fd00::2") }));
        Assert.Throws<ArgumentException>(() => FloodGenerator.Arguments(none with { Source = IPAddress.Parse("10.0.0.2"), PayloadBytes = 10 }));
    }

    [Theory]
    [InlineData("sent=123 errors=4 seconds=1.500", true, 123, 4, 1.5)]
    [InlineData("sent=0 errors=0 seconds=0.000", true, 0, 0, 0)]
    [InlineData("sent=12 errors=0", false, 0, 0, 0)]
    [InlineData("sent=-1 errors=0 seconds=1.0", false, 0, 0, 0)]
    [InlineData("sent=1 errors=0 seconds=1.0 extra=2", false, 0, 0, 0)]
    public void FloodResult_TryParse_TheToolsLine(string line, bool ok, long sent, long errors, double seconds)
    {
        Assert.Equal(ok, FloodResult.TryParse(line, out FloodResult result));
        if (ok)
            Assert.Equal(new FloodResult(sent, errors, seconds), result);
    }

    [Fact]
    public async Task WaitAsync_ToolRejectsTheSpec_ThrowsWithItsMessage()
    {
        // The prefix is checked by the tool (before it opens a socket, so this needs no privileges).
        var spec = new FloodSpec(FloodKind.Syn, IPAddress.Parse("10.0.0.1"), 80) { SourceNetwork = "10.99.0.0/40" };
        await using FloodGenerator flood = FloodGenerator.Start(null, spec);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => flood.WaitAsync());
        Assert.Contains("exit 2", e.Message, StringComparison.Ordinal);
        Assert.Contains("bad prefix length in '10.99.0.0/40'", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>
/// Privileged tier: floods between two namespaces joined by a veth, checked at the receiver. The
/// packets must be ones a firewall tracks (valid checksums, the sizes and sources asked for), and
/// the count the tool reports must be what arrived.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class FloodGeneratorLiveTests
{
    private const int Captured = 400;
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(20);

    /// <summary>Sender a, receiver b; b takes packets from sources it has no route to (rp_filter off).</summary>
    private sealed class FloodLab : NamespaceLab
    {
        public const string SenderIf = "fa";
        public const string ReceiverIf = "fb";
        public static readonly IPAddress ReceiverV4 = IPAddress.Parse("10.251.0.2");
        public static readonly IPAddress ReceiverV6 = IPAddress.Parse("fd98:251::2");

        public FloodLab()
            : base("ctfwfl-", "a", "b")
        {
            BuildOrDispose(() =>
            {
                foreach (string ns in Namespaces)
                    Tool.Run("ip", "netns", "add", ns);
                Tool.Run("ip", "link", "add", SenderIf, "netns", Sender, "type", "veth", "peer", "name", ReceiverIf, "netns", Receiver);
                Tool.Run("ip", "-n", Sender, "addr", "add", "10.251.0.1/24", "dev", SenderIf);
                Tool.Run("ip", "-n", Receiver, "addr", "add", "10.251.0.2/24", "dev", ReceiverIf);
                Tool.Run("ip", "-n", Sender, "addr", "add", "fd98:251::1/64", "dev", SenderIf, "nodad");
                Tool.Run("ip", "-n", Receiver, "addr", "add", "fd98:251::2/64", "dev", ReceiverIf, "nodad");
                Tool.RunIn(Receiver, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", $"net.ipv4.conf.{ReceiverIf}.rp_filter=0");
                foreach ((string ns, string dev) in new[] { (Sender, SenderIf), (Receiver, ReceiverIf) })
                {
                    Tool.Run("ip", "-n", ns, "link", "set", "lo", "up");
                    Tool.Run("ip", "-n", ns, "link", "set", dev, "up");
                }
                // Resolves the receiver's neighbour entries first: while ARP/ND is pending the kernel
                // queues only a few packets and drops the rest, which would count as sent but never arrive.
                Tool.RunIn(Sender, "ping", "-c", "1", "-W", "5", ReceiverV4.ToString());
                Tool.RunIn(Sender, "ping", "-6", "-c", "1", "-W", "5", ReceiverV6.ToString());
            });
        }

        public string Sender => Namespaces[0];
        public string Receiver => Namespaces[1];

        /// <summary>The receiving veth's rx_packets (sysfs as the namespace sees it, so under ip netns exec).</summary>
        public long ReceivedPackets() =>
            long.Parse(Tool.Run("ip", "netns", "exec", Receiver, "cat", $"/sys/class/net/{ReceiverIf}/statistics/rx_packets").Trim(), CultureInfo.InvariantCulture);
    }

    private sealed record Observed(FloodResult Result, long Received, List<byte[]> Packets);

    /// <summary>Runs <paramref name="spec"/> from the sender while tcpdump keeps its first packets at the receiver.</summary>
    private static async Task<Observed> FloodAndCapture(FloodLab lab, FloodSpec spec, int capture = Captured)
    {
        string pcap = Path.Combine(Path.GetTempPath(), $"ctfw-flood-{Environment.ProcessId}-{Guid.NewGuid():N}.pcap");
        try
        {
            string filter = $"dst host {spec.Destination} and {(spec.Kind == FloodKind.Syn ? "tcp" : "udp")}";
            // -Z root: tcpdump would otherwise drop to its own user before writing into our temp directory.
            using ChildProcess tcpdump = ChildProcess.StartIn(lab.Receiver, "tcpdump",
                ["tcpdump", "-i", FloodLab.ReceiverIf, "-n", "-U", "-Z", "root", "-s", "256", "-c", capture.ToString(CultureInfo.InvariantCulture), "-w", pcap, filter]);
            Assert.True(tcpdump.WaitForLine(OutputStream.StdErr, "listening on", s_timeout), tcpdump.StdErr);
            long before = lab.ReceivedPackets();
            FloodResult result;
            await using (FloodGenerator flood = FloodGenerator.Start(lab.Sender, spec))
                result = await flood.WaitAsync().WaitAsync(s_timeout);
            long received = lab.ReceivedPackets() - before;
            Assert.True(tcpdump.WaitForExit(s_timeout) == 0, $"tcpdump: {tcpdump.StdErr}");
            return new Observed(result, received, ReadPcap(pcap));
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    /// <summary>The IP packets of a classic little-endian pcap of Ethernet frames (what tcpdump -w writes on a veth).</summary>
    private static List<byte[]> ReadPcap(string path)
    {
        byte[] file = File.ReadAllBytes(path);
        Assert.Equal(0xA1B2C3D4u, BinaryPrimitives.ReadUInt32LittleEndian(file));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(20))); // LINKTYPE_ETHERNET
        List<byte[]> packets = [];
        for (int at = 24; at + 16 <= file.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 8));
            packets.Add(file.AsSpan(at + 16 + 14, length - 14).ToArray());
            at += 16 + length;
        }
        return packets;
    }

    /// <summary>
    /// What every flood packet must be: parsed by ctfw's own parser, IPv4 header and transport checksums
    /// valid, the asked size, to the asked port, from a source inside the prefix. Returns the sources
    /// and source ports seen, so callers can check they vary.
    /// </summary>
    private static (HashSet<IPAddress> Sources, HashSet<int> Ports) AssertValid(List<byte[]> packets, FloodSpec spec, int ipLength)
    {
        Assert.Equal(Captured, packets.Count);
        IPNetwork prefix = IPNetwork.Parse(spec.SourceNetwork!);
        HashSet<IPAddress> sources = [];
        HashSet<int> ports = [];
        foreach (byte[] packet in packets)
        {
            Assert.Equal(InvalidReason.None, PacketParser.Parse(packet, out ParsedPacket p));
            Assert.Equal(ipLength, p.IpTotalLength);
            Assert.Equal(ipLength, packet.Length);
            if (!p.IsV6)
                Assert.Equal(0, Checksums.InternetChecksum(packet.AsSpan(0, p.L3HeaderLength)));
            Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, p));
            Assert.Equal(spec.DestinationPort, p.DstPort);
            Assert.InRange((int)p.SrcPort, 1024, 65535);
            if (spec.Kind == FloodKind.Syn)
            {
                Assert.Equal(IpProto.Tcp, p.Protocol);
                Assert.Equal(TcpFlags.Syn, p.TcpFlags);
            }
            else
            {
                Assert.Equal(IpProto.Udp, p.Protocol);
            }
            var source = new IPAddress(p.IsV6 ? packet.AsSpan(8, 16) : packet.AsSpan(12, 4));
            Assert.True(prefix.Contains(source), $"{source} is outside {prefix}");
            sources.Add(source);
            ports.Add(p.SrcPort);
        }
        return (sources, ports);
    }

    /// <summary>The tool's count against the receiver's: every packet it says it sent arrived, and (a few ARP or ND frames aside) nothing else.</summary>
    private static void AssertArrived(Observed o)
    {
        Assert.True(o.Result.Sent > Captured, $"sent only {o.Result.Sent}");
        Assert.True(o.Result.Errors <= o.Result.Sent / 100, $"{o.Result.Errors} send errors of {o.Result.Sent}");
        Assert.InRange(o.Received, o.Result.Sent * 95 / 100, o.Result.Sent + 50);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(6)]
    public async Task SynFlood_RandomSourcesInAPrefix_ValidSynsFromVariedSourcesAllArrive(int family)
    {
        RequireRoot();
        using var lab = new FloodLab();
        var spec = new FloodSpec(FloodKind.Syn, family == 4 ? FloodLab.ReceiverV4 : FloodLab.ReceiverV6, 80)
        {
            SourceNetwork = family == 4 ? "10.99.0.0/16" : "fd99::/64",
            Duration = TimeSpan.FromSeconds(1),
        };
        Observed o = await FloodAndCapture(lab, spec);
        // 20 bytes of IPv4 or 40 of IPv6, then TCP with the MSS option.
        (HashSet<IPAddress> sources, HashSet<int> ports) = AssertValid(o.Packets, spec, family == 4 ? 44 : 64);
        // 400 draws from 2^16 (or 2^64) sources, and from 64512 ports: a handful of repeats at most.
        Assert.True(sources.Count >= Captured * 95 / 100, $"{sources.Count} distinct sources in {Captured}");
        Assert.True(ports.Count >= Captured * 95 / 100, $"{ports.Count} distinct source ports in {Captured}");
        AssertArrived(o);
    }

    [Fact]
    public async Task UdpFlood_DefaultSize_SixtyFourByteIpv4PacketsWithValidChecksumsAllArrive()
    {
        RequireRoot();
        using var lab = new FloodLab();
        var spec = new FloodSpec(FloodKind.Udp, FloodLab.ReceiverV4, 9)
        {
            SourceNetwork = "10.99.0.0/16",
            Duration = TimeSpan.FromSeconds(1),
        };
        Observed o = await FloodAndCapture(lab, spec);
        (HashSet<IPAddress> sources, _) = AssertValid(o.Packets, spec, 64);
        Assert.True(sources.Count >= Captured * 95 / 100, $"{sources.Count} distinct sources in {Captured}");
        AssertArrived(o);
    }

    [Fact]
    public async Task UdpFlood_Rate20000_SendsWithinFifteenPercentOfIt()
    {
        RequireRoot();
        using var lab = new FloodLab();
        var spec = new FloodSpec(FloodKind.Udp, FloodLab.ReceiverV6, 9)
        {
            SourceNetwork = "fd99::/64",
            PayloadBytes = 100,
            RatePps = 20_000,
            Duration = TimeSpan.FromSeconds(1),
        };
        Observed o = await FloodAndCapture(lab, spec);
        AssertValid(o.Packets, spec, 40 + 8 + 100);
        Assert.InRange(o.Result.Pps, 17_000, 23_000);
        Assert.InRange(o.Result.Seconds, 0.9, 1.2);
        AssertArrived(o);
    }

    [Fact]
    public async Task Stop_UnboundedFlood_EndsItWithACount()
    {
        RequireRoot();
        using var lab = new FloodLab();
        var spec = new FloodSpec(FloodKind.Syn, FloodLab.ReceiverV4, 80)
        {
            Source = IPAddress.Parse("10.251.0.1"),
            RatePps = 1000,
            Duration = Timeout.InfiniteTimeSpan,
        };
        await using FloodGenerator flood = FloodGenerator.Start(lab.Sender, spec);
        await Task.Delay(500);
        flood.Stop();
        FloodResult result = await flood.WaitAsync().WaitAsync(s_timeout);
        Assert.InRange(result.Seconds, 0.3, 5);
        Assert.InRange(result.Sent, 200, 5000);
    }

    private static void RequireRoot()
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged lab tests cannot run: {why}.");
    }
}
