using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

//  struct nlmsgerr (linux/netlink.h): the payload of an NLMSG_ERROR message
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |            error (s32: 0 = ACK, else -errno)                  |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   the offending nlmsghdr (16 bytes), then, unless the socket  |
//  |   set NETLINK_CAP_ACK or this is an ACK, its payload          |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary><c>struct nlmsgerr</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlMsgErr
{
    public const int Size = 20;
    public const int ErrorOffset = 0;
    public const int MessageOffset = 4;

    public int Error;
    public NlMsgHdr Message;
}
