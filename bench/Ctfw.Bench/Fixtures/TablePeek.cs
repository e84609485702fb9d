using System.Numerics;
using System.Reflection;
using System.Runtime.CompilerServices;
using Ctfw.Conntrack;

namespace Ctfw.Bench.Fixtures;

/// <summary>
/// Read-only access to ConnTable's private bucket array, for the "what would batching with
/// prefetch gain" variants. It issues the loads that a batched classify loop would issue early
/// (bucket heads, then the first entry of each chain: its link line and its TCP line), so that
/// the misses of a whole batch overlap instead of being paid one packet after the other.
/// Plain loads are enough for that on x86: independent loads overlap in the out-of-order window.
/// </summary>
internal sealed class TablePeek
{
    private readonly int[] _buckets;
    private readonly int _shift;
    private readonly ConnEntry[] _entries;

    public TablePeek(ConnTable table)
    {
        _buckets = (int[])typeof(ConnTable).GetField("_buckets", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(table)!;
        _shift = 64 - BitOperations.Log2((uint)_buckets.Length);
        _entries = table.Entries;
    }

    /// <summary>Loads the bucket head for <paramref name="hash"/> (pass 1 of a batch).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Head(ulong hash) => Volatile.Read(ref _buckets[(int)(hash >> _shift)]);

    /// <summary>Touches both lines a packet needs of the chain's first entry (pass 2 of a batch).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Touch(int head)
    {
        if (head == 0)
            return 0;
        // First and last bytes of the tuple, the status word, the TCP state: every cache line the
        // entry can span, wherever the array happens to start within a line.
        ref ConnEntry e = ref _entries[(head - 1) >> 1];
        return (int)e.Orig.Src.Hi + e.Orig.Zone + (int)e.Status + e.Tcp.Flags1;
    }
}
