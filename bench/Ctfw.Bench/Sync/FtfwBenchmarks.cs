using BenchmarkDotNet.Attributes;
using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Packets;

namespace Ctfw.Bench.Sync;

/// <summary>
/// The sync wire layer off the packet path: one operation is one CT_UPD message encoded, queued,
/// packed into a datagram and, on the other side, received, sequence-tracked, decoded and handed on
/// (ACKs flowing back every 300). Batches of 1024 messages, two sessions in memory, no sockets.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(3)]
[IterationTime(250)]
[MinIterationCount(10)]
[MaxIterationCount(20)]
public class FtfwBenchmarks
{
    private const int Batch = 1024;
    private readonly FtfwSession _a = new(new FtfwOptions { InitialSequence = 1 });
    private readonly FtfwSession _b = new(new FtfwOptions { InitialSequence = 1_000_000 });
    private readonly Link _toB = new();
    private readonly Link _toA = new();
    private readonly Counter _received = new();
    private KernelConnection _c;

    [GlobalSetup]
    public void Setup()
    {
        var original = new ConnTuple
        {
            Src = IpAddress.FromV4(0x0A000001), Dst = IpAddress.FromV4(0x0A000002),
            SrcId = 40000, DstId = 443, Protocol = IpProto.Tcp, IpVersion = 4,
        };
        original.TryInvert(out ConnTuple reply);
        _c = new KernelConnection
        {
            Original = original, Reply = reply, TimeoutSeconds = 432000, TcpState = TcpState.Established,
            Status = CtStatus.SeenReply | CtStatus.Assured | CtStatus.Confirmed,
        };
        _toB.Peer = (_b, _toA, _received);
        _toA.Peer = (_a, _toB, _received);
        for (int i = 0; i < 3; i++)   // handshake
        {
            _a.Tick(i * 1000L, _toB);
            _b.Tick(i * 1000L, _toA);
        }
    }

    /// <summary>IPv4 TCP CT_UPD (60 bytes), 24 to a 1500-byte MTU datagram.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long Tcp4UpdateEndToEnd()
    {
        for (int i = 0; i < Batch; i++)
            _a.Enqueue(SyncMessageType.Update, _c);
        _a.Flush(0, _toB);
        return _received.Count;
    }

    /// <summary>Delivers each datagram straight to the other session.</summary>
    private sealed class Link : IDatagramSink
    {
        public (FtfwSession Session, Link Back, Counter Receiver) Peer;

        public void Send(ReadOnlySpan<byte> datagram) => Peer.Session.Receive(datagram, 0, Peer.Receiver, Peer.Back);
    }

    private sealed class Counter : ISyncReceiver
    {
        public long Count;

        public void OnConnection(SyncMessageType type, in KernelConnection connection) => Count++;

        public void OnResyncRequest()
        {
        }
    }
}
