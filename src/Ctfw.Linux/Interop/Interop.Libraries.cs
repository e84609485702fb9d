using System.Runtime.CompilerServices;

// Every P/Invoke in this assembly passes only blittable types and pointers; the LibraryImport
// generator does the rest. No runtime marshalling means no hidden copies or allocations per call.
[assembly: DisableRuntimeMarshalling]

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal static class Libraries
    {
        internal const string Libc = "libc";

        /// <summary>native-shim/ctfw_shim.c, built next to this assembly as libctfw_shim.so.</summary>
        internal const string Shim = "ctfw_shim";
    }
}
