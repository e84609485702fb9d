using System.Numerics;
using System.Runtime.CompilerServices;

namespace Ctfw.Rules.Compilation;

/// <summary>
/// Packet and byte counters per slot (rule or chain policy), sharded by CPU like the kernel's
/// per-cpu xt_counters: a worker adds to the shard of the processor it runs on, so workers on
/// different CPUs never write the same cache line, and readers sum the shards.
/// <code>
/// shard s: long[Pad | p0 b0 | p1 b1 | … | Pad]   (one array per shard; the pads keep shards' ends off shared lines)
/// </code>
/// </summary>
internal sealed class CounterShards
{
    private const int Pad = 8; // 64 bytes of longs on each side
    private readonly long[][] _shards;
    private readonly int _mask;

    public CounterShards(int slots)
        : this(slots, Environment.ProcessorCount)
    {
    }

    /// <summary>With an explicit shard count (rounded up to a power of two): tests use 1 to make every thread contend.</summary>
    internal CounterShards(int slots, int shards)
    {
        int count = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(shards, 1, 64));
        _shards = new long[count][];
        for (int i = 0; i < count; i++)
            _shards[i] = new long[Pad + 2 * slots + Pad];
        _mask = count - 1;
        Slots = slots;
    }

    public int Slots { get; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int slot, long bytes)
    {
        // GetCurrentProcessorId is a cached hint: two threads may map to one shard (after migration
        // or when workers outnumber CPUs), so the adds stay atomic. Packets and bytes are two separate
        // atomics: a reader may see a packet without its bytes for an instant (benign, as in the kernel).
        long[] shard = _shards[Thread.GetCurrentProcessorId() & _mask];
        int i = Pad + 2 * slot;
        Interlocked.Increment(ref shard[i]);       // atomic: another thread may share this shard
        Interlocked.Add(ref shard[i + 1], bytes);
    }

    /// <summary>Initial values, e.g. from iptables-save -c counters; not concurrent with <see cref="Add"/>.</summary>
    public void Seed(int slot, long packets, long bytes)
    {
        _shards[0][Pad + 2 * slot] = packets;
        _shards[0][Pad + 2 * slot + 1] = bytes;
    }

    public PacketCounters Read(int slot)
    {
        long packets = 0, bytes = 0;
        int i = Pad + 2 * slot;
        foreach (long[] shard in _shards)
        {
            // Volatile reads: a 64-bit read is atomic on 64-bit targets; the fence only keeps the JIT
            // from hoisting reads out of a polling loop. Totals are a momentary, not a consistent, cut.
            packets += Volatile.Read(ref shard[i]);
            bytes += Volatile.Read(ref shard[i + 1]);
        }
        return new PacketCounters(packets, bytes);
    }

    public void Reset()
    {
        foreach (long[] shard in _shards)
        {
            for (int i = Pad; i < shard.Length - Pad; i++)
                Interlocked.Exchange(ref shard[i], 0); // publishes the zero to workers adding concurrently
        }
    }
}
