using BenchmarkDotNet.Attributes;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// <see cref="ConnTable.Lookup"/> hits on a table holding <see cref="Flows"/> entries, sized as the
/// daemon would be with nf_conntrack_max = Flows (2 × max buckets). The key stream is 2^20 tuples
/// drawn uniformly from all flows, half of them in the REPLY direction, so consecutive lookups hit
/// unrelated entries and buckets; it is the same length for every table size so that streaming
/// the keys costs the same everywhere. One operation is one lookup.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class LookupBenchmarks
{
    private const int Batch = 1024;
    private const int KeyCount = 1 << 20;
    private const long Now = 1_000_000;

    private ConnTable _table = null!;
    private ConnTuple[] _keys = null!;
    private ulong[] _hashes = null!;
    private TablePeek _peek = null!;
    private int _cursor;

    [Params(10_000, 1_000_000)]
    public int Flows { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _table = new ConnTable(Flows, maxThreads: 1, Now, hashSeed: 42);
        TableFill.Fill(_table, 0, Flows, Now, _ => Now + 3_600_000);
        (_keys, _hashes) = MakeKeys(_table, Flows, KeyCount, seed: 7);
        _peek = new TablePeek(_table);
        for (int i = 0; i < KeyCount; i++)
        {
            if (_table.Lookup(_keys[i], _hashes[i], Now, out int dir) < 0 || dir != (i & 1))
                throw new InvalidOperationException($"key {i} did not hit in direction {i & 1}");
        }
    }

    /// <summary>Keys (odd positions inverted to the REPLY direction) and their precomputed hashes.</summary>
    internal static (ConnTuple[] Keys, ulong[] Hashes) MakeKeys(ConnTable table, int flows, int count, int seed)
    {
        var rng = new Random(seed);
        var keys = new ConnTuple[count];
        var hashes = new ulong[count];
        for (int i = 0; i < count; i++)
        {
            ConnTuple t = SyntheticFlows.Tuple(rng.Next(flows));
            if ((i & 1) != 0)
                t.TryInvert(out keys[i]); // not into t itself: TryInvert reads this while writing the result
            else
                keys[i] = t;
            t = keys[i];
            hashes[i] = table.Hash(t);
        }
        return (keys, hashes);
    }

    /// <summary>Lookup alone, hash precomputed: the table's own cost (bucket + chain + compare + liveness).</summary>
    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public int Lookup()
    {
        ConnTable table = _table;
        ConnTuple[] keys = _keys;
        ulong[] hashes = _hashes;
        int cursor = _cursor;
        int acc = 0;
        for (int i = 0; i < Batch; i++)
        {
            acc += table.Lookup(keys[cursor], hashes[cursor], Now, out int dir) + dir;
            cursor = (cursor + 1) & (KeyCount - 1);
        }
        _cursor = cursor;
        return acc;
    }

    /// <summary>SipHash-1-3 of the tuple, then the lookup: what a packet pays.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int HashAndLookup()
    {
        ConnTable table = _table;
        ConnTuple[] keys = _keys;
        int cursor = _cursor;
        int acc = 0;
        for (int i = 0; i < Batch; i++)
        {
            ref ConnTuple key = ref keys[cursor];
            acc += table.Lookup(key, table.Hash(key), Now, out int dir) + dir;
            cursor = (cursor + 1) & (KeyCount - 1);
        }
        _cursor = cursor;
        return acc;
    }

    /// <summary>
    /// Evidence for batching: the same work as <see cref="HashAndLookup"/>, 16 keys at a time in
    /// three passes (hash + bucket load; first entry load; lookups), so misses overlap.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int HashAndLookup_Batched16()
    {
        const int Group = 16;
        ConnTable table = _table;
        TablePeek peek = _peek;
        ConnTuple[] keys = _keys;
        Span<ulong> hashes = stackalloc ulong[Group];
        Span<int> heads = stackalloc int[Group];
        int cursor = _cursor;
        int acc = 0;
        for (int i = 0; i < Batch; i += Group)
        {
            for (int k = 0; k < Group; k++)
            {
                hashes[k] = table.Hash(keys[(cursor + k) & (KeyCount - 1)]);
                heads[k] = peek.Head(hashes[k]);
            }
            for (int k = 0; k < Group; k++)
                acc += peek.Touch(heads[k]);
            for (int k = 0; k < Group; k++)
                acc += table.Lookup(keys[(cursor + k) & (KeyCount - 1)], hashes[k], Now, out int dir) + dir;
            cursor = (cursor + Group) & (KeyCount - 1);
        }
        _cursor = cursor;
        return acc;
    }

    /// <summary>The hash alone (independent of table size).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public ulong Hash()
    {
        ConnTable table = _table;
        ConnTuple[] keys = _keys;
        int cursor = _cursor;
        ulong acc = 0;
        for (int i = 0; i < Batch; i++)
        {
            acc += table.Hash(keys[cursor]);
            cursor = (cursor + 1) & (KeyCount - 1);
        }
        _cursor = cursor;
        return acc;
    }
}
