using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Linux.Tests.Support;
using Ctfw.Packets;

namespace Ctfw.Linux.Tests;

/// <summary>
/// Real conntrackd 1.4.7 FTFW traffic (tests/data/sync/capture.sh: two conntrackd over a veth link, the
/// active one's kernel tracking TCP, UDP, UDP over IPv6, ICMP, a DNAT and an SNAT flow) decoded by
/// <see cref="SyncCodec"/> and <see cref="FtfwSession"/>; the active namespace's <c>conntrack -L</c>
/// at the time is the oracle for every tuple, NAT reply tuples included.
/// </summary>
public sealed class SyncCaptureTests
{
    private const string Active = "10.99.0.1";

    private static readonly List<(string Source, int SourcePort, int DestPort, byte[] Payload)> s_capture =
        SyncTestKit.ReadUdp(SyncTestKit.DataPath("ftfw-a-to-b.pcap"));

    private static IEnumerable<byte[]> MessagesFrom(string source) =>
        s_capture.Where(d => d.Source == source).SelectMany(d => SyncTestKit.Messages(d.Payload));

    [Fact]
    public void Capture_EveryStateMessageDecodes_TuplesMatchTheKernelTable()
    {
        string[] kernel = File.ReadAllLines(SyncTestKit.DataPath("ftfw-a-to-b.conntrack.txt"));
        Assert.Equal(6, kernel.Length);
        var decoded = new Dictionary<ConnTuple, KernelConnection>();
        int messages = 0;
        foreach (byte[] m in MessagesFrom(Active).Where(m => SyncWire.TypeOf(m) <= 2))
        {
            messages++;
            SyncParse parse = SyncCodec.TryReadConnection(m, out SyncMessageType type, out KernelConnection c, out SyncError error);
            Assert.True(parse == SyncParse.Ok, SyncWire.Reason(error));
            Assert.Equal((byte)type, SyncWire.TypeOf(m));
            if (type != SyncMessageType.Delete)
                decoded[c.Original] = c;
        }
        Assert.True(messages >= 20, $"{messages} state messages");

        foreach (string line in kernel)
        {
            (ConnTuple original, ConnTuple reply) = SyncTestKit.ParseConntrackLine(line);
            Assert.True(decoded.TryGetValue(original, out KernelConnection c), $"not synced: {line}");
            Assert.Equal(reply, c.Reply);
            Assert.True(c.Status.HasFlag(CtStatus.Confirmed));
            if (original.Protocol == IpProto.Tcp)
            {
                Assert.Equal(TcpState.TimeWait, c.TcpState);
                Assert.Equal((uint)120, c.TimeoutSeconds);
                // TCPWindowTracking was on: conntrackd sent both scales.
                Assert.NotEqual(0, c.WindowScaleOriginal);
            }
        }
        // The NAT flows: reply tuples that are not the inverse of the original (DNAT+DPAT, SNAT+SPAT).
        Assert.Equal(2, decoded.Values.Count(c => c.Original.TryInvert(out ConnTuple inv) && inv != c.Reply));
    }

    [Fact]
    public void Capture_StateMessagesReencode_ByteForByte()
    {
        int compared = 0;
        Span<byte> buffer = stackalloc byte[SyncCodec.MaxMessageSize];
        foreach (byte[] m in MessagesFrom(Active).Where(m => SyncWire.TypeOf(m) <= 2))
        {
            Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(m, out SyncMessageType type, out KernelConnection c));
            // conntrackd adds SPAT/DPAT = 0 to ICMP entries once NAT is loaded; ctfw says nothing of ports there.
            if (c.Original.Protocol == IpProto.Icmp)
                continue;
            int n = SyncCodec.WriteConnection(buffer, type, c);
            byte[] expected = (byte[])m.Clone();
            expected[1] = 0;                      // flags (HELLO bits) and seq are the session's
            expected.AsSpan(4, 4).Clear();
            Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(buffer[..n]));
            compared++;
        }
        Assert.True(compared >= 15, $"{compared} compared");
    }

    [Fact]
    public void Capture_IcmpIdInHostOrder_NatPortsInHostOrder_NatAddressesInNetworkOrder()
    {
        KernelConnection icmp = default, snat = default;
        foreach (byte[] m in MessagesFrom(Active).Where(m => SyncWire.TypeOf(m) <= 2))
        {
            Assert.Equal(SyncParse.Ok, SyncCodec.TryReadConnection(m, out _, out KernelConnection c));
            if (c.Original.Protocol == IpProto.Icmp)
                icmp = c;
            else if (c.Original.Protocol == IpProto.Udp && c.Original.DstId == 6000)
                snat = c;
        }
        string icmpLine = File.ReadAllLines(SyncTestKit.DataPath("ftfw-a-to-b.conntrack.txt")).Single(l => l.StartsWith("icmp", StringComparison.Ordinal));
        Assert.Equal(SyncTestKit.ParseConntrackLine(icmpLine).Original, icmp.Original);
        Assert.Equal(SyncTestKit.Tuple("10.98.0.2", "10.98.0.4", IpProto.Udp, 6000, 7000), snat.Reply);
    }

    [Fact]
    public void Capture_FedToSessions_HandshakeAcksResyncAndDeletes_NothingMalformed()
    {
        var asStandby = new FtfwSession(new FtfwOptions { InitialSequence = 1000 });
        var asActive = new FtfwSession(new FtfwOptions { InitialSequence = 5000 });
        var standbyReceiver = new RecordingReceiver();
        var activeReceiver = new RecordingReceiver();
        var sink = new RecordingSink();
        long t = 0;
        foreach ((string source, _, _, byte[] payload) in s_capture)
        {
            t += 10;
            if (source == Active)
                asStandby.Receive(payload, t, standbyReceiver, sink);
            else
                asActive.Receive(payload, t, activeReceiver, sink);
        }

        FtfwCounters s = asStandby.Counters;
        Assert.Equal((0L, 0L, 0L, 0L), (s.Malformed, s.Unsupported, s.SequenceLost, s.SequenceDelayed));
        Assert.Equal(1, s.PeerHellos);
        Assert.True(s.AcksReceived >= 3);
        Assert.Equal(standbyReceiver.Connections.Count, (int)s.ConnectionsReceived);
        Assert.Contains(standbyReceiver.Connections, e => e.Type == SyncMessageType.New);
        Assert.Contains(standbyReceiver.Connections, e => e.Type == SyncMessageType.Update);
        Assert.Equal(3, standbyReceiver.Connections.Count(e => e.Type == SyncMessageType.Delete));

        FtfwCounters a = asActive.Counters;
        Assert.Equal((0L, 0L, 0L, 0L), (a.Malformed, a.Unsupported, a.SequenceLost, a.SequenceDelayed));
        Assert.Equal(1, a.PeerHellos);
        Assert.Equal(1, activeReceiver.ResyncRequests);
        Assert.Equal(1, a.ResyncsReceived);
        Assert.Empty(activeReceiver.Connections);
        Assert.True(a.AlivesReceived >= 1);
    }

    [Fact]
    public void Capture_ConntrackdControlMessages_HaveTheDocumentedShape()
    {
        List<byte[]> fromStandby = MessagesFrom("10.99.0.2").ToList();
        byte[] first = fromStandby[0];
        // The standby's first message: ALIVE with HELLO, 8 bytes, seq = its start time(NULL).
        Assert.Equal((SyncWire.TypeControl, (byte)(SyncWire.FlagAlive | SyncWire.FlagHello), 8),
            (SyncWire.TypeOf(first), SyncWire.FlagsOf(first), first.Length));
        byte[] resync = fromStandby.Single(m => SyncWire.TypeOf(m) == SyncWire.TypeControl && (SyncWire.FlagsOf(m) & SyncWire.FlagResync) != 0);
        Assert.Equal(16, resync.Length);
        Assert.Equal(new byte[8], resync[8..]);   // from = to = 0

        byte[] answer = MessagesFrom(Active).First();
        Assert.Equal(SyncWire.FlagHello | SyncWire.FlagHelloBack | SyncWire.FlagAck, SyncWire.FlagsOf(answer));
        Assert.Equal(SyncWire.SeqOf(first), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(answer.AsSpan(8)));

        // The bulk answer to RESYNC arrives as several messages packed in one datagram.
        Assert.Contains(s_capture, d => d.Source == Active && SyncTestKit.Messages(d.Payload).Count >= 4);
        Assert.All(s_capture, d => Assert.True(d.Payload.Length <= 1500 - SyncWire.UdpOverhead));
    }

    [Fact]
    public void Capture_EveryPrefixAndMutation_NeverThrows_CountsMalformed()
    {
        byte[][] messages = MessagesFrom(Active).Where(m => SyncWire.TypeOf(m) <= 2).ToArray();
        foreach (byte[] m in messages)
        {
            for (int len = 0; len < m.Length; len++)
            {
                byte[] prefix = m[..len];
                Assert.NotEqual(SyncParse.Ok, SyncCodec.TryReadConnection(prefix, out _, out _));
                if (len >= SyncWire.HeaderSize)
                {
                    // The length field agreeing with the cut: it may still parse (e.g. the cut dropped
                    // TIMEOUT), but never past the address.
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(prefix.AsSpan(2), (ushort)len);
                    SyncParse p = SyncCodec.TryReadConnection(prefix, out _, out _, out SyncError why);
                    if (len < SyncWire.HeaderSize + 12)
                        Assert.True(p == SyncParse.Malformed && why is SyncError.MissingAddress or SyncError.AttributeLength, $"{len}: {why}");
                }
            }
        }

        var random = new Random(16);
        var session = new FtfwSession(new FtfwOptions { InitialSequence = 1 });
        var receiver = new RecordingReceiver();
        var sink = new RecordingSink();
        byte[][] datagrams = s_capture.Select(d => d.Payload).ToArray();
        for (int i = 0; i < 20_000; i++)
        {
            byte[] d = (byte[])datagrams[random.Next(datagrams.Length)].Clone();
            int flips = 1 + random.Next(4);
            for (int f = 0; f < flips; f++)
                d[random.Next(d.Length)] ^= (byte)(1 << random.Next(8));
            session.Receive(d.AsSpan(0, random.Next(d.Length + 1)), i, receiver, sink);
        }
        Assert.True(session.Counters.Malformed > 1000, $"{session.Counters.Malformed} malformed");
        Assert.True(session.Counters.SequenceDelayed > 0);
    }
}
