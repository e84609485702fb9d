using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary><c>struct if_nameindex</c> (net/if.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct IfNameIndexEntry
    {
        public uint Index;
        public nint Name;
    }

    /// <summary>
    /// if_nameindex(3): every interface of the calling thread's network namespace (glibc asks the
    /// kernel over rtnetlink, so unlike sysfs it is right after setns or nsenter). Terminated by
    /// an entry with index 0; freed with <see cref="IfFreeNameIndex"/>.
    /// </summary>
    [LibraryImport(Libraries.Libc, EntryPoint = "if_nameindex", SetLastError = true)]
    internal static unsafe partial IfNameIndexEntry* IfNameIndex();

    [LibraryImport(Libraries.Libc, EntryPoint = "if_freenameindex")]
    internal static unsafe partial void IfFreeNameIndex(IfNameIndexEntry* list);
}
