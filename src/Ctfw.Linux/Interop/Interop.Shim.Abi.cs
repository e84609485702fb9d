using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    internal static partial class Shim
    {
        /// <summary><c>ctfw_shim_abi</c>: the header version and layouts the loaded library was compiled with.</summary>
        [LibraryImport(Libraries.Shim, EntryPoint = "ctfw_shim_abi")]
        internal static unsafe partial uint Abi(AbiInfo* info);
    }
}
