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
internal sealed class QueueWorker : IDisposable, IWorkerProgress
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

    public ushort QueueNumber => _queue.Queue;

    /// <summary>The worker thread's kernel id once <see cref="Run"/> started (0 before), for its CPU time in `ctfw stats`.</summary>
    public int ThreadId { get; private set; }

    /// <summary>
    /// Bytes the worker thread allocated since <see cref="Run"/> started, updated after every receive
    /// batch: the per-packet path's allocations (0 in steady state), apart from LOG lines and
    /// interface-name refreshes.
    /// </summary>
    public long AllocatedBytes => Volatile.Read(ref _allocatedBytes); // whole 64-bit value on any platform; read by the control thread

    private long _allocatedBytes;

    /// <summary>
    /// Rounds of the receive loop so far (one per batch, or per receive timeout when idle), read by
    /// the systemd watchdog: a worker that stops counting is stuck.
    /// </summary>
    public long Loops => Volatile.Read(ref _loops); // whole 64-bit value; read by the watchdog thread

    private long _loops;

    /// <summary>Paused between batches for a hand-over (not stuck).</summary>
    public bool IsPaused => _pauseRequested && _paused.IsSet;

    /// <summary>Set when the socket became unusable (the loop then ends).</summary>
    public string? Failure { get; private set; }

    public void RequestStop() => _stop = true;

    // The upgrade hand-over (see Handover.cs): the control thread asks the worker to pause between
    // batches; the worker flushes its verdicts, sets _paused and waits on _resume. Resume lets it go
    // on; Abandon ends Run at once without reading or answering anything more — the socket and the
    // packets waiting in it now belong to the process that took over.
    private volatile bool _pauseRequested;
    private volatile bool _abandoned;
    private readonly ManualResetEventSlim _paused = new();
    private readonly ManualResetEventSlim _resume = new();

    /// <summary>Asks the worker to stop between two batches with every verdict sent (see <see cref="WaitPaused"/>).</summary>
    public void RequestPause()
    {
        _resume.Reset();
        _paused.Reset();
        _pauseRequested = true;
    }

    /// <summary>Waits until the worker has paused (or ended); false on timeout.</summary>
    public bool WaitPaused(TimeSpan timeout) => _paused.Wait(timeout);

    /// <summary>Lets a paused worker go on receiving.</summary>
    public void Resume()
    {
        _pauseRequested = false;
        _resume.Set();
    }

    /// <summary>Frees the pause events; call after the thread running <see cref="Run"/> has been joined.</summary>
    public void Dispose()
    {
        _paused.Dispose();
        _resume.Dispose();
    }

    /// <summary>Ends a paused worker without touching its socket again.</summary>
    public void Abandon()
    {
        _abandoned = true;
        _stop = true;
        _resume.Set();
    }

    /// <summary>Runs until <see cref="RequestStop"/>, then verdicts what is still queued and flushes (unless abandoned to a takeover).</summary>
    public void Run(Action onFailure)
    {
        ThreadId = Ctfw.Linux.ResourceUsage.CurrentThreadId();
        (_pipeline.Environment.Interfaces as InterfaceNames)?.Refresh(DaemonClock.NowMs());
        long allocatedAtStart = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            if (!Loop(onFailure, allocatedAtStart))
                return;
        }
        finally
        {
            _paused.Set(); // a hand-over waiting for this worker never waits for one that has ended
        }
        if (_abandoned)
            return;
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

    /// <summary>The receive loop; false when the socket failed (after <paramref name="onFailure"/>).</summary>
    private bool Loop(Action onFailure, long allocatedAtStart)
    {
        while (!_stop)
        {
            Volatile.Write(ref _loops, _loops + 1); // only this thread writes it
            // Only with nothing held from the last recvmmsg: a packet read but not answered would
            // otherwise be stranded (the next owner of the socket never sees it again).
            if (_pauseRequested && !_queue.HoldsPackets)
            {
                _queue.Verdicts.Flush();
                _paused.Set();
                _resume.Wait();
                if (_abandoned)
                    return true;
                continue;
            }
            if (!ReceiveBatch())
            {
                onFailure();
                return false;
            }
            // Publishes a whole 64-bit value to the control thread (no torn read on 32-bit).
            Volatile.Write(ref _allocatedBytes, GC.GetAllocatedBytesForCurrentThread() - allocatedAtStart);
        }
        return true;
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
