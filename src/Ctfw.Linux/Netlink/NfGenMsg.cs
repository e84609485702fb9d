using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

//  struct nfgenmsg (linux/netfilter/nfnetlink.h), 4 bytes, follows every nfnetlink nlmsghdr
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  | nfgen_family  |  version (0)  |     res_id (be16: queue)      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary><c>struct nfgenmsg</c>. <c>res_id</c> is big-endian, hence the raw field name.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NfGenMsg
{
    public const int Size = 4;
    public const int FamilyOffset = 0;
    public const int VersionOffset = 1;
    public const int ResourceIdOffset = 2;

    public const byte Version0 = 0;   // NFNETLINK_V0

    public byte Family;
    public byte Version;
    public ushort ResourceIdBigEndian;
}
