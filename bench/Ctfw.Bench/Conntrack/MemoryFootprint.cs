using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Ctfw.Bench.Fixtures;
using Ctfw.Conntrack;
using Ctfw.Linux;

namespace Ctfw.Bench.Conntrack;

/// <summary>
/// Memory per flow of a full table (nf_conntrack_max = <c>max</c>, filled to max), measured three
/// ways: managed heap delta (GC.GetTotalMemory, which includes the pinned object heap), resident
/// set delta (/proc/self RSS, which also shows whether the memory is really touched), and the
/// array sizes the table allocates. Not a BenchmarkDotNet benchmark: it is one measurement in a
/// clean process (`--memory`), and part of `--quick`.
/// </summary>
internal static class MemoryFootprint
{
    public readonly record struct Result(int Max, int Capacity, long ManagedAfterCreate, long RssAfterCreate, long RssAfterFill,
        long EntriesBytes, long BucketBytes, long RetiredBytes, long AgesBytes, long AcctBytes, int EntryArrayOffsetMod64, long ProcessRssFilled, long ProcessPrivateFilled)
    {
        public double ManagedPerFlow => (double)ManagedAfterCreate / Max;
        public double RssPerFlow => (double)RssAfterFill / Max;
        public long ComputedBytes => EntriesBytes + BucketBytes + RetiredBytes + AgesBytes + AcctBytes;
    }

    /// <param name="acct">nf_conntrack_acct=1: the accounting array is allocated and every flow's slot written.</param>
    public static Result Measure(int max, bool acct = false)
    {
        long managed0 = SettledManaged();
        long rss0 = Environment.WorkingSet;

        var settings = new ConntrackSettings();
        if (settings.Set("nf_conntrack_max", max.ToString(System.Globalization.CultureInfo.InvariantCulture)) is string error)
            throw new InvalidOperationException(error);
        if (acct)
            settings.Set("nf_conntrack_acct", "1");
        var engine = new ConntrackEngine(settings, now: 1_000_000, maxWorkers: 8, hashSeed: 3);
        long managed1 = SettledManaged();
        long rss1 = Environment.WorkingSet;

        TableFill.Fill(engine.Table, 0, max, 1_000_000, _ => 1_000_000 + 3_600_000);
        if (engine.Count != max)
            throw new InvalidOperationException($"filled {engine.Count} of {max}");
        long rss2 = Environment.WorkingSet;
        long private2 = ResourceUsage.AnonymousResidentBytes();

        ConnTable t = engine.Table;
        int buckets = (int)BitOperations.RoundUpToPowerOf2((uint)Math.Max(1024, max * 2)); // as ConnTable's constructor
        var result = new Result(max, t.Capacity,
            managed1 - managed0, rss1 - rss0, rss2 - rss0,
            (long)t.Capacity * Unsafe.SizeOf<ConnEntry>(),
            (long)buckets * sizeof(int),
            (long)t.Capacity * Unsafe.SizeOf<(int, uint)>(),
            (long)t.Capacity * Unsafe.SizeOf<FlowAge>(),
            t.Acct is null ? 0 : (long)t.Capacity * Unsafe.SizeOf<FlowAcct>(),
            EntryAlignment(t),
            rss2, private2);
        GC.KeepAlive(engine);
        return result;
    }

    public static void Print(in Result r, TextWriter o)
    {
        o.WriteLine($"memory per flow, nf_conntrack_max = {r.Max:N0} (filled), capacity {r.Capacity:N0} slots, nf_conntrack_acct={(r.AcctBytes > 0 ? 1 : 0)}:");
        o.WriteLine($"  managed heap delta   {r.ManagedAfterCreate / 1048576.0,8:F1} MiB = {r.ManagedPerFlow,6:F1} B/flow");
        o.WriteLine($"  RSS delta (filled)   {r.RssAfterFill / 1048576.0,8:F1} MiB = {r.RssPerFlow,6:F1} B/flow   (after create, before fill: {r.RssAfterCreate / 1048576.0:F1} MiB)");
        o.WriteLine($"  by array: entries {r.EntriesBytes / (double)r.Max:F1} + buckets {r.BucketBytes / (double)r.Max:F1} + retired ring {r.RetiredBytes / (double)r.Max:F1}" +
            $" + flow ages {r.AgesBytes / (double)r.Max:F1} + accounting {r.AcctBytes / (double)r.Max:F1} = {r.ComputedBytes / (double)r.Max:F1} B/flow  ({Unsafe.SizeOf<ConnEntry>()} B per entry slot)");
        o.WriteLine($"  whole process RSS, table filled: {r.ProcessRssFilled / 1048576.0:F1} MiB = {r.ProcessRssFilled / 1e6:F1} MB (target for 1 M flows: <= 200 MB)," +
            $" of which private (RssAnon) {r.ProcessPrivateFilled / 1048576.0:F1} MiB = {r.ProcessPrivateFilled / 1e6:F1} MB");
        o.WriteLine($"  entry array starts at byte {r.EntryArrayOffsetMod64} of a cache line: each entry spans {(r.EntryArrayOffsetMod64 == 0 ? 2 : 3)} lines");
    }

    /// <summary>
    /// Where element 0 of the (pinned) entry array starts within a 64-byte cache line. Anything but
    /// 0 means every 128-byte entry straddles three cache lines instead of two.
    /// </summary>
    public static int EntryAlignment(ConnTable table) =>
        (int)(Marshal.UnsafeAddrOfPinnedArrayElement(table.Entries, 0) & 63);

    private static long SettledManaged()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}
