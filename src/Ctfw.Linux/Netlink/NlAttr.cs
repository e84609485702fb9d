using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

//  struct nlattr (linux/netlink.h), 4 bytes, host byte order; payload padded to 4 bytes
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |   nla_len (header + payload)  |N|O|        nla_type           |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  N = NLA_F_NESTED, O = NLA_F_NET_BYTEORDER: masked off before the type is compared.

/// <summary><c>struct nlattr</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct NlAttr
{
    public const int Size = 4;
    public const int LengthOffset = 0;
    public const int TypeOffset = 2;

    /// <summary>NLA_TYPE_MASK: clears NLA_F_NESTED (bit 15) and NLA_F_NET_BYTEORDER (bit 14).</summary>
    public const ushort TypeMask = 0x3FFF;
    public const ushort FlagNested = 0x8000;

    public ushort Length;
    public ushort Type;
}
