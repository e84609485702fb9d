using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary><c>struct timeval</c> on LP64 Linux (SO_RCVTIMEO), 16 bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct TimeVal
    {
        public long Seconds;       // tv_sec
        public long Microseconds;  // tv_usec
    }
}
