using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>The rescue path obeys the hot-path rules: no managed allocation per packet (nor in the housekeeping that stores tombstones).</summary>
public class RescueAllocationTests
{
    private const int Flows = 1000;

    /// <summary>Per flow: handshake packets, then the late packets (fitting FIN, RST out of window, fitting RST), plus a bare FIN of a never-seen flow.</summary>
    private sealed class Traffic
    {
        public readonly byte[][] Handshakes = new byte[Flows * 3][];
        public readonly byte[][] Late = new byte[Flows * 3][];
        public readonly byte[][] Bare = new byte[Flows][];

        public Traffic(int portBase)
        {
            var buf = new byte[128];
            for (int f = 0; f < Flows; f++)
            {
                ushort port = (ushort)(portBase + f);
                Handshakes[(f * 3) + 0] = Packet(buf, true, port, Syn, 100, 0);
                Handshakes[(f * 3) + 1] = Packet(buf, false, port, Syn | Ack, 500, 101);
                Handshakes[(f * 3) + 2] = Packet(buf, true, port, Ack, 101, 501);
                Late[(f * 3) + 0] = Packet(buf, true, port, Rst, 101 + 9_000_000, 0);       // out of window
                Late[(f * 3) + 1] = f % 2 == 0
                    ? Packet(buf, true, port, Fin | Ack, 101, 501)                            // fits
                    : Packet(buf, false, port, Rst, 501, 0);                                  // fits, from the reply side
                Late[(f * 3) + 2] = Packet(buf, false, port, Ack, 501, 102);                  // then the teardown goes on
                Bare[f] = Packet(buf, true, (ushort)(portBase + Flows + f), Fin | Ack, 7, 9);  // loose
            }
        }

        private static byte[] Packet(byte[] buf, bool fromClient, ushort port, TcpFlags flags, uint seq, uint ack)
        {
            int n = PacketBuilder.Tcp(buf, new TcpSpec
            {
                Src = fromClient ? Harness.Client4 : Harness.Server4,
                Dst = fromClient ? Harness.Server4 : Harness.Client4,
                SrcPort = fromClient ? port : (ushort)80,
                DstPort = fromClient ? (ushort)80 : port,
                Seq = seq, Ack = ack, Flags = flags, Window = 65000,
            });
            return buf[..n];
        }
    }

    /// <summary>
    /// Flows of the first half expire and are reaped (tombstones), those of the second half expire
    /// but are not reaped yet (revived in place); every late packet of every flow, and a bare FIN
    /// per flow in loose mode. Returns the bytes allocated on this thread by the packets and the
    /// housekeeping after the flows are set up.
    /// </summary>
    private static long Run(Traffic traffic, out RescueCounters counters)
    {
        var engine = new ConntrackEngine(Harness.With("nf_conntrack_tcp_timeout_established=60"), 0, hashSeed: 3,
            rescue: new RescueOptions { Mode = RescueMode.Loose });
        engine.CollectExpired = true;
        using ConntrackWorker w = engine.CreateWorker();
        long t0 = 1000, t1 = 31_000;
        for (int i = 0; i < traffic.Handshakes.Length; i++)
            Send(w, traffic.Handshakes[i], i < traffic.Handshakes.Length / 2 ? t0 : t1);
        engine.Maintain(t1);

        long before = GC.GetAllocatedBytesForCurrentThread();
        engine.Maintain(t0 + 61_000);                 // reaps the first half: tombstones + feed
        long late = t1 + 61_000;                      // the second half has expired, not reaped
        for (int i = 0; i < traffic.Late.Length; i++)
            Send(w, traffic.Late[i], late);
        for (int i = 0; i < traffic.Bare.Length; i++)
            Send(w, traffic.Bare[i], late);
        engine.Maintain(late);
        while (engine.TryTakeExpired(out _))
        {
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        counters = engine.RescueStats;
        return allocated;

        static void Send(ConntrackWorker w, byte[] packet, long now)
        {
            w.Enter();
            w.Process(packet, now, PacketContext.Forwarded, out _);
            w.Exit();
        }
    }

    [Fact]
    public void RescuePath_AfterWarmUp_AllocatesZeroBytes()
    {
        var traffic = new Traffic(2000);
        for (int i = 0; i < 3; i++)
            Run(traffic, out _); // JIT and tiering

        long allocated = Run(traffic, out RescueCounters c);

        // The scenario really took every path: tombstones, revivals, refusals, loose entries.
        Assert.Equal(Flows / 2, c.TombstonesStored);
        Assert.Equal(Flows / 2, c.RescuedFin);
        Assert.Equal(Flows / 2, c.RescuedRst);
        Assert.Equal(Flows, c.RejectedOutOfWindow);
        Assert.Equal(Flows, c.RescuedLoose);
        Assert.Equal(0, allocated);
    }
}
