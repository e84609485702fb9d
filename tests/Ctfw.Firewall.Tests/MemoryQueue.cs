using Ctfw.Conntrack;
using Ctfw.Firewall;
using Ctfw.Packets;

namespace Ctfw.Firewall.Tests;

/// <summary>
/// An in-memory packet queue in front of a <see cref="FirewallPipeline"/>: the functional tier's
/// stand-in for NFQUEUE. Packets go in with their metadata and get ids; <see cref="Run"/> hands
/// them to the pipeline in receive batches, exactly as the daemon's queue worker does (one
/// <see cref="FirewallPipeline.DecideBatch{TBatch}"/> per batch, one epoch per batch), and records
/// the verdict, the decision and any REJECT answer per id. No root, no sockets.
/// </summary>
internal sealed class MemoryQueue
{
    private readonly List<(byte[] Bytes, PacketMeta Meta)> _pending = [];
    private readonly List<Outcome> _outcomes = [];

    public MemoryQueue(int batchSize = 64)
    {
        BatchSize = batchSize;
    }

    public int BatchSize { get; }

    public IReadOnlyList<Outcome> Outcomes => _outcomes;

    /// <summary>Queues a packet; returns its id (its index in <see cref="Outcomes"/> once run).</summary>
    public int Enqueue(byte[] bytes, in PacketMeta meta)
    {
        _pending.Add((bytes, meta));
        return _outcomes.Count + _pending.Count - 1;
    }

    /// <summary>Verdicts everything queued, <see cref="BatchSize"/> packets per batch; returns the outcomes of this run.</summary>
    public IReadOnlyList<Outcome> Run(FirewallPipeline pipeline, long now)
    {
        int first = _outcomes.Count;
        for (int start = 0; start < _pending.Count; start += BatchSize)
        {
            int count = Math.Min(BatchSize, _pending.Count - start);
            var batch = new Batch(_pending, start, count, _outcomes);
            pipeline.DecideBatch(ref batch, now);
        }
        _pending.Clear();
        return _outcomes.GetRange(first, _outcomes.Count - first);
    }

    public sealed record Outcome(FirewallVerdict Verdict, FirewallDecision Decision, byte[] Reply)
    {
        public CtState State => Decision.Conntrack.State;
    }

    private readonly struct Batch : IPacketBatch
    {
        private readonly List<(byte[] Bytes, PacketMeta Meta)> _packets;
        private readonly int _start;
        private readonly List<Outcome> _outcomes;

        public Batch(List<(byte[] Bytes, PacketMeta Meta)> packets, int start, int count, List<Outcome> outcomes)
        {
            _packets = packets;
            _start = start;
            Count = count;
            _outcomes = outcomes;
        }

        public int Count { get; }

        public ReadOnlySpan<byte> Packet(int index) => _packets[_start + index].Bytes;

        public PacketMeta Meta(int index) => _packets[_start + index].Meta;

        public void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply) =>
            _outcomes.Add(new Outcome(decision.Verdict, decision, reply.ToArray()));
    }
}
