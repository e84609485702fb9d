using System.Buffers.Binary;
using System.Text;
using BenchmarkDotNet.Attributes;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// The FTP helper's per-packet cost: an FTP control connection exchanging `PASV` / `227 …` lines
/// (every reply is read and makes an expectation, replacing the previous one: the helper's most
/// expensive packet), against the same exchange on a connection without the helper. One operation
/// is one packet; sequence and acknowledgement numbers advance in place, checksums not verified.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(30)]
public class FtpHelperBenchmarks
{
    private const int Pairs = 256;
    private static readonly IpAddress Client = IpAddress.FromV4(0x0A000001);
    private static readonly IpAddress Server = IpAddress.FromV4(0x0A000002);

    private ConntrackEngine _engine = null!;
    private ConntrackWorker _worker = null!;
    private Flow _helped = null!;
    private Flow _plain = null!;
    private long _now = 1000;
    private long _notEstablished;

    private sealed class Flow
    {
        public byte[] Pasv = null!;
        public byte[] Reply = null!;
        public int PasvTcp, ReplyTcp;
        public uint ClientSeq = 1000, ServerSeq = 5000;
    }

    [GlobalSetup]
    public void Setup()
    {
        _engine = new ConntrackEngine(new ConntrackSettings(), _now, hashSeed: 1);
        _engine.EnableHelpers();
        _worker = _engine.CreateWorker();
        _helped = Open(40000, CtHelper.Ftp);
        _plain = Open(40001, CtHelper.None);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _worker.Dispose();
        if (_notEstablished != 0)
            throw new InvalidOperationException($"{_notEstablished} packets were not ESTABLISHED");
    }

    [Benchmark(OperationsPerInvoke = 2 * Pairs, Baseline = true)]
    public int WithoutHelper() => Run(_plain);

    [Benchmark(OperationsPerInvoke = 2 * Pairs)]
    public int FtpHelper_EveryReplyExpects() => Run(_helped);

    private int Run(Flow f)
    {
        int established = 0;
        _worker.Enter();
        for (int i = 0; i < Pairs; i++)
        {
            established += Send(f, client: true);
            established += Send(f, client: false);
        }
        _worker.Exit();
        _engine.Maintain(_now);
        _notEstablished += (2 * Pairs) - established;
        return established;
    }

    private int Send(Flow f, bool client)
    {
        byte[] pkt = client ? f.Pasv : f.Reply;
        int tcp = client ? f.PasvTcp : f.ReplyTcp;
        int payload = pkt.Length - tcp - 20;
        BinaryPrimitives.WriteUInt32BigEndian(pkt.AsSpan(tcp + 4), client ? f.ClientSeq : f.ServerSeq);
        BinaryPrimitives.WriteUInt32BigEndian(pkt.AsSpan(tcp + 8), client ? f.ServerSeq : f.ClientSeq);
        if (client)
            f.ClientSeq += (uint)payload;
        else
            f.ServerSeq += (uint)payload;
        _worker.Process(pkt, ++_now, default, out Classification r);
        return r.State == CtState.Established ? 1 : 0;
    }

    private Flow Open(ushort port, CtHelper helper)
    {
        var f = new Flow();
        var ctx = new PacketContext { Helper = helper };
        _worker.Enter();
        _worker.Process(Build(true, port, TcpFlags.Syn, f.ClientSeq - 1, 0, ""), _now, ctx, out _);
        _worker.Process(Build(false, port, TcpFlags.Syn | TcpFlags.Ack, f.ServerSeq - 1, f.ClientSeq, ""), _now, ctx, out _);
        _worker.Process(Build(true, port, TcpFlags.Ack, f.ClientSeq, f.ServerSeq, ""), _now, ctx, out _);
        // One line each way, so that the next segment of each side starts after a '\n'.
        string banner = "220 bench\r\n", user = "USER a\r\n";
        _worker.Process(Build(false, port, TcpFlags.Ack | TcpFlags.Psh, f.ServerSeq, f.ClientSeq, banner), _now, ctx, out _);
        f.ServerSeq += (uint)banner.Length;
        _worker.Process(Build(true, port, TcpFlags.Ack | TcpFlags.Psh, f.ClientSeq, f.ServerSeq, user), _now, ctx, out Classification r);
        f.ClientSeq += (uint)user.Length;
        _worker.Exit();
        if (r.State != CtState.Established)
            throw new InvalidOperationException($"setup: {r.State}");
        f.Pasv = Build(true, port, TcpFlags.Ack | TcpFlags.Psh, 0, 0, "PASV\r\n");
        f.Reply = Build(false, port, TcpFlags.Ack | TcpFlags.Psh, 0, 0, "227 Entering Passive Mode (10,0,0,2,195,80).\r\n");
        f.PasvTcp = f.ReplyTcp = 20;
        return f;
    }

    private static byte[] Build(bool fromClient, ushort port, TcpFlags flags, uint seq, uint ack, string text)
    {
        byte[] data = Encoding.ASCII.GetBytes(text);
        var buf = new byte[256];
        int n = PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromClient ? Client : Server, Dst = fromClient ? Server : Client,
            SrcPort = fromClient ? port : (ushort)21, DstPort = fromClient ? (ushort)21 : port,
            Seq = seq, Ack = ack, Flags = flags, Window = 64000, PayloadLength = data.Length,
        });
        data.CopyTo(buf.AsSpan(n - data.Length));
        return buf[..n];
    }
}
