using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal const int RusageSelf = 0;
    /// <summary>_SC_CLK_TCK (bits/confname.h), for Tmds.LibC's sysconf, which has no _SC_ names.</summary>
    internal const int ScClkTck = 2;

    /// <summary>struct rusage (x86-64/arm64): two timevals, then 14 longs (ru_maxrss first, in KiB).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct RUsage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
        public long MaxRssKiB;
        public long IxRss, IdRss, IsRss, MinFlt, MajFlt, NSwap, InBlock, OuBlock, MsgSnd, MsgRcv, NSignals, NVcsw, NIvcsw;
    }

    // getrusage, gettid and struct rusage are not in Tmds.LibC 0.5.0: declared here.

    /// <summary>getrusage(2).</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "getrusage", SetLastError = true)]
    internal static unsafe partial int GetRUsage(int who, RUsage* usage);

    /// <summary>gettid(2): the kernel's id of the calling thread.</summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "gettid")]
    internal static partial int GetTid();
}
