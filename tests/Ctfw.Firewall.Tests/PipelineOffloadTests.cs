using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Firewall.Tests;

/// <summary>
/// Which accepted packets put their flow forward for offload (issue 15): only what the rules accept
/// without a LOG on the way, with the ruleset generation that accepted it; and the packet path stays
/// allocation-free while it nominates.
/// </summary>
public class PipelineOffloadTests
{
    private const string Rules = """
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -p tcp -m tcp --dport 25 -m conntrack --ctstate ESTABLISHED -j LOG --log-prefix "smtp: "
        -A FORWARD -p tcp -m tcp --dport 23 -m conntrack --ctstate ESTABLISHED -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i lan0 -o wan0 -p tcp -m conntrack --ctstate NEW -j ACCEPT
        COMMIT
        """;

    private static List<OffloadRequest> Drain(Gateway gw)
    {
        var list = new List<OffloadRequest>();
        gw.Engine.Offload!.Drain(list);
        return list;
    }

    private static byte[] Data(ushort port, bool fromClient = true) =>
        Gateway.Tcp(fromClient, 40100, port, TcpFlags.Ack | TcpFlags.Psh, fromClient ? 1001u : 5001u, fromClient ? 5001u : 1001u, payload: 100);

    [Fact]
    public void AcceptedEstablishedData_IsNominated_WithTheRulesetGeneration()
    {
        using var gw = new Gateway(Rules, offload: new OffloadPolicy { DelayMs = 0 }, generation: 7);
        gw.Forward(Gateway.Handshake(40100, 80));
        Assert.Equal(FirewallVerdict.Accept, gw.ForwardOne(Data(80)).Verdict);
        OffloadRequest q = Assert.Single(Drain(gw));
        Assert.Equal(OffloadRequestKind.Add, q.Kind);
        Assert.Equal(7, q.Generation);
        Assert.Equal(80, q.Orig.DstId);
    }

    [Fact]
    public void LoggedOrDropped_IsNotNominated()
    {
        using var gw = new Gateway(Rules, offload: new OffloadPolicy { DelayMs = 0 });
        gw.Forward(Gateway.Handshake(40100, 25));
        MemoryQueue.Outcome logged = gw.ForwardOne(Data(25));
        Assert.Equal(FirewallVerdict.Accept, logged.Verdict);
        Assert.Contains("smtp: ", gw.LogText, StringComparison.Ordinal);
        Assert.Empty(Drain(gw)); // a LOG rule wants to see every packet

        gw.Forward(Gateway.Handshake(40100, 23));
        Assert.Equal(FirewallVerdict.Drop, gw.ForwardOne(Data(23)).Verdict);
        Assert.Empty(Drain(gw));
        Assert.Equal(0, gw.Engine.Snapshot(gw.Now).Count(f => (f.Status & CtStatus.Offload) != 0));
    }

    [Fact]
    public void Nominating_AllocatesNothing()
    {
        // The delay keeps the handshakes' last ACKs from nominating; the batches come after it.
        using var gw = new Gateway(Rules, offload: new OffloadPolicy { DelayMs = 1000 });
        var data = new byte[64][];
        for (int i = 0; i < data.Length; i++)
        {
            ushort port = (ushort)(1000 + i);
            gw.Forward(Gateway.Handshake(40100, port));
            data[i] = Gateway.Tcp(true, 40100, port, TcpFlags.Ack | TcpFlags.Psh, 1001, 5001, payload: 100);
        }
        // Warm up the path on other flows first (JIT), then 64 flows nominated in one batch.
        var warm = new byte[64][];
        for (int i = 0; i < warm.Length; i++)
        {
            ushort port = (ushort)(3000 + i);
            gw.Forward(Gateway.Handshake(40100, port));
            warm[i] = Gateway.Tcp(true, 40100, port, TcpFlags.Ack | TcpFlags.Psh, 1001, 5001, payload: 100);
        }
        Assert.Empty(Drain(gw));
        gw.Now += 2000;
        var warmBatch = new Batch(warm);
        gw.Pipeline.DecideBatch(ref warmBatch, gw.Now);
        Assert.Equal(warm.Length, Drain(gw).Count);
        var batch = new Batch(data);
        long before = GC.GetAllocatedBytesForCurrentThread();
        gw.Pipeline.DecideBatch(ref batch, gw.Now);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(data.Length, batch.Accepted);
        Assert.Equal(data.Length, Drain(gw).Count);
    }

    private struct Batch(byte[][] packets) : IPacketBatch
    {
        public int Accepted;

        public readonly int Count => packets.Length;

        public readonly ReadOnlySpan<byte> Packet(int index) => packets[index];

        public readonly PacketMeta Meta(int index) => new()
        {
            Hook = PacketHook.Forward,
            InInterface = Gateway.Lan,
            OutInterface = Gateway.Wan,
            VerifyChecksums = true,
        };

        public void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply)
        {
            if (decision.Verdict == FirewallVerdict.Accept)
                Accepted++;
        }
    }
}
