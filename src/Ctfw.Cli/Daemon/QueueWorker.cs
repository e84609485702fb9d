using Ctfw.Firewall;
using Ctfw.Linux.Nfqueue;
using Ctfw.Linux;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The NFQUEUE adapter of one queue's thread: receive a batch, hand it to the
/// <see cref="FirewallPipeline"/> (which decides every packet), send REJECT answers and add the
/// verdicts in receive order. The thread owns its socket and its pipeline; the decision itself,
/// counters included, lives in the pipeline.
/// </summary>
internal sealed class QueueWorker
{
    private readonly NfqueueSocket _queue;
    private readonly FirewallPipeline _pipeline;
    private readonly RawIpSender _reject;
    private readonly PacketView[] _views;

    // Set by the daemon to end the loop; read once per receive (≤ ReceiveTimeout late). volatile so
    // the JIT cannot hoist the read out of the loop and the stop is seen without a lock.
    private volatile bool _stop;

    public QueueWorker(NfqueueSocket queue, FirewallPipeline pipeline, RawIpSender reject)
    {
        _queue = queue;
        _pipeline = pipeline;
        _reject = reject;
        _views = new PacketView[queue.Options.ReceiveBatchSize];
    }

    public FirewallCounters Counters => _pipeline.Counters;

    public FirewallPipeline Pipeline => _pipeline;

    public NfqueueSocket Queue => _queue;

    /// <summary>The worker thread's kernel id once <see cref="Run"/> started (0 before), for its CPU time in `ctfw stats`.</summary>
    public int ThreadId { get; private set; }

    /// <summary>
    /// Bytes the worker thread allocated since <see cref="Run"/> started, updated after every receive
    /// batch: the per-packet path's allocations (0 in steady state), apart from LOG lines and
    /// interface-name refreshes.
    /// </summary>
    public long AllocatedBytes => Volatile.Read(ref _allocatedBytes); // whole 64-bit value on any platform; read by the control thread

    private long _allocatedBytes;

    /// <summary>Set when the socket became unusable (the loop then ends).</summary>
    public string? Failure { get; private set; }

    public void RequestStop() => _stop = true;

    /// <summary>Runs until <see cref="RequestStop"/>, then verdicts what is still queued and flushes.</summary>
    public void Run(Action onFailure)
    {
        ThreadId = Ctfw.Linux.ResourceUsage.CurrentThreadId();
        (_pipeline.Environment.Interfaces as InterfaceNames)?.Refresh(DaemonClock.NowMs());
        long allocatedAtStart = GC.GetAllocatedBytesForCurrentThread();
        while (!_stop)
        {
            if (!ReceiveBatch())
            {
                onFailure();
                return;
            }
            // Publishes a whole 64-bit value to the control thread (no torn read on 32-bit).
            Volatile.Write(ref _allocatedBytes, GC.GetAllocatedBytesForCurrentThread() - allocatedAtStart);
        }
        // Packets queued before the stop still get their verdict: the socket's close would drop them.
        int drained;
        do
        {
            drained = _queue.Receive(_views);
            if (drained > 0)
                Handle(drained);
        }
        while (drained > 0);
        _queue.Verdicts.Flush();
    }

    private bool ReceiveBatch()
    {
        int n = _queue.Receive(_views);
        if (n < 0)
        {
            Failure = $"NFQUEUE queue {_queue.Queue}: receive failed: {_queue.LastError}";
            return false;
        }
        if (n > 0)
            Handle(n);
        return true;
    }

    private void Handle(int count)
    {
        var batch = new NfqueueBatch(_views, count, _queue.Verdicts, _reject, _pipeline.Counters);
        _pipeline.DecideBatch(ref batch, DaemonClock.NowMs());
    }

    /// <summary>One receive batch as the pipeline sees it.</summary>
    private readonly struct NfqueueBatch : IPacketBatch
    {
        private readonly PacketView[] _views;
        private readonly VerdictBatcher _verdicts;
        private readonly RawIpSender _reject;
        private readonly FirewallCounters _counters;

        public NfqueueBatch(PacketView[] views, int count, VerdictBatcher verdicts, RawIpSender reject, FirewallCounters counters)
        {
            _views = views;
            Count = count;
            _verdicts = verdicts;
            _reject = reject;
            _counters = counters;
        }

        public int Count { get; }

        public ReadOnlySpan<byte> Packet(int index) => _views[index].Payload;

        public PacketMeta Meta(int index) => ToMeta(in _views[index]);

        public void Complete(int index, in FirewallDecision decision, ReadOnlySpan<byte> reply)
        {
            if (!reply.IsEmpty)
            {
                if (_reject.Send(reply) == 0)
                    _counters.RejectsSent++;
                else
                    _counters.RejectSendErrors++;
            }
            _verdicts.Add(_views[index].PacketId, decision.Verdict == FirewallVerdict.Accept ? NfVerdict.Accept : NfVerdict.Drop);
        }
    }

    /// <summary>NFQA_* attributes → the pipeline's view of them.</summary>
    internal static PacketMeta ToMeta(in PacketView view) => new()
    {
        Hook = (PacketHook)view.Hook,
        InInterface = view.InputInterface,
        OutInterface = view.OutputInterface,
        Mark = view.Mark,
        OriginalLength = (int)view.OriginalLength,
        // The kernel verifies at PRE_ROUTING only what the NIC did not vouch for; locally generated
        // and CHECKSUM_PARTIAL packets have no final checksum yet, and a cut payload cannot be summed.
        VerifyChecksums = view.Hook != NfHook.LocalOut && !view.ChecksumNotReady && (view.Flags & PacketFlags.PayloadTruncated) == 0,
    };
}
