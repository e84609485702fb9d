using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// The whole classify path, <see cref="ConntrackWorker.Process"/>, on ESTABLISHED traffic: one
/// operation is one packet; each invocation replays a batch of 1024 packets of an
/// <see cref="EstablishedTrace"/> (random flow order, both directions, advancing sequence numbers)
/// inside one epoch Enter/Exit, as the daemon does per receive batch.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class ClassifyBenchmarks
{
    private const int Batch = 1024;
    private static readonly PacketContext s_noChecksum = new() { VerifyChecksums = false };
    private static readonly PacketContext s_checksum = new() { VerifyChecksums = true };

    private EstablishedTrace _trace = null!;
    private long _packets;
    private long _notEstablished;

    [Params(1_000, 100_000)]
    public int Flows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _trace = new EstablishedTrace(Flows);
        // Two checked rounds (one with checksum verification, which also proves the incremental
        // checksum patching of NextRound), so the measured replay starts on a validated state.
        _trace.ValidateRound(verifyChecksums: false);
        _trace.ValidateRound(verifyChecksums: true);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Console.WriteLine($"// classify: {_packets:N0} packets over {_trace.Rounds} rounds, {_notEstablished} not ESTABLISHED, table count {_trace.Engine.Count}");
        if (_notEstablished != 0 || _trace.Engine.Count != Flows)
            throw new InvalidOperationException($"{_notEstablished} packets were not classified ESTABLISHED (table count {_trace.Engine.Count}, expected {Flows})");
    }

    /// <summary>Checksums not verified: locally generated packets, or offload said "verified".</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public int Classify() => Run(s_noChecksum);

    /// <summary>As the daemon at PRE_ROUTING with nf_conntrack_checksum=1 (<see cref="PacketContext.Forwarded"/>).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Classify_VerifyChecksums() => Run(s_checksum);

    /// <summary><see cref="ConntrackWorker.ProcessBatch"/> with prefetching, 64 packets a pass (for batch consumers; `ctfw run` still classifies one packet at a time).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Classify_Batched()
    {
        int established = _trace.ReplayBatched(Batch, s_noChecksum);
        _packets += Batch;
        _notEstablished += Batch - established;
        return established;
    }

    private int Run(in PacketContext ctx)
    {
        int established = _trace.Replay(Batch, ctx);
        _packets += Batch;
        _notEstablished += Batch - established;
        return established;
    }
}
