using System.Runtime.InteropServices;

namespace Ctfw.Linux.Nfqueue;

//  struct nfqnl_msg_packet_hdr (linux/netfilter/nfnetlink_queue.h), packed, 7 bytes: NFQA_PACKET_HDR
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |                      packet_id (be32)                         |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//  |      hw_protocol (be16)       |     hook      |
//  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

/// <summary><c>struct nfqnl_msg_packet_hdr</c>; multi-byte fields are big-endian.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
internal struct NfqnlMsgPacketHdr
{
    public const int Size = 7;
    public const int PacketIdOffset = 0;
    public const int HwProtocolOffset = 4;
    public const int HookOffset = 6;

    public uint PacketIdBigEndian;
    public ushort HwProtocolBigEndian;
    public byte Hook;
}
