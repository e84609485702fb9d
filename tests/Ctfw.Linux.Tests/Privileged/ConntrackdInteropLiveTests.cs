using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Linux.Tests.Support;
using Ctfw.Packets;
using Xunit.Abstractions;
using static Ctfw.Linux.Tests.Support.SyncTestKit;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// <see cref="FtfwSession"/> on a plain UDP socket against a real conntrackd 1.4.7 in a throwaway
/// namespace: (1) our CT_NEW messages land in its external cache and, after <c>conntrackd -c</c>, in
/// the kernel table of its namespace; (2) its messages about kernel-tracked traffic decode into the
/// kernel's own tuples, and its CT_DEL arrives; (3) a datagram lost on purpose in each direction is
/// NACKed and resent.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class ConntrackdInteropLiveTests(ITestOutputHelper output)
{
    private const CtStatus Replied = CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed;

    /// <summary>
    /// Until conntrackd answered our HELLO and has had our HELLO_BACK (its messages stop saying HELLO).
    /// Before that, each of its HELLOs empties our resend queue, as conntrackd's do: no loss is repaired.
    /// </summary>
    private static void Handshake(ConntrackdPeer peer, RecordingReceiver receiver)
    {
        FtfwCounters c = peer.Session.Counters;
        Assert.True(peer.Run(receiver, () => c.PeerUp && c.MessagesReceived > c.PeerHellos), $"no handshake with conntrackd:\n{peer.Log}");
    }

    [Fact]
    public void CtfwToConntrackd_NewEntries_InExternalCache_CommittedToKernel()
    {
        using var lab = new NetnsLab();
        using var peer = new ConntrackdPeer(lab, new FtfwSession(new FtfwOptions()), trackTrafficInB: false);
        var receiver = new RecordingReceiver();
        Handshake(peer, receiver);

        KernelConnection[] entries =
        [
            Entry(Tuple("10.200.0.1", "10.200.0.2", IpProto.Tcp, 40000, 80), Replied, 3000, TcpState.Established),
            Entry(Tuple("10.200.0.1", "10.200.0.3", IpProto.Udp, 5353, 53), Replied, 120),
            Entry(Tuple("fd00:200::1", "fd00:200::2", IpProto.Udp, 5354, 53), Replied, 120),
            Entry(Tuple("10.200.0.1", "10.200.0.4", IpProto.Icmp, 0x1234, 8 << 8), CtStatus.SeenReply | CtStatus.Confirmed, 30),
            // ZONE (1.4.7's newest attribute), MARK and both window scales are taken too.
            Entry(Tuple("10.200.0.1", "10.200.0.5", IpProto.Udp, 5355, 53, zone: 7), Replied, 120, mark: 0x2a),
            Entry(Tuple("10.200.0.1", "10.200.0.6", IpProto.Tcp, 40001, 443), Replied, 3000, TcpState.Established) with { WindowScaleOriginal = 7, WindowScaleReply = 9 },
        ];
        foreach (KernelConnection e in entries)
            Assert.True(peer.Session.Enqueue(SyncMessageType.New, e));
        string external = "";
        bool cached = peer.Run(receiver, () =>
        {
            external = peer.Client("-e");
            return external.Contains("sport=40000", StringComparison.Ordinal) && external.Contains("id=4660", StringComparison.Ordinal)
                && external.Contains("sport=5354", StringComparison.Ordinal) && external.Contains("sport=5353", StringComparison.Ordinal)
                && external.Contains("sport=5355", StringComparison.Ordinal) && external.Contains("sport=40001", StringComparison.Ordinal);
        });
        output.WriteLine(external);
        Assert.True(cached, $"external cache:\n{external}\nlog:\n{peer.Log}");
        Assert.Contains("tcp      6 ESTABLISHED src=10.200.0.1 dst=10.200.0.2 sport=40000 dport=80", external, StringComparison.Ordinal);

        peer.Client("-c");
        string kernel = "";
        Assert.True(peer.Run(receiver, () => (kernel = peer.KernelTable()).Split('\n').Count(l => l.Contains("10.200.0.", StringComparison.Ordinal) || l.Contains("fd00:200::", StringComparison.Ordinal)) == entries.Length));
        output.WriteLine(kernel);
        foreach (KernelConnection e in entries)
        {
            string line = kernel.Split('\n').Single(l => l.Contains($"src={e.Original.Src.Format(e.Original.IsV6)} dst={e.Original.Dst.Format(e.Original.IsV6)} ", StringComparison.Ordinal));
            (ConnTuple original, ConnTuple reply) = ParseConntrackLine(line);
            Assert.Equal(e.Original, original);
            Assert.Equal(e.Reply, reply);
            if (e.Original.Protocol == IpProto.Tcp)
                Assert.Contains(" ESTABLISHED ", line, StringComparison.Ordinal);
            Assert.Contains($" mark={e.Mark} ", line, StringComparison.Ordinal);
            Assert.Equal(e.Original.Zone != 0, line.Contains($" zone={e.Original.Zone} ", StringComparison.Ordinal));
        }
        FtfwCounters c = peer.Session.Counters;
        Assert.Equal((0L, 0L, 0L), (c.Malformed, c.NacksReceived, c.QueueOverflows));
        Assert.DoesNotMatch(@"Malformed messages:\s+[1-9]", peer.Client("-s", "network"));
    }

    [Fact]
    public void ConntrackdToCtfw_KernelTrackedTraffic_DecodedAsTheKernelHasIt_DeleteArrives()
    {
        using var lab = new NetnsLab();
        using var peer = new ConntrackdPeer(lab, new FtfwSession(new FtfwOptions()), trackTrafficInB: true);
        var receiver = new RecordingReceiver();
        Handshake(peer, receiver);

        // A TCP connection and a UDP exchange from A to B, tracked by B's kernel.
        using Socket listener = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.B), () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            s.Bind(new IPEndPoint(lab.AddressB4, 8080));
            s.Listen();
            return s;
        });
        using Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.A), () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        client.Connect(new IPEndPoint(lab.AddressB4, 8080));
        using Socket accepted = listener.Accept();
        client.Send("hello"u8);
        Socket udpB = lab.Udp(lab.B, v6: false, bindPort: 5353);
        Socket udpA = lab.Udp(lab.A, v6: false, bindPort: 40053);
        udpA.SendTo("q"u8, new IPEndPoint(lab.AddressB4, 5353));
        byte[] buf = new byte[16];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        udpB.ReceiveFrom(buf, ref from);
        udpB.SendTo("a"u8, from);

        bool Has(byte proto, TcpState state) => receiver.Connections.Any(e => e.Connection.Original.Protocol == proto && e.Connection.TcpState == state);
        Assert.True(peer.Run(receiver, () => Has(IpProto.Tcp, TcpState.Established) && Has(IpProto.Udp, TcpState.None)),
            $"got {receiver.Connections.Count} messages\nlog:\n{peer.Log}");
        string kernel = peer.KernelTable();
        output.WriteLine(kernel);
        foreach (string line in kernel.Split('\n').Where(l => l.StartsWith("tcp", StringComparison.Ordinal) || l.StartsWith("udp", StringComparison.Ordinal)))
        {
            (ConnTuple original, ConnTuple reply) = ParseConntrackLine(line);
            KernelConnection last = receiver.Connections.Last(e => e.Connection.Original == original).Connection;
            Assert.Equal(reply, last.Reply);
            Assert.True(last.Status.HasFlag(CtStatus.Confirmed));
            Assert.True(last.TimeoutSeconds > 0);
        }

        // A RESYNC request: conntrackd answers with a bulk send of its cache.
        int before = receiver.Connections.Count;
        peer.Session.RequestResync(peer.Sink);
        Assert.True(peer.Run(receiver, () => receiver.Connections.Count >= before + 2), "no bulk after RESYNC");

        Tool.RunIn(lab.B, "conntrack", "-D", "-p", "udp", "--dport", "5353");
        Assert.True(peer.Run(receiver, () => receiver.Connections.Any(e => e.Type == SyncMessageType.Delete && e.Connection.Original.DstId == 5353)),
            "no CT_DEL");
        FtfwCounters c = peer.Session.Counters;
        Assert.Equal((0L, 0L), (c.Malformed, c.Unsupported));
        output.WriteLine($"received {c.MessagesReceived} messages in {c.DatagramsReceived} datagrams, acks sent {c.AcksSent}, alives received {c.AlivesReceived}");
    }

    [Fact]
    public void LostDatagrams_BothWays_NackedAndResent()
    {
        using var lab = new NetnsLab();
        using var peer = new ConntrackdPeer(lab, new FtfwSession(new FtfwOptions { Mtu = 576 }), trackTrafficInB: true);
        var receiver = new RecordingReceiver();
        Handshake(peer, receiver);

        // ctfw → conntrackd: the first datagram of CT messages never leaves.
        var lossy = new LossySink(peer.Sink);
        lossy.LoseIf = d => lossy.Lost == 0 && SyncWire.TypeOf(d) == (byte)SyncMessageType.New;
        for (int i = 0; i < 30; i++)
            Assert.True(peer.Session.Enqueue(SyncMessageType.New, Entry(Tuple("10.201.0.1", "10.201.0.2", IpProto.Udp, (ushort)(20000 + i), 53), Replied, 120)));
        peer.Session.Flush(peer.Now, lossy);
        lossy.LoseIf = null;
        Assert.Equal(1, lossy.Lost);
        string external = "";
        Assert.True(peer.Run(receiver, () => Regex.Count(external = peer.Client("-e"), "sport=200[0-9][0-9] ") == 30, 8000, lossy),
            $"nacks {peer.Session.Counters.NacksReceived} resent {peer.Session.Counters.Resent} unacked {peer.Session.Unacknowledged}\n{peer.Client("-s", "network")}\nexternal cache:\n{external}");
        FtfwCounters c = peer.Session.Counters;
        Assert.True(c.NacksReceived >= 1);
        Assert.True(c.Resent >= 1);
        string stats = peer.Client("-s", "network");
        output.WriteLine(stats);
        Assert.Matches(@"Packets lost:\s+[1-9]", stats);

        // conntrackd → ctfw: the kernel in B tracks 20 UDP flows; the first datagram of state messages
        // conntrackd sends about them is thrown away before the session sees it.
        Socket udpB = lab.Udp(lab.B, v6: false, bindPort: 5353);
        for (int i = 0; i < 20; i++)
            lab.Udp(lab.A, v6: false, bindPort: 30000 + i).SendTo("q"u8, new IPEndPoint(lab.AddressB4, 5353));
        long lostBefore = c.SequenceLost;
        int dropped = 0;
        bool DropFirst(ReadOnlySpan<byte> d)
        {
            if (dropped > 0 || !ContainsState(d))
                return false;
            dropped++;
            return true;
        }
        int Flows() => receiver.Connections.Where(e => e.Connection.Original.DstId == 5353).Select(e => e.Connection.Original).Distinct().Count();
        Assert.True(peer.Run(receiver, () => Flows() == 20 && c.SequenceLost > lostBefore, 8000, dropIncoming: DropFirst),
            $"{Flows()} of 20, dropped {dropped}, lost {c.SequenceLost - lostBefore}");
        Assert.Equal(1, dropped);
        Assert.True(c.NacksSent >= 1);
        Assert.Equal((0L, 0L), (c.Malformed, c.Unsupported));
        GC.KeepAlive(udpB);
    }

    private static bool ContainsState(ReadOnlySpan<byte> datagram)
    {
        while (datagram.Length >= SyncWire.HeaderSize)
        {
            int len = SyncWire.LengthOf(datagram);
            if (len < SyncWire.HeaderSize || len > datagram.Length)
                return false;
            if (SyncWire.TypeOf(datagram) <= (byte)SyncMessageType.Delete)
                return true;
            datagram = datagram[len..];
        }
        return false;
    }
}
