using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// SCTP tracking per packet (<c>SctpTracker</c>). <b>Established</b>: an association exchanging DATA and
/// SACK (32-byte SCTP packets), against a UDP flow exchanging datagrams of the same size; each with
/// and without checksum verification (CRC32c over the whole packet for SCTP, the UDP checksum).
/// <b>Handshake</b>: 256 new associations per operation batch, each INIT, INIT ACK, COOKIE ECHO,
/// COOKIE ACK and ABORT, against 256 TCP connections each SYN, SYN/ACK, ACK and RST; both include
/// their entries' allocation, confirmation and expiry (the clock then jumps past the closed states'
/// timeouts and the housekeeper reaps them). One operation is one packet.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(30)]
public class SctpBenchmarks
{
    private const int Pairs = 256;
    private const int Flows = 256;
    private const uint ClientTag = 0x11111111, ServerTag = 0x22222222;
    private static readonly IpAddress Client = IpAddress.FromV4(0x0A000001);
    private static readonly IpAddress Server = IpAddress.FromV4(0x0A000002);

    private ConntrackEngine _engine = null!;
    private ConntrackWorker _worker = null!;
    private long _now = 1000;
    private long _unexpected;

    private byte[] _data = null!, _sack = null!, _udpOut = null!, _udpBack = null!;
    private byte[][] _sctpOpen = null!, _tcpOpen = null!;

    [GlobalSetup]
    public void Setup()
    {
        _engine = new ConntrackEngine(new ConntrackSettings(), _now, hashSeed: 1);
        _worker = _engine.CreateWorker();

        _data = Sctp(true, 40000, ServerTag, Chunk(0, 0x03, 16));
        _sack = Sctp(false, 40000, ClientTag, Chunk(3, 0, 12));
        _udpOut = Udp(true, 40001, 24);
        _udpBack = Udp(false, 40001, 24);
        _worker.Enter();
        foreach (byte[] p in (byte[][])[Sctp(true, 40000, 0, Init(ClientTag)), Sctp(false, 40000, ClientTag, InitAck(ServerTag)),
            Sctp(true, 40000, ServerTag, Chunk(10, 0, 8)), Sctp(false, 40000, ClientTag, Chunk(11, 0, 0)), _udpOut, _udpBack])
            _worker.Process(p, _now, default, out _);
        _worker.Exit();

        var sctp = new List<byte[]>();
        var tcp = new List<byte[]>();
        for (int i = 0; i < Flows; i++)
        {
            ushort port = (ushort)(20000 + i);
            sctp.Add(Sctp(true, port, 0, Init(ClientTag)));
            sctp.Add(Sctp(false, port, ClientTag, InitAck(ServerTag)));
            sctp.Add(Sctp(true, port, ServerTag, Chunk(10, 0, 8)));
            sctp.Add(Sctp(false, port, ClientTag, Chunk(11, 0, 0)));
            sctp.Add(Sctp(true, port, ServerTag, Chunk(6, 0, 0)));
            tcp.Add(Tcp(true, port, TcpFlags.Syn, 999, 0));
            tcp.Add(Tcp(false, port, TcpFlags.Syn | TcpFlags.Ack, 4999, 1000));
            tcp.Add(Tcp(true, port, TcpFlags.Ack, 1000, 5000));
            tcp.Add(Tcp(true, port, TcpFlags.Rst | TcpFlags.Ack, 1000, 5000));
        }
        _sctpOpen = [.. sctp];
        _tcpOpen = [.. tcp];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _worker.Dispose();
        if (_unexpected != 0)
            throw new InvalidOperationException($"{_unexpected} packets were classified other than the benchmark expects");
    }

    [Benchmark(OperationsPerInvoke = 2 * Pairs, Baseline = true)]
    [BenchmarkCategory("Established")]
    public int Udp_SameSize() => Exchange(_udpOut, _udpBack, verify: false);

    [Benchmark(OperationsPerInvoke = 2 * Pairs)]
    [BenchmarkCategory("Established")]
    public int Udp_SameSize_ChecksumVerified() => Exchange(_udpOut, _udpBack, verify: true);

    [Benchmark(OperationsPerInvoke = 2 * Pairs)]
    [BenchmarkCategory("Established")]
    public int Sctp_DataSack() => Exchange(_data, _sack, verify: false);

    [Benchmark(OperationsPerInvoke = 2 * Pairs)]
    [BenchmarkCategory("Established")]
    public int Sctp_DataSack_CrcVerified() => Exchange(_data, _sack, verify: true);

    [Benchmark(OperationsPerInvoke = Flows * 4, Baseline = true)]
    [BenchmarkCategory("Handshake")]
    public int Tcp_SynSynAckAckRst() => Open(_tcpOpen);

    [Benchmark(OperationsPerInvoke = Flows * 5)]
    [BenchmarkCategory("Handshake")]
    public int Sctp_InitToCookieAckThenAbort() => Open(_sctpOpen);

    private int Exchange(byte[] out_, byte[] back, bool verify)
    {
        var ctx = new PacketContext { VerifyChecksums = verify };
        int established = 0;
        _worker.Enter();
        for (int i = 0; i < Pairs; i++)
        {
            _worker.Process(out_, ++_now, ctx, out Classification a);
            _worker.Process(back, _now, ctx, out Classification b);
            established += (a.State == CtState.Established ? 1 : 0) + (b.State == CtState.Established ? 1 : 0);
        }
        _worker.Exit();
        _engine.Maintain(_now);
        _unexpected += (2 * Pairs) - established;
        return established;
    }

    private int Open(byte[][] packets)
    {
        int tracked = 0;
        _worker.Enter();
        foreach (byte[] p in packets)
        {
            _worker.Process(p, _now, default, out Classification r);
            tracked += r.State is CtState.New or CtState.Established ? 1 : 0;
        }
        _worker.Exit();
        // Past the CLOSED (SCTP, 10 s) and CLOSE (TCP, 10 s) timeouts: the next batch starts on an
        // empty table and the housekeeper's expiry of this one is part of the cost.
        _now += 11_000;
        _engine.Maintain(_now);
        _unexpected += packets.Length - tracked;
        return tracked;
    }

    private static byte[] Init(uint tag)
    {
        byte[] c = Chunk(1, 0, 16);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(4), tag);
        BinaryPrimitives.WriteUInt32BigEndian(c.AsSpan(8), 65536);
        return c;
    }

    private static byte[] InitAck(uint tag)
    {
        byte[] c = Init(tag);
        c[0] = 2;
        return c;
    }

    private static byte[] Chunk(byte type, byte flags, int valueLength)
    {
        var value = new byte[valueLength];
        value.AsSpan().Fill(0x64);
        var buf = new byte[4 + valueLength + 3];
        int n = PacketBuilder.SctpChunk(buf, type, flags, value);
        return buf[..n];
    }

    private static byte[] Sctp(bool fromClient, ushort port, uint vtag, byte[] chunk)
    {
        var buf = new byte[128];
        int n = fromClient
            ? PacketBuilder.Sctp(buf, false, Client, Server, port, 3868, vtag, chunk)
            : PacketBuilder.Sctp(buf, false, Server, Client, 3868, port, vtag, chunk);
        return buf[..n];
    }

    private static byte[] Udp(bool fromClient, ushort port, int payload)
    {
        var buf = new byte[128];
        int n = fromClient
            ? PacketBuilder.Udp(buf, false, Client, Server, port, 3868, payload)
            : PacketBuilder.Udp(buf, false, Server, Client, 3868, port, payload);
        return buf[..n];
    }

    private static byte[] Tcp(bool fromClient, ushort port, TcpFlags flags, uint seq, uint ack)
    {
        var buf = new byte[128];
        int n = PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromClient ? Client : Server, Dst = fromClient ? Server : Client,
            SrcPort = fromClient ? port : (ushort)80, DstPort = fromClient ? (ushort)80 : port,
            Seq = seq, Ack = ack, Flags = flags, Window = 64000,
        });
        return buf[..n];
    }
}
