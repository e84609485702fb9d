using System.Runtime.InteropServices;

namespace Ctfw.Bench.Fixtures;

/// <summary>
/// Asks Linux to back an array with 2 MiB transparent huge pages: madvise(MADV_HUGEPAGE) for
/// future faults plus MADV_COLLAPSE (Linux ≥ 6.1) to convert what is already faulted in, right
/// now. Only the 2 MiB-aligned interior of the array can be huge-page backed. Used by the
/// "what would huge pages gain" variants: with THP in madvise mode (this machine) the runtime's
/// heaps stay on 4 KiB pages, and random access to a 100 MB table then pays a TLB miss and a
/// page walk per packet.
/// </summary>
internal static class HugePages
{
    private const int MadvHugePage = 14;
    private const int MadvCollapse = 25;
    private const long HugePageSize = 2 << 20;

    /// <summary>Returns the number of bytes now in huge-page-eligible ranges (0 when madvise failed or the array is too small).</summary>
    public static long Advise(Array array)
    {
        GCHandle handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        try
        {
            long start = handle.AddrOfPinnedObject();
            long length = (long)array.Length * Marshal.SizeOf(array.GetType().GetElementType()!);
            long from = (start + HugePageSize - 1) & ~(HugePageSize - 1);
            long to = (start + length) & ~(HugePageSize - 1);
            if (to <= from)
                return 0;
            if (Madvise((nint)from, (nuint)(to - from), MadvHugePage) != 0)
                return 0;
            // Best effort: collapse fails with EAGAIN/ENOMEM for ranges it cannot get pages for.
            _ = Madvise((nint)from, (nuint)(to - from), MadvCollapse);
            return to - from;
        }
        finally
        {
            handle.Free();
        }
    }

    /// <summary>AnonHugePages from /proc/self/smaps_rollup, in bytes (how much really is huge-page backed).</summary>
    public static long AnonHugeBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/smaps_rollup"))
        {
            if (line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(14).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        return 0;
    }

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(nint address, nuint length, int advice);
}
