using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>
    /// Managed mirror of native-shim/ctfw_shim.h. Values and layouts here must match the header
    /// exactly; the shim <c>_Static_assert</c>s its side, <c>ShimLayoutTests</c> compares both, and
    /// <see cref="EnsureCompatible"/> refuses a library built from a different header at run time.
    /// </summary>
    internal static partial class Shim
    {
        internal const uint AbiVersion = 1;     // CTFW_SHIM_ABI_VERSION
        internal const int MaxBatch = 256;      // CTFW_RECV_MAX_BATCH

        internal const int RecvNonblocking = 0; // CTFW_RECV_NONBLOCKING
        internal const int RecvWaitForOne = 1;  // CTFW_RECV_WAIT_FOR_ONE

        internal const uint RxTruncated = 1;    // CTFW_RX_TRUNCATED

        /// <summary><c>ctfw_rx_slot</c>: one receive buffer; the shim fills the last three fields.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct RxSlot
        {
            public ulong Buffer;      // address of pinned memory
            public uint Capacity;
            public uint Length;       // out
            public uint Flags;        // out: RxTruncated
            public uint SourcePort;   // out: 0 = the kernel
        }

        /// <summary><c>ctfw_shim_abi_info</c>.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct AbiInfo
        {
            public uint AbiVersion;
            public uint RxSlotSize;
            public uint AbiInfoSize;
            public uint MaxBatch;
            public uint MmsghdrSize;
            public uint MmsghdrMsgLenOffset;
            public uint MsghdrSize;
            public uint MsghdrMsgFlagsOffset;
            public uint IovecSize;
            public uint SockaddrNlSize;
        }

        /// <summary>Throws (setup path) unless the loaded libctfw_shim.so was built from the header this assembly mirrors.</summary>
        internal static unsafe void EnsureCompatible()
        {
            AbiInfo info;
            uint version;
            try
            {
                version = Abi(&info);
            }
            catch (DllNotFoundException e)
            {
                throw new ErrnoException(
                    $"libctfw_shim.so was not found next to {typeof(Shim).Assembly.GetName().Name}.dll: rebuild Ctfw.Linux (it compiles native-shim/ with cc)", e);
            }
            catch (EntryPointNotFoundException e)
            {
                throw new ErrnoException("the libctfw_shim.so that was loaded predates ctfw_shim_abi: a stale library was deployed; rebuild Ctfw.Linux", e);
            }
            if (version != AbiVersion || info.RxSlotSize != (uint)sizeof(RxSlot) || info.AbiInfoSize != (uint)sizeof(AbiInfo) || info.MaxBatch != MaxBatch)
            {
                throw new ErrnoException(
                    $"libctfw_shim.so is ABI {version} (slot {info.RxSlotSize} B, max batch {info.MaxBatch}); this build expects ABI {AbiVersion} " +
                    $"(slot {sizeof(RxSlot)} B, max batch {MaxBatch}): a stale library was deployed; rebuild Ctfw.Linux");
            }
        }
    }
}
