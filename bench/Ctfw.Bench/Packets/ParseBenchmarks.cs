using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Packets;

namespace Ctfw.Bench.Packets;

/// <summary>
/// <see cref="PacketParser.Parse"/> on three typical packets. One operation parses the same
/// packet 1024 times so the per-call figure is not dominated by the harness.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class ParseBenchmarks
{
    private const int Batch = 1024;
    private readonly byte[] _tcp4 = GC.AllocateArray<byte>(128, pinned: true);
    private readonly byte[] _tcp6 = GC.AllocateArray<byte>(256, pinned: true);
    private readonly byte[] _udp4 = GC.AllocateArray<byte>(128, pinned: true);
    private int _tcp4Length, _tcp6Length, _udp4Length;

    [GlobalSetup]
    public void Setup()
    {
        (_tcp4Length, _tcp6Length, _udp4Length) = SamplePackets.Write(_tcp4, _tcp6, _udp4);
        SamplePackets.Validate(_tcp4.AsSpan(0, _tcp4Length), IpProto.Tcp, expectTimestamp: true);
        SamplePackets.Validate(_tcp6.AsSpan(0, _tcp6Length), IpProto.Tcp, expectTimestamp: true);
        SamplePackets.Validate(_udp4.AsSpan(0, _udp4Length), IpProto.Udp, expectTimestamp: false);
    }

    /// <summary>IPv4 TCP pure ACK with NOP,NOP,TS (52 bytes), the most common packet on an established flow.</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public int Tcp4AckTimestamps() => ParseMany(_tcp4.AsSpan(0, _tcp4Length));

    /// <summary>IPv6 TCP data segment, 100 bytes of payload, NOP,NOP,TS.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Tcp6Data() => ParseMany(_tcp6.AsSpan(0, _tcp6Length));

    /// <summary>IPv4 UDP datagram, 32 bytes of payload.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Udp4() => ParseMany(_udp4.AsSpan(0, _udp4Length));

    private static int ParseMany(ReadOnlySpan<byte> packet)
    {
        int acc = 0;
        for (int i = 0; i < Batch; i++)
        {
            InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket p);
            acc += (int)reason + p.SrcPort; // consume the result so the JIT cannot drop the call
        }
        return acc;
    }
}

/// <summary>The packets of <see cref="ParseBenchmarks"/>, shared with the quick run.</summary>
internal static class SamplePackets
{
    public static (int Tcp4, int Tcp6, int Udp4) Write(Span<byte> tcp4, Span<byte> tcp6, Span<byte> udp4)
    {
        var ack = new TcpSpec
        {
            Src = SyntheticFlows.Client(7),
            Dst = SyntheticFlows.Server(7),
            SrcPort = 40000,
            DstPort = 443,
            Seq = 0x1234_5678,
            Ack = 0x9ABC_DEF0,
            Flags = TcpFlags.Ack,
            Window = 502,
            Timestamp = true,
            TsVal = 123456,
            TsEcr = 654321,
        };
        int a = PacketBuilder.Tcp(tcp4, ack);

        IpAddress c6 = new(0x2001_0db8_0000_0000, 0x10);         // 2001:db8::10
        IpAddress s6 = new(0x2001_0db8_0001_0000, 0x443);        // 2001:db8:1::443
        TcpSpec data = ack;
        data.V6 = true;
        data.Src = c6;
        data.Dst = s6;
        data.Flags = TcpFlags.Ack | TcpFlags.Psh;
        data.PayloadLength = 100;
        int b = PacketBuilder.Tcp(tcp6, data);

        int c = PacketBuilder.Udp(udp4, v6: false, SyntheticFlows.Client(9), SyntheticFlows.Server(9), 5353, 53, 32);
        return (a, b, c);
    }

    public static void Validate(ReadOnlySpan<byte> packet, byte protocol, bool expectTimestamp)
    {
        InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket p);
        if (reason != InvalidReason.None || p.Protocol != protocol || p.TcpOptions.HasTimestamp != expectTimestamp
            || Checksums.VerifyTransport(packet, p) != ChecksumResult.Valid)
            throw new InvalidOperationException($"sample packet did not parse as expected: {reason.Name()}, protocol {p.Protocol}");
    }
}
