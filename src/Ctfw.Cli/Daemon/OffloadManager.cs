using System.Diagnostics;
using System.Globalization;
using Ctfw.Conntrack;
using Ctfw.Linux;
using Ctfw.Linux.Nftables;
using Ctfw.Linux.Offload;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The offload manager (issue 15, docs/OFFLOAD.md): one thread, the only user of the nf_tables
/// socket. Every few milliseconds it takes the workers' requests (flows to offload, offloaded flows
/// that left ESTABLISHED) and applies them in one transaction; once a second (and before a listing)
/// it dumps the sets and tells the engine what the kernel forwarded (<see cref="ConntrackEngine.ObserveOffloaded"/>),
/// which keeps offloaded entries alive while the kernel forwards them and expires idle ones after
/// their elements are gone. Control requests (flush, delete, reload) run on this thread too and are
/// waited for, so their elements are out of the kernel before the entries die. Nothing here is on
/// the packet path: workers only write their rings.
/// </summary>
internal sealed class OffloadManager : IDisposable
{
    private const int LoopMs = 10;
    private const int ObserveIntervalMs = 1000;
    private static readonly TimeSpan s_commandTimeout = TimeSpan.FromSeconds(10);

    private readonly ConntrackEngine _engine;
    private readonly EngineOffload _hub;
    private readonly OffloadSets _sets;
    private readonly TextWriter _err;
    private readonly Dictionary<ConnTuple, Tracked> _flows = [];
    private readonly Dictionary<(byte Protocol, NftFlowKey Key), (Tracked Flow, int Dir)> _byKey = [];
    private readonly List<OffloadRequest> _requests = [];
    private const int RefusedHoldMs = 10_000;
    private readonly Queue<(OffloadedFlow Flow, long Until)> _refused = new();
    private readonly List<Tracked> _adding = [];
    private readonly HashSet<ConnTuple> _addingTuples = [];
    private readonly List<Tracked> _removing = [];
    private readonly List<ConnTuple> _addTuples = [];
    private readonly List<ConnTuple> _removeTuples = [];
    private readonly Queue<Command> _commands = new();
    private Thread? _thread;
    private volatile bool _stop;
    private int _minGeneration;
    private long _nextObserveMs;
    private long _lastObservedMs = long.MinValue / 2;
    private long _lastErrorLogMs = long.MinValue;
    private long _errorsSinceLog;

    private sealed class Tracked(OffloadedFlow flow, NftFlowKey keyOriginal, NftFlowKey keyReply)
    {
        public OffloadedFlow Flow { get; } = flow;
        public NftFlowKey KeyOriginal { get; } = keyOriginal;
        public NftFlowKey KeyReply { get; } = keyReply;
        public NftElementState? SeenOriginal;
        public NftElementState? SeenReply;
        public bool Removing;
        public bool Idle;
    }

    private sealed class Command(Action<long> run)
    {
        public Action<long> Run { get; } = run;
        public ManualResetEventSlim Done { get; } = new();
    }

    public OffloadManager(ConntrackEngine engine, OffloadSets sets, TextWriter err)
    {
        _engine = engine;
        _hub = engine.Offload ?? throw new InvalidOperationException("offload is not enabled in the engine");
        _sets = sets;
        _err = err;
    }

    // Counters: written by the manager thread only (Volatile for whole 64-bit reads by `stats`).
    private long _adds, _removes, _expired, _errors, _discarded, _packets, _bytes, _observations, _batches, _lastObserveUs, _flowCount;

    public long Flows => Volatile.Read(ref _flowCount);
    public long Adds => Volatile.Read(ref _adds);
    public long Removes => Volatile.Read(ref _removes);
    public long Expired => Volatile.Read(ref _expired);
    public long Errors => Volatile.Read(ref _errors);
    public long Discarded => Volatile.Read(ref _discarded);
    public long Packets => Volatile.Read(ref _packets);
    public long Bytes => Volatile.Read(ref _bytes);
    public long Observations => Volatile.Read(ref _observations);
    public long Batches => Volatile.Read(ref _batches);
    public long LastObserveUs => Volatile.Read(ref _lastObserveUs);

    public void Start()
    {
        _nextObserveMs = DaemonClock.NowMs() + ObserveIntervalMs;
        _thread = new Thread(Loop) { Name = "ctfw-offload", IsBackground = true };
        _thread.Start();
    }

    private void Loop()
    {
        while (!_stop)
        {
            // A plain sleep: a ManualResetEventSlim wait spins first, 200 times a second.
            Thread.Sleep(LoopMs);
            try
            {
                long now = DaemonClock.NowMs();
                RunCommands(now);
                ReleaseRefused(now);
                TakeRequests(now);
                if (now - _nextObserveMs >= 0)
                    Observe(now);
            }
            catch (Exception e) when (e is ErrnoException or InvalidOperationException or IOException)
            {
                // The socket broke or a batch could not be built: say so (rate-limited) and go on;
                // what is offloaded stays offloaded and is observed again next time.
                Failed(DaemonClock.NowMs(), $"offload: {e.Message}");
            }
        }
    }

    /// <summary>Runs <paramref name="action"/> on the manager thread and waits for it (control requests).</summary>
    private bool Call(Action<long> action)
    {
        if (_thread is null || _stop)
            return false;
        var command = new Command(action);
        lock (_commands)
            _commands.Enqueue(command); // taken within one loop period (10 ms)
        return command.Done.Wait(s_commandTimeout);
    }

    private void RunCommands(long now)
    {
        while (true)
        {
            Command? c;
            lock (_commands)
            {
                if (!_commands.TryDequeue(out c))
                    return;
            }
            try
            {
                c.Run(now);
            }
            finally
            {
                c.Done.Set();
            }
        }
    }

    /// <summary>
    /// Takes every flow out of the kernel's sets and waits until it is done (flush, reload). Requests
    /// that an older ruleset than <paramref name="minGeneration"/> accepted are discarded from then on.
    /// </summary>
    public bool RemoveAll(int minGeneration = int.MinValue) => Call(now =>
    {
        if (minGeneration > _minGeneration)
            _minGeneration = minGeneration;
        TakeRequests(now); // what is queued now was accepted before: handled (or discarded) first
        RemoveFlows([.. _flows.Values], now);
    });

    /// <summary>Takes the flows whose ORIGINAL tuple <paramref name="match"/> accepts out of the sets and waits (conntrack -D).</summary>
    public bool Remove(Func<ConnTuple, bool> match) => Call(now =>
    {
        TakeRequests(now);
        RemoveFlows([.. _flows.Values.Where(t => match(t.Flow.Orig))], now);
    });

    /// <summary>
    /// Reads the counters now (before a listing), so `conntrack -L` shows what the kernel forwarded
    /// until now — unless they were read in the last 200 ms (`ctfw top` lists every second; a dump
    /// of a large table is not free).
    /// </summary>
    public bool Sync() => Call(now =>
    {
        if (now - _lastObservedMs >= 200)
            Observe(now);
    });

    private void TakeRequests(long now)
    {
        _requests.Clear();
        _hub.Drain(_requests);
        if (_requests.Count == 0)
            return;
        _adding.Clear();
        _addingTuples.Clear();
        _removing.Clear();
        foreach (OffloadRequest r in _requests)
        {
            if (r.Kind == OffloadRequestKind.Add)
            {
                if (r.Generation < _minGeneration)
                {
                    _engine.AbandonOffload(r.Entry, r.Orig);
                    _discarded++;
                    continue;
                }
                if (_flows.ContainsKey(r.Orig) || !_addingTuples.Add(r.Orig))
                    continue;
                var flow = new OffloadedFlow(r.Entry, r.Orig, now);
                if (!_engine.BeginOffload(flow, now))
                    continue;
                (NftFlowKey o, NftFlowKey rep) = OffloadSets.KeysOf(r.Orig);
                _adding.Add(new Tracked(flow, o, rep));
            }
            else if (_flows.TryGetValue(r.Orig, out Tracked? t) && t.Flow.Entry == r.Entry && !t.Removing)
            {
                t.Removing = true;
                _removing.Add(t);
            }
            else
            {
                int pending = _addingTuples.Contains(r.Orig) ? _adding.FindIndex(a => a.Flow.Orig == r.Orig) : -1;
                if (pending >= 0)
                {
                    // Nominated and ended within one turn: never goes in.
                    _engine.AbandonOffload(_adding[pending].Flow.Entry, r.Orig);
                    _adding.RemoveAt(pending);
                }
            }
        }
        Commit(now);
    }

    /// <summary>Applies <see cref="_adding"/> and <see cref="_removing"/> in one transaction (falling back to smaller ones on an error).</summary>
    private void Commit(long now)
    {
        if (_adding.Count == 0 && _removing.Count == 0)
            return;
        int limit = _sets.MaxFlowsPerBatch;
        if (_adding.Count + _removing.Count <= limit && Apply(_adding, _removing, now))
        {
            foreach (Tracked t in _adding)
                Added(t);
            foreach (Tracked t in _removing)
                Finish(t);
            return;
        }
        // Too many for one transaction, or the kernel refused it (all or nothing): removals first,
        // in chunks, then the adds in chunks, and a refused chunk's adds each on its own, so one bad
        // flow costs only itself.
        for (int i = 0; i < _removing.Count; i += limit)
        {
            List<Tracked> chunk = _removing.GetRange(i, Math.Min(limit, _removing.Count - i));
            if (Apply([], chunk, now))
            {
                foreach (Tracked t in chunk)
                    Finish(t);
            }
            else
            {
                foreach (Tracked t in chunk)
                    t.Removing = false; // retried by the next observation
            }
        }
        for (int i = 0; i < _adding.Count; i += limit)
        {
            List<Tracked> chunk = _adding.GetRange(i, Math.Min(limit, _adding.Count - i));
            if (chunk.Count > 1 && Apply(chunk, [], now))
            {
                foreach (Tracked t in chunk)
                    Added(t);
                continue;
            }
            foreach (Tracked t in chunk)
            {
                if (Apply([t], [], now))
                    Added(t);
                else
                    Refuse(t);
            }
        }
    }

    /// <summary>
    /// A flow the kernel would not take (a full set, say) is not nominated again for
    /// <see cref="RefusedHoldMs"/> (its packets are judged by ctfw as usual, not one by one sent back
    /// here); then its next packet tries once more.
    /// </summary>
    private void Refuse(Tracked t)
    {
        _engine.RefuseOffload(t.Flow);
        _refused.Enqueue((t.Flow, DaemonClock.NowMs() + RefusedHoldMs));
    }

    private void ReleaseRefused(long now)
    {
        while (_refused.TryPeek(out (OffloadedFlow Flow, long Until) r) && now - r.Until >= 0)
        {
            _refused.Dequeue();
            _engine.ReleaseRefusedOffload(r.Flow);
        }
    }

    private bool Apply(List<Tracked> add, List<Tracked> remove, long now)
    {
        _addTuples.Clear();
        _removeTuples.Clear();
        foreach (Tracked t in add)
            _addTuples.Add(t.Flow.Orig);
        foreach (Tracked t in remove)
            _removeTuples.Add(t.Flow.Orig);
        if (remove.Count > 0)
            CountLast(remove);
        NftBatchResult r;
        try
        {
            r = _sets.Apply(_addTuples, _removeTuples);
        }
        catch (Exception e) when (e is ErrnoException or InvalidOperationException)
        {
            // Not sent (the batch did not fit, the socket broke): the caller falls back or retries.
            Failed(now, $"offload: {e.Message}");
            return false;
        }
        Volatile.Write(ref _batches, _batches + 1);
        if (r.Committed)
            return true;
        Failed(now, $"offload: {r.Message}");
        return false;
    }

    private void Added(Tracked t)
    {
        _flows[t.Flow.Orig] = t;
        _byKey[(t.Flow.Orig.Protocol, t.KeyOriginal)] = (t, 0);
        _byKey[(t.Flow.Orig.Protocol, t.KeyReply)] = (t, 1);
        Volatile.Write(ref _adds, _adds + 1);
        Volatile.Write(ref _flowCount, _flows.Count);
    }

    /// <summary>
    /// Reads the counters of flows about to be removed, so the packets the kernel forwarded since the
    /// last observation are counted (what passes between this read and the removal, microseconds,
    /// is not). A failed read is reported and the removal goes on: counting never delays it.
    /// </summary>
    private void CountLast(List<Tracked> remove)
    {
        List<(NftFlowSet Set, NftElementState Element)> found;
        try
        {
            found = _sets.Read(_removeTuples);
        }
        catch (ErrnoException e)
        {
            Failed(DaemonClock.NowMs(), $"offload: {e.Message} (the last counters of {remove.Count} flows are not counted)");
            return;
        }
        foreach (Tracked t in remove)
            t.SeenOriginal = t.SeenReply = null;
        foreach ((NftFlowSet set, NftElementState e) in found)
            Seen(set, e);
        foreach (Tracked t in remove)
        {
            if (t.SeenOriginal is null && t.SeenReply is null)
                continue;
            (long p0, long b0) = Halved(t.SeenOriginal);
            (long p1, long b1) = Halved(t.SeenReply);
            (long packets, long bytes) = Totals(t);
            _engine.CountOffloaded(t.Flow, p0, b0, p1, b1);
            Tally(t, packets, bytes);
        }
    }

    /// <summary>Hands an element the kernel listed to the flow and direction it belongs to.</summary>
    private void Seen(NftFlowSet set, NftElementState e)
    {
        if (!_byKey.TryGetValue((_sets.ProtocolOf(set), e.Key), out (Tracked Flow, int Dir) hit))
            return;
        if (hit.Dir == 0)
            hit.Flow.SeenOriginal = e;
        else
            hit.Flow.SeenReply = e;
    }

    private static (long Packets, long Bytes) Totals(Tracked t) => (t.Flow.Packets0 + t.Flow.Packets1, t.Flow.Bytes0 + t.Flow.Bytes1);

    /// <summary>Adds what the flow's counters grew by since <see cref="Totals"/> gave <paramref name="packets"/> and <paramref name="bytes"/>.</summary>
    private void Tally(Tracked t, long packets, long bytes)
    {
        (long p, long b) = Totals(t);
        Volatile.Write(ref _packets, _packets + (p - packets));
        Volatile.Write(ref _bytes, _bytes + (b - bytes));
    }

    /// <summary>The flow's elements are gone: forget it, and give the engine back its entry.</summary>
    private void Finish(Tracked t)
    {
        _flows.Remove(t.Flow.Orig);
        _byKey.Remove((t.Flow.Orig.Protocol, t.KeyOriginal));
        _byKey.Remove((t.Flow.Orig.Protocol, t.KeyReply));
        _engine.EndOffload(t.Flow);
        Volatile.Write(ref _removes, _removes + 1);
        if (t.Idle)
            Volatile.Write(ref _expired, _expired + 1);
        Volatile.Write(ref _flowCount, _flows.Count);
    }

    private void RemoveFlows(List<Tracked> flows, long now)
    {
        _adding.Clear();
        _removing.Clear();
        foreach (Tracked t in flows)
        {
            t.Removing = true;
            _removing.Add(t);
        }
        Commit(now);
    }

    /// <summary>
    /// Dumps the four sets and hands each flow's counters and the kernel's last packet to the engine;
    /// flows that ended or went idle are taken out.
    /// </summary>
    private void Observe(long now)
    {
        var clock = Stopwatch.StartNew();
        foreach (Tracked t in _flows.Values)
            t.SeenOriginal = t.SeenReply = null;
        foreach ((NftFlowSet set, NftSetDumpResult dump) in _sets.DumpAll())
        {
            if (dump.Error != Errno.None)
            {
                Failed(now, $"offload: dumping set {set.Name}: {ErrnoException.Describe(dump.Error)}");
                _nextObserveMs = now + ObserveIntervalMs;
                return; // nothing is concluded from a partial view
            }
            foreach (NftElementState e in dump.Elements)
                Seen(set, e);
        }
        long dumpedAt = DaemonClock.NowMs();
        // A large table makes the dump slow: observe less often rather than spend the CPU on it; the
        // hold covers three such intervals, so a lookup never finds an entry gone between two.
        long interval = Math.Max(ObserveIntervalMs, 4 * clock.ElapsedMilliseconds);
        long hold = dumpedAt + (3 * interval);
        _removing.Clear();
        _adding.Clear();
        foreach (Tracked t in _flows.Values)
        {
            if (t.Removing)
            {
                _removing.Add(t); // a removal that failed before: again
                continue;
            }
            (long packets, long bytes) = Totals(t);
            long timeoutMs = (long)_sets.SetOf(t.Flow.Orig.Protocol, t.Flow.Orig.IsV6).DefaultTimeout.TotalMilliseconds;
            long last = Math.Max(LastPacket(t.SeenOriginal, dumpedAt, timeoutMs), LastPacket(t.SeenReply, dumpedAt, timeoutMs));
            (long p0, long b0) = Halved(t.SeenOriginal);
            (long p1, long b1) = Halved(t.SeenReply);
            OffloadObservation o;
            if (t.SeenOriginal is null && t.SeenReply is null)
                // Both elements timed out in the kernel (the table is owned: nobody else removes them), which an idle flow's always do
                // before a dump can call it Idle, the timeouts being the same; and the kernel's last packet is only known to a dump's
                // precision. So: Idle when ctfw's own time is up too (judged no earlier than the set's timeout after the kernel's last
                // packet), else the flow is simply ctfw's again (Ended; also when the timeout sysctl was raised since the start).
                o = _engine.ObserveOffloaded(t.Flow, t.Flow.Packets0, t.Flow.Bytes0, t.Flow.Packets1, t.Flow.Bytes1, long.MinValue, hold,
                    Math.Max(dumpedAt, t.Flow.LastKernelPacketMs + timeoutMs)) == OffloadObservation.Idle ? OffloadObservation.Idle : OffloadObservation.Ended;
            else
                o = _engine.ObserveOffloaded(t.Flow, p0, b0, p1, b1, last, hold, dumpedAt);
            Tally(t, packets, bytes);
            if (o != OffloadObservation.Alive)
            {
                t.Idle = o == OffloadObservation.Idle;
                t.Removing = true;
                _removing.Add(t);
            }
        }
        Commit(now);
        _lastObservedMs = now;
        Volatile.Write(ref _observations, _observations + 1);
        Volatile.Write(ref _lastObserveUs, (long)clock.Elapsed.TotalMicroseconds);
        _nextObserveMs = now + interval;
    }

    /// <summary>
    /// An element's counters, halved: the bypass rule's lookup and its update both run the element's
    /// counter (NftablesLiveTests).
    /// </summary>
    private static (long Packets, long Bytes) Halved(NftElementState? element) =>
        element is { HasCounter: true } e ? ((long)(e.Packets / 2), (long)(e.Bytes / 2)) : (0, 0);

    /// <summary>
    /// When the kernel last forwarded a packet of the element (engine ms): the set's timeout minus the
    /// time left, before <paramref name="now"/> (every packet re-arms the element); long.MinValue when absent.
    /// </summary>
    private static long LastPacket(NftElementState? element, long now, long timeoutMs) =>
        element is { } e ? now - (timeoutMs - (long)e.Expiration.TotalMilliseconds) : long.MinValue;

    private void Failed(long now, string message)
    {
        Volatile.Write(ref _errors, _errors + 1);
        _errorsSinceLog++;
        if (now - _lastErrorLogMs < 10_000)
            return;
        string more = _errorsSinceLog > 1 ? string.Create(CultureInfo.InvariantCulture, $" ({_errorsSinceLog - 1} more errors since the last report)") : "";
        _err.WriteLine($"ctfw: WARNING: {message}{more}");
        _lastErrorLogMs = now;
        _errorsSinceLog = 0;
    }

    /// <summary>
    /// Stops the thread and deletes the table (everything the kernel forwarded past ctfw goes through
    /// the queue again), then gives every offloaded entry its true deadline back.
    /// </summary>
    public void Stop()
    {
        if (_stop)
            return;
        _stop = true;
        _thread?.Join();
        try
        {
            NftBatchResult r = _sets.Remove();
            if (!r.Committed)
                _err.WriteLine($"ctfw: removing the offload table failed: {r.Message} (it goes when this process exits)");
        }
        catch (ErrnoException e)
        {
            _err.WriteLine($"ctfw: removing the offload table failed: {e.Message} (it goes when this process exits)");
        }
        long now = DaemonClock.NowMs();
        foreach (Tracked t in _flows.Values.ToList())
            Finish(t);
        ReleaseRefused(long.MaxValue / 2);
        lock (_commands)
        {
            while (_commands.TryDequeue(out Command? c))
                c.Done.Set();
        }
    }

    public void Dispose()
    {
        Stop();
        _sets.Dispose();
    }
}
