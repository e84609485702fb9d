using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Ctfw.Conntrack;
using Ctfw.Linux.Netlink;
using Ctfw.Packets;
using Xunit.Abstractions;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// ctnetlink against the real kernel, in throwaway namespaces (deleted with the lab): entries created
/// and dumped back field by field, a real loopback TCP connection as the kernel tracks it, a switch-over
/// (dump → adopt → flush → export → create) that a live connection survives under an INVALID-drop rule
/// with tcp_loose off, and the rates of a 100 000-entry create and dump.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class CtnetlinkLiveTests(ITestOutputHelper output)
{
    private const CtStatus Replied = CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed;

    private static T InB<T>(NetnsLab lab, Func<T> action) => NetworkNamespace.Run(NetworkNamespace.PathOf(lab.B), action);

    private static ConnTuple Tuple(string src, string dst, byte protocol, ushort srcId, ushort dstId, ushort zone = 0)
    {
        Assert.True(IpAddress.TryParse(src, out IpAddress s, out bool v6));
        Assert.True(IpAddress.TryParse(dst, out IpAddress d, out _));
        return new ConnTuple { Src = s, Dst = d, SrcId = srcId, DstId = dstId, Protocol = protocol, IpVersion = v6 ? (byte)6 : (byte)4, Zone = zone };
    }

    private static KernelConnection Entry(ConnTuple original, CtStatus status, uint timeout, TcpState state = TcpState.None,
        byte scale0 = 0, byte scale1 = 0, byte flags0 = 0, byte flags1 = 0, uint mark = 0)
    {
        Assert.True(original.TryInvert(out ConnTuple reply));
        return new KernelConnection
        {
            Original = original, Reply = reply, Status = status, TimeoutSeconds = timeout, TcpState = state,
            WindowScaleOriginal = scale0, WindowScaleReply = scale1, TcpFlagsOriginal = flags0, TcpFlagsReply = flags1, Mark = mark,
        };
    }

    [Fact]
    public void CreateThenDump_TcpUdpIcmp_EveryFieldAsCreated_SecondCreateAllExist()
    {
        using var lab = new NetnsLab();
        KernelConnection[] entries =
        [
            Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40000, 80), Replied, 3000, TcpState.Established, 7, 6, 0x03, 0x0B, mark: 0x1234),
            // No WINDOW_SCALE on the ORIGINAL side: the kernel ignores both scales (nlattr_to_tcp).
            Entry(Tuple("fd01::1", "fd01::2", IpProto.Tcp, 40001, 443), Replied, 100, TcpState.FinWait, 3, 4, 0x06, 0x03),
            Entry(Tuple("10.1.0.1", "10.1.0.2", IpProto.Tcp, 40002, 22), CtStatus.Confirmed, 60, TcpState.SynSent, 0, 0, 0x01, 0),
            Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5353, 53), Replied, 150),
            Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5354, 53), CtStatus.Confirmed, 25),
            Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5355, 53, zone: 7), CtStatus.SeenReply | CtStatus.Confirmed, 40),
            Entry(Tuple("10.1.0.1", "10.1.0.4", IpProto.Icmp, 0x77, 8 << 8), CtStatus.Confirmed, 30),
            Entry(Tuple("fd01::1", "fd01::4", IpProto.Icmpv6, 0x78, 128 << 8), CtStatus.SeenReply | CtStatus.Confirmed, 30),
            // EXPECTED cannot be asked for (EBUSY): the create leaves it out and the entry is made.
            Entry(Tuple("10.1.0.1", "10.1.0.5", IpProto.Udp, 7000, 7001), CtStatus.Expected | CtStatus.Confirmed, 30),
        ];
        KernelConnection refused = entries[0] with { TcpState = TcpState.Max };

        (CtnetlinkCreateResult first, CtnetlinkCreateResult again, CtnetlinkDumpResult dump) = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            ct.Flush();
            CtnetlinkCreateResult a = ct.Create([.. entries, refused]);
            return (a, ct.Create(entries), ct.Dump());
        });

        output.WriteLine(first.Message);
        output.WriteLine(dump.Message);
        Assert.Equal((entries.Length, 0, 1, 0), (first.Created, first.Existed, first.Failed, first.Unconfirmed));
        Assert.StartsWith("not sent: TCP state 10", first.FirstErrorText, StringComparison.Ordinal);
        Assert.Equal((0, entries.Length, 0), (again.Created, again.Existed, again.Failed));
        Assert.Equal(entries.Length, dump.Entries.Count);
        Assert.Equal((0, 1, false), (dump.Unparsed, dump.Attempts, dump.Incomplete));
        foreach (KernelConnection e in entries)
        {
            KernelConnection k = Assert.Single(dump.Entries, d => d.Original == e.Original);
            string what = e.Original.ToString();
            Assert.Equal(e.Reply, k.Reply);
            Assert.Equal((e.Status & (CtStatus.SeenReply | CtStatus.Assured)) | CtStatus.Confirmed, k.Status);
            Assert.InRange(k.TimeoutSeconds, e.TimeoutSeconds - 2, e.TimeoutSeconds); // created with T, reported rounded down
            Assert.Equal(e.Mark, k.Mark);
            Assert.True(e.TcpState == k.TcpState, what);
            bool scaled = (e.TcpFlagsOriginal & e.TcpFlagsReply & 0x01) != 0;
            Assert.True((scaled ? e.WindowScaleOriginal : 0, scaled ? e.WindowScaleReply : 0) == (k.WindowScaleOriginal, k.WindowScaleReply), what);
            Assert.True((e.TcpFlagsOriginal, e.TcpFlagsReply) == (k.TcpFlagsOriginal, k.TcpFlagsReply), what);
        }
    }

    [Fact]
    public void Create_ReplaceExisting_KernelsReversedEntryGivesWayToOurs()
    {
        using var lab = new NetnsLab();
        // The kernel's view: a UDP flow it saw start from the server (pushes), never answered.
        KernelConnection kernels = Entry(Tuple("10.1.0.3", "10.1.0.1", IpProto.Udp, 53, 5353), CtStatus.Confirmed, 30);
        // ctfw's: the client subscribed, the server answers: ASSURED, the other way round.
        KernelConnection ours = Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5353, 53), Replied, 120);
        KernelConnection fresh = Entry(Tuple("10.1.0.1", "10.1.0.3", IpProto.Udp, 5400, 53), Replied, 120);

        (CtnetlinkCreateResult keep, CtnetlinkCreateResult replace, CtnetlinkDumpResult dump) = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            ct.Flush();
            Assert.Equal(1, ct.Create([kernels]).Created);
            CtnetlinkCreateResult k = ct.Create([ours]);
            return (k, ct.Create([ours, fresh], replaceExisting: true), ct.Dump());
        });

        output.WriteLine(replace.Message);
        Assert.Equal((0, 1, 0), (keep.Created, keep.Existed, keep.Replaced)); // by default the kernel's stays
        Assert.Equal((2, 0, 1, 0), (replace.Created, replace.Existed, replace.Replaced, replace.Failed));
        Assert.Equal(2, dump.Entries.Count);
        KernelConnection now = Assert.Single(dump.Entries, d => d.Original.SrcId == 5353);
        Assert.Equal(ours.Original, now.Original);
        Assert.Equal(Replied, now.Status);
    }

    public static TheoryData<uint, int, uint> StatusOnCreate => new()
    {
        // CTA_STATUS sent, errno of the answer, status the dump then shows (nf_ct_change_status_common).
        { 0x00E, 0, 0x00E },                        // SEEN_REPLY | ASSURED | CONFIRMED
        { 0x006, (int)Errno.EBUSY, 0 },             // without CONFIRMED: differs from what create set
        { 0x00F, (int)Errno.EBUSY, 0 },             // EXPECTED: only through CTA_TUPLE_MASTER
        { 0x20E, (int)Errno.EBUSY, 0 },             // DYING
        { 0x40E, 0, 0x40E },                        // FIXED_TIMEOUT is settable
        { 0x00A, 0, 0x00A },                        // SEEN_REPLY without ASSURED
        { 0x00C, 0, 0x00C },                        // ASSURED without SEEN_REPLY: accepted as it is
        { 0xC1FE, 0, 0x00E },                       // NAT, SEQ_ADJUST, NAT_DONE, OFFLOAD, HW_OFFLOAD: IPS_UNCHANGEABLE_MASK, ignored
        { 0x1000E, 0, 0x00E },                      // bits above __IPS_MAX_BIT: ignored
        { 0x200E, 0, 0x200E },                      // HELPER: not in the mask, set although no helper is attached
    };

    [Theory]
    [MemberData(nameof(StatusOnCreate))]
    public void Create_StatusBits_KernelAcceptsConfirmedPlusTheChangeableOnes(uint status, int errno, uint dumped)
    {
        using var lab = new NetnsLab();
        KernelConnection c = Entry(Tuple("10.2.0.1", "10.2.0.2", IpProto.Udp, 1000, 2000), Replied, 100);
        var message = new byte[CtnetlinkCodec.MaxCreateSize];
        int length = CtnetlinkCodec.WriteCreate(message, 1, c, out _);
        // The codec sends only what a create accepts: patch CTA_STATUS to ask for more.
        var attributes = new NetlinkAttributeReader(message.AsSpan(20, length - 20));
        while (attributes.TryRead(out ushort type, out _) && type != Ctnetlink.Status)
        {
        }
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(20 + attributes.PayloadOffset), status);

        (Errno answer, CtnetlinkDumpResult dump) = InB(lab, () =>
        {
            Errno e = SendOne(message.AsSpan(0, length));
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            return (e, ct.Dump());
        });

        Assert.Equal((Errno)errno, answer);
        if (errno == 0)
            Assert.Equal(dumped, (uint)Assert.Single(dump.Entries).Status);
        else
            Assert.Empty(dump.Entries);
    }

    /// <summary>One raw request on a socket of its own; returns the errno of its acknowledgement.</summary>
    private static unsafe Errno SendOne(ReadOnlySpan<byte> request)
    {
        using SocketHandle socket = Interop.Socket(Tmds.Linux.LibC.AF_NETLINK, Tmds.Linux.LibC.SOCK_RAW | Tmds.Linux.LibC.SOCK_CLOEXEC, Interop.NetlinkNetfilter);
        Assert.False(socket.IsInvalid);
        var kernel = new Interop.SockAddrNl { Family = (ushort)Tmds.Linux.LibC.AF_NETLINK };
        fixed (byte* p = request)
            Assert.Equal(request.Length, (int)Interop.SendTo(socket, p, (nuint)request.Length, 0, &kernel, (uint)sizeof(Interop.SockAddrNl)));
        // ctnetlink handles the request inside sendto: the answer is queued already.
        var answer = new byte[256];
        var source = default(Interop.SockAddrNl);
        uint sourceLength = (uint)sizeof(Interop.SockAddrNl);
        nint n;
        fixed (byte* p = answer)
            n = Interop.RecvFrom(socket, p, (nuint)answer.Length, Tmds.Linux.LibC.MSG_DONTWAIT, &source, &sourceLength);
        Assert.True(n > 0);
        Assert.True(CtnetlinkCodec.TryReadError(answer.AsSpan(0, (int)n), out Errno error));
        return error;
    }

    [Fact]
    public void Dump_RealLoopbackTcp_EstablishedWithTheSocketsWindowScales()
    {
        using var lab = new NetnsLab();
        // Any conntrack match hooks conntrack into the namespace; without one loopback traffic is untracked.
        Tool.RunIn(lab.B, "iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");
        using var pair = InB(lab, () => LoopbackPair.Open());
        pair.RoundTrip(1000);

        CtnetlinkDumpResult dump = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            return ct.Dump();
        });
        (int clientScale, int serverScale) = pair.WindowScales(lab);

        output.WriteLine($"{dump.Message}; ss says client wscale {clientScale}, server {serverScale}");
        KernelConnection k = Assert.Single(dump.Entries, e => e.Original.Protocol == IpProto.Tcp && e.Original.DstId == pair.Port);
        Assert.Equal(pair.ClientPort, k.Original.SrcId);
        Assert.Equal(TcpState.Established, k.TcpState);
        Assert.Equal(Replied, k.Status & Replied);
        Assert.Equal((clientScale, serverScale), (k.WindowScaleOriginal, k.WindowScaleReply));
        Assert.Equal(0x03, k.TcpFlagsOriginal & 0x03); // both SYNs: WINDOW_SCALE | SACK_PERM
        Assert.Equal(0x03, k.TcpFlagsReply & 0x03);
        // ESTABLISHED (432 000 s), or the unacknowledged-data timeout (300 s) when a delayed ACK is still out.
        Assert.True(k.TimeoutSeconds is (>= 290 and <= 300) or (>= 431_990 and <= 432_000), $"timeout {k.TimeoutSeconds}");
    }

    [Fact]
    public void SwitchOver_DumpAdoptFlushExportCreate_LiveConnectionKeepsFlowing_UnrestoredOneIsDropped()
    {
        using var lab = new NetnsLab();
        Tool.RunIn(lab.B, "sysctl", "-q", "-w", "net.netfilter.nf_conntrack_tcp_loose=0");
        foreach (string chain in (string[])["OUTPUT", "INPUT"])
            Tool.RunIn(lab.B, "iptables", "-A", chain, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");
        using var kept = InB(lab, () => LoopbackPair.Open());
        using var lost = InB(lab, () => LoopbackPair.Open());
        kept.RoundTrip(3000);
        lost.RoundTrip(3000);
        Thread.Sleep(300); // delayed ACKs out before the switch-over (one caught between flush and create would only cost a retransmit)

        var engine = new ConntrackEngine(new ConntrackSettings(), 0);
        var clock = Stopwatch.StartNew();
        (CtnetlinkDumpResult before, AdoptResult adopted, int afterFlush, CtnetlinkCreateResult created) = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            CtnetlinkDumpResult d = ct.Dump();
            AdoptResult a = engine.Adopt(d.Entries, 0);
            ct.Flush();
            int left = ct.Dump().Entries.Count;
            // Only the kept connection goes back: the other shows what a missing entry does.
            engine.Kill(0, f => f.Original.DstId == lost.Port);
            return (d, a, left, ct.Create(engine.ExportConnections(0)));
        });
        TimeSpan switchOver = clock.Elapsed;

        output.WriteLine($"{before.Message}; {adopted.Message}; {created.Message}; switch-over {switchOver.TotalMilliseconds:0} ms");
        Assert.Equal(2, adopted.Adopted);
        Assert.Equal(0, afterFlush);
        Assert.Equal((1, 0), (created.Created, created.Failed));

        // The kept connection: both directions pass (the first segment of each re-initialises its window).
        kept.RoundTrip(5000);
        kept.RoundTrip(200);
        Assert.False(lost.TryRoundTrip(100, TimeSpan.FromSeconds(1)), "a connection without its entry must not pass with tcp_loose=0");

        CtnetlinkDumpResult after = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            return ct.Dump();
        });
        KernelConnection k = Assert.Single(after.Entries, e => e.Original.DstId == kept.Port);
        KernelConnection was = Assert.Single(before.Entries, e => e.Original.DstId == kept.Port);
        output.WriteLine($"flags before 0x{was.TcpFlagsOriginal:x2}/0x{was.TcpFlagsReply:x2}, re-created and used 0x{k.TcpFlagsOriginal:x2}/0x{k.TcpFlagsReply:x2}");
        Assert.Equal(TcpState.Established, k.TcpState);
        Assert.Equal((was.WindowScaleOriginal, was.WindowScaleReply), (k.WindowScaleOriginal, k.WindowScaleReply));
        Assert.Equal(Replied, k.Status & Replied);
        Assert.DoesNotContain(after.Entries, e => e.Original.DstId == lost.Port && e.TcpState == TcpState.Established);
        long drops = InvalidDrops(lab);
        output.WriteLine($"INVALID drops: {drops}");
        Assert.True(drops > 0);
    }

    [Fact]
    public void CreateAndDump_HundredThousandEntries_BatchedAndMeasured()
    {
        using var lab = new NetnsLab();
        const int Count = 100_000, Unbatched = 10_000;
        var entries = new List<KernelConnection>(Count);
        for (int i = 0; i < Count; i++)
        {
            ConnTuple t = Tuple("10.9.0.1", "10.9.0.2", IpProto.Udp, (ushort)(1024 + (i % 60000)), (ushort)(1 + (i / 60000)));
            t.Src = IpAddress.FromV4(0x0A090000u + (uint)(i >> 12));
            entries.Add(Entry(t, Replied, 600));
        }
        var single = new CtnetlinkOptions { CreateBatchBytes = CtnetlinkCodec.MaxCreateSize };

        var (batched, dump, flush, oneByOne, batchedSmall) = InB(lab, () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            using CtnetlinkSocket slow = CtnetlinkSocket.Open(single);
            // Warm both paths up (JIT, the namespace's first entries), then measure on an empty table each time.
            Assert.Equal(100, ct.Create(entries.GetRange(0, 100)).Created);
            Assert.Equal(100, slow.Create(entries.GetRange(100, 100)).Created);
            ct.Flush();
            CtnetlinkCreateResult b = ct.Create(entries);
            CtnetlinkDumpResult d = ct.Dump();
            var clock = Stopwatch.StartNew();
            ct.Flush();
            TimeSpan f = clock.Elapsed;
            CtnetlinkCreateResult one = slow.Create(entries.GetRange(0, Unbatched));
            ct.Flush();
            return (b, d, f, one, ct.Create(entries.GetRange(0, Unbatched)));
        });

        output.WriteLine($"batched: {batched.Message} = {Count / batched.Elapsed.TotalSeconds:0} creates/s");
        output.WriteLine($"{Unbatched} one per datagram: {oneByOne.Message} = {Unbatched / oneByOne.Elapsed.TotalSeconds:0} creates/s");
        output.WriteLine($"{Unbatched} batched: {batchedSmall.Message} = {Unbatched / batchedSmall.Elapsed.TotalSeconds:0} creates/s");
        output.WriteLine($"{dump.Message} in {dump.Datagrams} datagrams = {dump.Entries.Count / dump.Elapsed.TotalSeconds:0} entries/s; flush of {Count} {flush.TotalMilliseconds:0} ms");
        Assert.Equal((Count, 0, 0, 0), (batched.Created, batched.Existed, batched.Failed, batched.Unconfirmed));
        Assert.InRange(batched.Datagrams, 1, Count / 100);
        Assert.InRange(batched.ReceiveCalls, Count / 256, Count / 100);
        Assert.Equal((Unbatched, Unbatched), (oneByOne.Created, oneByOne.Datagrams));
        Assert.Equal(Unbatched, batchedSmall.Created);
        Assert.Equal(Count, dump.Entries.Count);
        Assert.Equal(Count, dump.Entries.Select(e => e.Original).Distinct().Count());
        Assert.False(dump.Incomplete);

        // The engine's side of the same switch-over: adopt the dump, export it back.
        var engine = new ConntrackEngine(new ConntrackSettings(), 0);
        var clock = Stopwatch.StartNew();
        AdoptResult adopted = engine.Adopt(dump.Entries, 0);
        TimeSpan adopting = clock.Elapsed;
        clock.Restart();
        List<KernelConnection> exported = engine.ExportConnections(0);
        output.WriteLine($"{adopted.Message} in {adopting.TotalMilliseconds:0} ms; exported {exported.Count} in {clock.Elapsed.TotalMilliseconds:0} ms");
        Assert.Equal((Count, Count), (adopted.Adopted, exported.Count));
    }

    /// <summary>Packets dropped by the INVALID rules, from iptables-save's counters.</summary>
    private static long InvalidDrops(NetnsLab lab)
    {
        long total = 0;
        foreach (string line in Tool.RunIn(lab.B, "iptables-save", "-c").Split('\n'))
        {
            Match m = CounterLine().Match(line);
            if (m.Success)
                total += long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        }
        return total;
    }

    [GeneratedRegex(@"^\[(\d+):\d+\] -A \w+ -m conntrack --ctstate INVALID -j DROP")]
    private static partial Regex CounterLine();

    [GeneratedRegex(@"wscale:(\d+),(\d+)")]
    private static partial Regex WscaleField();

    /// <summary>A TCP connection over 127.0.0.1, both ends created in the calling thread's namespace.</summary>
    private sealed class LoopbackPair : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly Socket _client;
        private readonly Socket _server;

        private LoopbackPair(TcpListener listener, Socket client, Socket server)
        {
            _listener = listener;
            _client = client;
            _server = server;
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int ClientPort => ((IPEndPoint)_client.LocalEndPoint!).Port;

        public static LoopbackPair Open()
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect(listener.LocalEndpoint);
            Socket server = listener.AcceptSocket();
            client.ReceiveTimeout = server.ReceiveTimeout = 5000;
            return new LoopbackPair(listener, client, server);
        }

        /// <summary>Sends <paramref name="bytes"/> each way and reads them back; throws when they do not arrive.</summary>
        public void RoundTrip(int bytes) => Assert.True(TryRoundTrip(bytes, TimeSpan.FromSeconds(5)), $"{bytes} bytes each way did not arrive");

        public bool TryRoundTrip(int bytes, TimeSpan timeout)
        {
            _client.ReceiveTimeout = _server.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            var data = new byte[bytes];
            Random.Shared.NextBytes(data);
            return Transfer(_client, _server, data) && Transfer(_server, _client, data);
        }

        private static bool Transfer(Socket from, Socket to, byte[] data)
        {
            from.Send(data);
            var got = new byte[data.Length];
            int n = 0;
            try
            {
                while (n < got.Length)
                {
                    int r = to.Receive(got, n, got.Length - n, SocketFlags.None);
                    if (r == 0)
                        return false;
                    n += r;
                }
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                return false;
            }
            return got.AsSpan().SequenceEqual(data);
        }

        /// <summary>(scale the client advertised, scale the server advertised), as the client socket reports them.</summary>
        public (int Client, int Server) WindowScales(NetnsLab lab)
        {
            string ss = Tool.RunIn(lab.B, "ss", "-tin", "state", "established", "sport", "=", $":{ClientPort}");
            Match m = WscaleField().Match(ss);
            Assert.True(m.Success, ss);
            // ss prints wscale:<snd_wscale>,<rcv_wscale>: the peer's scale, then our own.
            return (int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        }

        public void Dispose()
        {
            _client.Dispose();
            _server.Dispose();
            _listener.Stop();
        }
    }
}
