using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// Where the time of <see cref="ClassifyBenchmarks"/> goes: the same trace and loop, cut off after
/// each stage of <see cref="ConntrackWorker.Process"/>. Each stage's own cost is the difference to
/// the previous line. The stages mirror Process (tuple as ConnTuple.From, then Hash, Lookup, the entry
/// lock); the TCP tracker and result bookkeeping are what the full Process adds on top of S4.
/// Not a substitute for <see cref="ClassifyBenchmarks"/>: stages S1–S4 do not update the entries,
/// so the deadline and window stores of the tracker are missing from them.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class ClassifyStageBenchmarks
{
    private const int Batch = 1024;
    private static readonly PacketContext s_noChecksum = new() { VerifyChecksums = false };

    private EstablishedTrace _trace = null!;
    private ConnTable _table = null!;
    private TablePeek _peek = null!;

    [Params(1_000, 100_000)]
    public int Flows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _trace = new EstablishedTrace(Flows);
        _trace.ValidateRound(verifyChecksums: true);
        _table = _trace.Engine.Table;
        _peek = new TablePeek(_table);
    }

    /// <summary>S0: walk the trace and touch each packet's first cache line (the floor under everything).</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public long S0_Replay()
    {
        long acc = 0;
        byte[] buffer = _trace.Buffer;
        EstablishedTrace.Slot[] slots = _trace.Slots;
        int cursor = _trace.Cursor;
        for (int i = 0; i < Batch; i++)
        {
            if (cursor == slots.Length)
            {
                _trace.NextRound();
                cursor = 0;
            }
            EstablishedTrace.Slot s = slots[cursor++];
            ReadOnlySpan<byte> packet = new(buffer, s.Offset, s.Length);
            acc += packet[9] + packet.Length;
        }
        _trace.Cursor = cursor;
        return acc;
    }

    /// <summary>S1: + <see cref="PacketParser.Parse"/>.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long S1_Parse() => Stages(1);

    /// <summary>S2: + tuple and SipHash-1-3 (<see cref="ConnTable.Hash"/>).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long S2_ParseHash() => Stages(2);

    /// <summary>S3: + <see cref="ConnTable.Lookup"/> (bucket, chain walk, tuple compares, inverse tuple).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long S3_ParseHashLookup() => Stages(3);

    /// <summary>S4: + the entry spin lock (CAS to take, atomic AND to release).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long S4_ParseHashLookupLock() => Stages(4);

    /// <summary>S5: the real <see cref="ConntrackWorker.Process"/> (adds the TCP tracker and result fields).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long S5_Process() => _trace.Replay(Batch, s_noChecksum);

    /// <summary>
    /// S6: evidence for batching, not a stage. Per group of 16 packets: parse + hash each and load
    /// its bucket head, then touch the first entry's two lines, then run the real Process on all 16
    /// (which parses and hashes again; a batched worker would not). If S6 beats S5, the difference
    /// is memory latency that a batched classify loop could overlap.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long S6_Process_Prefetched16()
    {
        const int Group = 16;
        EstablishedTrace trace = _trace;
        ConntrackWorker worker = trace.Worker;
        ConnTable table = _table;
        TablePeek peek = _peek;
        byte[] buffer = trace.Buffer;
        EstablishedTrace.Slot[] slots = trace.Slots;
        Span<int> heads = stackalloc int[Group];
        long acc = 0;
        int cursor = trace.Cursor;
        worker.Enter();
        for (int i = 0; i < Batch; i += Group)
        {
            if (cursor + Group > slots.Length)
            {
                // Finish the round one packet at a time so rounds stay whole.
                while (cursor < slots.Length)
                {
                    EstablishedTrace.Slot s = slots[cursor++];
                    worker.Process(new ReadOnlySpan<byte>(buffer, s.Offset, s.Length), trace.Now, s_noChecksum, out Classification r1);
                    acc += (int)r1.State;
                }
                trace.NextRound();
                cursor = 0;
            }
            for (int k = 0; k < Group; k++)
            {
                EstablishedTrace.Slot s = slots[cursor + k];
                PacketParser.Parse(new ReadOnlySpan<byte>(buffer, s.Offset, s.Length), out ParsedPacket p);
                ConnTuple t = ConnTuple.From(p);
                heads[k] = peek.Head(table.Hash(t));
            }
            for (int k = 0; k < Group; k++)
                acc += peek.Touch(heads[k]);
            for (int k = 0; k < Group; k++)
            {
                EstablishedTrace.Slot s = slots[cursor++];
                worker.Process(new ReadOnlySpan<byte>(buffer, s.Offset, s.Length), trace.Now, s_noChecksum, out Classification r);
                acc += (int)r.State;
            }
        }
        worker.Exit();
        trace.Cursor = cursor;
        return acc;
    }

    private long Stages(int upTo)
    {
        long acc = 0;
        EstablishedTrace trace = _trace;
        ConnTable table = _table;
        byte[] buffer = trace.Buffer;
        EstablishedTrace.Slot[] slots = trace.Slots;
        int cursor = _trace.Cursor;
        trace.Worker.Enter();
        for (int i = 0; i < Batch; i++)
        {
            if (cursor == slots.Length)
            {
                trace.NextRound();
                cursor = 0;
            }
            EstablishedTrace.Slot s = slots[cursor++];
            InvalidReason reason = PacketParser.Parse(new ReadOnlySpan<byte>(buffer, s.Offset, s.Length), out ParsedPacket p);
            acc += (int)reason + p.SrcPort;
            if (upTo < 2)
                continue;
            ConnTuple t = ConnTuple.From(p);
            ulong hash = table.Hash(t);
            acc += (long)(hash >> 40);
            if (upTo < 3)
                continue;
            int idx = table.Lookup(t, hash, trace.Now, out int dir);
            acc += idx + dir;
            if (upTo < 4)
                continue;
            table.Lock(idx);
            table.Unlock(idx);
        }
        trace.Worker.Exit();
        _trace.Cursor = cursor;
        return acc;
    }
}
