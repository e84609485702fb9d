using System.Runtime.InteropServices;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary><c>struct sockaddr_nl</c> (linux/netlink.h), 12 bytes, host byte order.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct SockAddrNl
    {
        public ushort Family;  // nl_family: AF_NETLINK
        public ushort Pad;     // nl_pad
        public uint PortId;    // nl_pid: 0 = let the kernel choose (bind) / the kernel (destination)
        public uint Groups;    // nl_groups: multicast group mask
    }
}
