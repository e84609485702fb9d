using CsCheck;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Property tests (CsCheck): a fresh engine fed any sequence of (possibly mutated) TCP, UDP, ICMP and
/// other packets between a few hosts and ports, with time jumps and housekeeping in between, never
/// throws, classifies every packet (INVALID or dropped exactly when a reason is given), keeps at most
/// nf_conntrack_max entries, and lists exactly the entries it counts, each findable from both
/// directions. The table is small so that table-full and eviction paths run too. CsCheck shrinks a
/// failing sequence; a failure prints the seed that reproduces it.
/// </summary>
public class EnginePropertyTests
{
    private const int Max = 16;

    /// <summary>One step: a packet to build, an optional mutation, and how far the clock moves first.</summary>
    private readonly record struct Step(
        int Kind, bool V6, int Src, int Dst, int SrcPort, int DstPort, int Flags, uint Seq, uint Ack, int Length,
        int MutateAt, byte MutateTo, int Cut, int AdvanceMs, bool Maintain);

    private static readonly Gen<Step> s_step =
        Gen.Select(
            Gen.Select(Gen.Int[0, 5], Gen.Int[0, 3], Gen.Int[0, 2], Gen.Int[0, 2], Gen.Int[1, 3], Gen.Int[1, 3], Gen.Int[0, 255]),
            Gen.Select(Gen.UInt[0, 3000], Gen.UInt[0, 3000], Gen.Int[0, 3], Gen.Int[-1, 80], Gen.Byte, Gen.Int[0, 7]),
            Gen.Select(Gen.Int[0, 200], Gen.Int[0, 50]),
            (a, b, c) => new Step(
                a.Item1, a.Item2 == 0, a.Item3, a.Item4, a.Item5, a.Item6, a.Item7,
                b.Item1, b.Item2, b.Item3 * 300, b.Item4, b.Item5, b.Item6,
                c.Item1 == 200 ? 200_000 : c.Item1, c.Item2 == 0));

    [Fact]
    public void Process_RandomPacketSequences_NeverThrowsAndTableStaysConsistent() =>
        s_step.List[1, 120].Sample(Run, iter: 2_000, threads: 1);

    private static void Run(List<Step> steps)
    {
        IpAddress[] hosts4 = [Harness.Client4, Harness.Server4, IpAddress.FromV4(0x0A630103)];
        IpAddress[] hosts6 = [Harness.Client6, Harness.Server6, Harness.Client6];
        var engine = new ConntrackEngine(Harness.With($"nf_conntrack_max={Max}"), 0, hashSeed: 7);
        using ConntrackWorker worker = engine.CreateWorker();
        byte[] packet = new byte[1600];
        long now = 0;
        foreach (Step s in steps)
        {
            IpAddress[] hosts = s.V6 ? hosts6 : hosts4;
            int n = s.Kind switch
            {
                0 or 1 or 2 => PacketBuilder.Tcp(packet, new TcpSpec
                {
                    V6 = s.V6, Src = hosts[s.Src], Dst = hosts[s.Dst], SrcPort = (ushort)s.SrcPort, DstPort = (ushort)s.DstPort,
                    Seq = s.Seq, Ack = s.Ack, Flags = (TcpFlags)s.Flags, Window = 8000, PayloadLength = s.Length,
                }),
                3 => PacketBuilder.Udp(packet, s.V6, hosts[s.Src], hosts[s.Dst], (ushort)s.SrcPort, (ushort)s.DstPort, s.Length),
                4 => PacketBuilder.IcmpAnyFamily(packet, s.V6, s.V6 ? IpProto.Icmpv6 : IpProto.Icmp, hosts[s.Src], hosts[s.Dst],
                    (byte)s.Flags, 0, (ushort)s.SrcPort, 1, 0),
                _ => PacketBuilder.Generic(packet, s.V6, hosts[s.Src], hosts[s.Dst], (byte)s.Flags, s.Length % 64),
            };
            if (s.MutateAt >= 0 && s.MutateAt < n)
                packet[s.MutateAt] = s.MutateTo;
            if (s.Cut == 0)
                n = s.MutateAt < 0 ? 0 : Math.Min(n, s.MutateAt);
            now += s.AdvanceMs;

            worker.Enter();
            worker.Process(packet.AsSpan(0, n), now, new PacketContext { VerifyChecksums = s.Cut == 1 }, out Classification r);
            worker.Exit();
            // INVALID and dropped packets say why; the others have no reason.
            if (r.State is CtState.Invalid or CtState.Dropped)
                Assert.NotEqual(InvalidReason.None, r.Reason);
            else
                Assert.Equal(InvalidReason.None, r.Reason);
            Assert.InRange(engine.Count, 0, Max);
            if (s.Maintain)
                engine.Maintain(now);
        }
        engine.Maintain(now);

        Assert.InRange(engine.Count, 0, Max);
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
