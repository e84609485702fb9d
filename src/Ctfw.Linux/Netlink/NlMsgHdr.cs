using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

//  struct nlmsghdr (linux/netlink.h), 16 bytes, host byte order
//   0                   1                   2                   3
//   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   nlmsg_len (header + payload)                |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |           nlmsg_type          |          nlmsg_flags          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                           nlmsg_seq                           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                   nlmsg_pid (sender port id)                  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary><c>struct nlmsghdr</c>. Messages are 4-byte aligned (<c>NLMSG_ALIGN</c>).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlMsgHdr
{
    public const int Size = 16;
    public const int LengthOffset = 0;
    public const int TypeOffset = 4;
    public const int FlagsOffset = 6;
    public const int SequenceOffset = 8;
    public const int PortIdOffset = 12;

    // nlmsg_type values below NLMSG_MIN_TYPE (0x10) are control messages.
    public const ushort TypeNoop = 1;
    public const ushort TypeError = 2;
    public const ushort TypeDone = 3;
    public const ushort TypeOverrun = 4;

    public const ushort FlagRequest = 0x1;
    public const ushort FlagMulti = 0x2;
    public const ushort FlagAck = 0x4;

    public uint Length;
    public ushort Type;
    public ushort Flags;
    public uint Sequence;
    public uint PortId;

    public static int Align(int length) => (length + 3) & ~3;
}
