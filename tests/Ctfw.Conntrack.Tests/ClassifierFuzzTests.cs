using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Random and mutated packets through the whole classifier: never an exception, never a hang, and
/// the table stays consistent (every live entry is findable from both directions).
/// </summary>
public class ClassifierFuzzTests
{
    [Fact]
    public void MutatedPackets_NeverThrow_TableStaysConsistent()
    {
        var rng = new Random(20261122);
        var engine = new ConntrackEngine(Harness.With("nf_conntrack_max=4096"), 0, hashSeed: 7);
        using ConntrackWorker w = engine.CreateWorker();
        byte[] seed = new byte[1600];
        byte[] pkt = new byte[1600];
        IpAddress[] hosts = [Harness.Client4, Harness.Server4, IpAddress.FromV4(0x0A630103)];
        IpAddress[] hosts6 = [Harness.Client6, Harness.Server6];
        long now = 0;
        int[] seen = new int[8];
        for (int i = 0; i < 200_000; i++)
        {
            bool v6 = rng.Next(4) == 0;
            IpAddress src = v6 ? hosts6[rng.Next(2)] : hosts[rng.Next(3)];
            IpAddress dst = v6 ? hosts6[rng.Next(2)] : hosts[rng.Next(3)];
            int n = rng.Next(6) switch
            {
                0 or 1 or 2 => PacketBuilder.Tcp(seed, new TcpSpec
                {
                    V6 = v6, Src = src, Dst = dst, SrcPort = (ushort)rng.Next(1, 4), DstPort = (ushort)rng.Next(1, 4),
                    Seq = (uint)rng.Next(0, 3000), Ack = (uint)rng.Next(0, 3000), Flags = (TcpFlags)rng.Next(256),
                    Window = (ushort)(rng.Next(0, 3) * 1000), PayloadLength = rng.Next(0, 3) * 500,
                    WindowScale = (sbyte)rng.Next(-1, 16), SackPermitted = rng.Next(2) == 0,
                }),
                3 => PacketBuilder.Udp(seed, v6, src, dst, (ushort)rng.Next(1, 4), (ushort)rng.Next(1, 4), rng.Next(0, 100)),
                4 => PacketBuilder.IcmpAnyFamily(seed, v6, v6 ? IpProto.Icmpv6 : IpProto.Icmp, src, dst,
                    (byte)rng.Next(0, 160), (byte)rng.Next(0, 2), (ushort)rng.Next(0, 3), 1, 0),
                _ => PacketBuilder.Generic(seed, v6, src, dst, (byte)rng.Next(256), rng.Next(0, 64)),
            };
            seed.AsSpan(0, n).CopyTo(pkt);
            // Mutate a third of them: flip bits, truncate, or corrupt a length field.
            switch (rng.Next(6))
            {
                case 0:
                    for (int k = rng.Next(1, 4); k > 0; k--)
                        pkt[rng.Next(n)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1:
                    n = rng.Next(n + 1);
                    break;
                case 2:
                    pkt[rng.Next(Math.Min(n, 60))] = (byte)rng.Next(256);
                    break;
            }
            now += rng.Next(0, 50);
            if (rng.Next(1000) == 0)
                now += 200_000; // jump over timeouts now and then
            w.Enter();
            w.Process(pkt.AsSpan(0, n), now, new PacketContext { VerifyChecksums = rng.Next(2) == 0 }, out Classification r);
            w.Exit();
            seen[(int)r.State]++;
            if (r.State == CtState.Invalid)
                Assert.NotEqual(InvalidReason.None, r.Reason);
            else
                Assert.Equal(InvalidReason.None, r.Reason);
            if ((i & 63) == 0)
                engine.Maintain(now);
        }
        engine.Maintain(now);

        Assert.True(seen[(int)CtState.New] > 1000 && seen[(int)CtState.Established] > 1000 && seen[(int)CtState.Invalid] > 1000,
            $"fuzz did not exercise the states: {string.Join(",", seen)}");
        List<FlowInfo> flows = engine.Snapshot(now);
        Assert.Equal(engine.Count, flows.Count);
        foreach (FlowInfo f in flows)
        {
            Assert.True(engine.TryGetFlow(f.Original, now, out FlowInfo a));
            Assert.True(engine.TryGetFlow(f.Reply, now, out FlowInfo b));
            Assert.Equal(f.Original, a.Original);
            Assert.Equal(f.Original, b.Original);
        }
    }
}
