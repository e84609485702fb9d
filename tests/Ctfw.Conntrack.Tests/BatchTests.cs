using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>ProcessBatch must give exactly what Process gives, packet by packet, in order.</summary>
public class BatchTests
{
    [Fact]
    public void ProcessBatch_MixedTraffic_SameAsProcessOneByOne()
    {
        var rng = new Random(99);
        var arena = new byte[200 * 1600];
        var slices = new List<PacketSlice>();
        int off = 0;
        for (int i = 0; i < 200 * 20; i++)
        {
            if (off + 1600 > arena.Length)
                break;
            IpAddress a = IpAddress.FromV4(0x0A000000u + (uint)rng.Next(4)), b = IpAddress.FromV4(0x0B000000u + (uint)rng.Next(4));
            bool fwd = rng.Next(2) == 0;
            int n = rng.Next(4) switch
            {
                0 => PacketBuilder.Udp(arena.AsSpan(off), false, fwd ? a : b, fwd ? b : a, 53, 53, 20),
                1 => PacketBuilder.Icmp(arena.AsSpan(off), fwd ? a : b, fwd ? b : a, (byte)(fwd ? 8 : 0), 0, 1, 1),
                _ => PacketBuilder.Tcp(arena.AsSpan(off), new TcpSpec
                {
                    Src = fwd ? a : b, Dst = fwd ? b : a, SrcPort = fwd ? (ushort)1000 : (ushort)80, DstPort = fwd ? (ushort)80 : (ushort)1000,
                    Seq = (uint)rng.Next(3) * 10, Ack = (uint)rng.Next(3) * 10, Flags = (TcpFlags)(new[] { 0x02, 0x12, 0x10, 0x11, 0x04, 0x18 })[rng.Next(6)],
                    Window = 1000, PayloadLength = rng.Next(2) * 10,
                }),
            };
            if (rng.Next(10) == 0)
                n = rng.Next(n); // truncated
            slices.Add(new PacketSlice(off, n));
            off += n;
        }
        slices.Add(new PacketSlice(arena.Length + 5, 10)); // out of the buffer: INVALID, not a crash

        var one = new ConntrackEngine(new ConntrackSettings(), 0, hashSeed: 1);
        var batch = new ConntrackEngine(new ConntrackSettings(), 0, hashSeed: 1);
        using ConntrackWorker w1 = one.CreateWorker(), w2 = batch.CreateWorker();
        var results = new Classification[slices.Count];
        w2.Enter();
        w2.ProcessBatch(arena, slices.ToArray(), 1000, PacketContext.Forwarded, results);
        w2.Exit();
        w1.Enter();
        for (int i = 0; i < slices.Count; i++)
        {
            PacketSlice s = slices[i];
            ReadOnlySpan<byte> pkt = s.Offset + s.Length <= arena.Length ? arena.AsSpan(s.Offset, s.Length) : default;
            w1.Process(pkt, 1000, PacketContext.Forwarded, out Classification r);
            Assert.True(r.State == results[i].State && r.Direction == results[i].Direction && r.TcpState == results[i].TcpState && r.Reason == results[i].Reason,
                $"packet {i}: one-by-one {r.State} {r.Direction} {r.TcpState} {r.Reason}, batch {results[i].State} {results[i].Direction} {results[i].TcpState} {results[i].Reason}");
        }
        w1.Exit();
        Assert.Equal(one.Count, batch.Count);
        Assert.True(one.Count > 10);
    }
}
