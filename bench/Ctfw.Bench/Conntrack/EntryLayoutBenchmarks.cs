using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// Evidence for an optimisation, not a test of ctfw code: what a packet's accesses to a 128-byte
/// entry cost when the entry array starts on a cache-line boundary versus at byte 56 of a line,
/// which is where the runtime placed ConnTable's pinned array in our runs (see `--memory`). A
/// packet reads the tuple, deadline, status and chain link (bytes 0–59, one line if aligned) and
/// then the TCP state (bytes 72–127, the second line). Misaligned, those bytes span three lines.
/// Accesses form a dependent chain through random entries, as packets of unrelated flows do.
/// </summary>
[MemoryDiagnoser]
[WarmupCount(5)]
[IterationTime(250)]
[MinIterationCount(15)]
[MaxIterationCount(40)]
public class EntryLayoutBenchmarks
{
    private const int Batch = 1024;
    private const int EntrySize = 128;
    private byte[] _memory = null!;
    private int _alignedBase;
    private int _misalignedBase;
    private int _cursorAligned;
    private int _cursorMisaligned;
    private int[] _randomOrder = null!;
    private int _cursorIndependent;

    [Params(100_000, 1_000_000)]
    public int Entries { get; set; }

    /// <summary>Back the array with 2 MiB transparent huge pages (madvise; see <see cref="HugePages"/>).</summary>
    [Params(false, true)]
    public bool HugePages { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _memory = GC.AllocateArray<byte>((Entries * EntrySize) + 128, pinned: true);
        if (HugePages)
            Fixtures.HugePages.Advise(_memory);
        int misalignment = (int)(Marshal.UnsafeAddrOfPinnedArrayElement(_memory, 0) & 63);
        _alignedBase = (64 - misalignment) & 63;
        _misalignedBase = (_alignedBase + 56) & 63;
        // One random cycle through all entries (Sattolo), stored in each copy's link field.
        int[] next = new int[Entries];
        for (int i = 0; i < Entries; i++)
            next[i] = i;
        var rng = new Random(5);
        for (int i = Entries - 1; i > 0; i--)
        {
            int j = rng.Next(i);
            (next[i], next[j]) = (next[j], next[i]);
        }
        _randomOrder = new int[1 << 20];
        for (int i = 0; i < _randomOrder.Length; i++)
            _randomOrder[i] = rng.Next(Entries);
        foreach (int b in new[] { _alignedBase, _misalignedBase })
        {
            for (int i = 0; i < Entries; i++)
            {
                ref ProbeEntry e = ref Entry(b, i);
                e.Key0 = (ulong)i;
                e.Link = next[i];
                e.TcpEnd = (uint)i & 0xFFFF;
            }
        }
        if (HugePages)
        {
            Fixtures.HugePages.Advise(_memory);
            Console.WriteLine($"// AnonHugePages: {Fixtures.HugePages.AnonHugeBytes() >> 20} MiB");
        }
    }

    [Benchmark(OperationsPerInvoke = Batch, Baseline = true)]
    public long AlignedTo64() => Walk(_alignedBase, ref _cursorAligned);

    [Benchmark(OperationsPerInvoke = Batch)]
    public long AtByte56() => Walk(_misalignedBase, ref _cursorMisaligned);

    /// <summary>
    /// The same per-entry work on independent random entries (indices from a precomputed stream):
    /// how many misses this machine overlaps. Compare with <see cref="AlignedTo64"/>, whose misses
    /// are serialised.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long AlignedIndependent()
    {
        long acc = 0;
        int[] order = _randomOrder;
        int c = _cursorIndependent;
        for (int i = 0; i < Batch; i++)
        {
            ref ProbeEntry e = ref Entry(_alignedBase, order[c]);
            acc += (long)(e.Key0 ^ e.Key4) + e.Status;
            uint end = e.TcpEnd + 1;
            e.TcpEnd = end & 0xFFFF;
            e.TcpMaxAck = end;
            c = (c + 1) & (order.Length - 1);
        }
        _cursorIndependent = c;
        return acc;
    }

    private long Walk(int baseOffset, ref int cursor)
    {
        long acc = 0;
        int idx = cursor;
        for (int i = 0; i < Batch; i++)
        {
            ref ProbeEntry e = ref Entry(baseOffset, idx);
            acc += (long)(e.Key0 ^ e.Key4) + e.Status;       // lookup: tuple words, liveness
            uint end = e.TcpEnd + 1;                          // tracker: read and update the TCP state
            e.TcpEnd = end & 0xFFFF;
            e.TcpMaxAck = end;
            idx = e.Link + (int)(end >> 31);                  // next flow; depends on both lines
        }
        cursor = idx;
        return acc;
    }

    private ref ProbeEntry Entry(int baseOffset, int index) =>
        ref Unsafe.As<byte, ProbeEntry>(ref _memory[baseOffset + (index * EntrySize)]);

    [StructLayout(LayoutKind.Explicit, Size = EntrySize)]
    private struct ProbeEntry
    {
        [FieldOffset(0)] public ulong Key0;
        [FieldOffset(32)] public ulong Key4;
        [FieldOffset(48)] public uint Status;
        [FieldOffset(52)] public int Link;
        [FieldOffset(72)] public uint TcpEnd;
        [FieldOffset(120)] public uint TcpMaxAck;
    }
}
