using System.Buffers.Binary;
using Ctfw.Linux.Netlink;

namespace Ctfw.Linux.Nfqueue;

//  NFQNL_MSG_PACKET (kernel → user), as nfqnl_build_packet_message emits it
//  +------------------+------------------+------------------------------------------------+
//  | nlmsghdr (16 B)  | nfgenmsg (4 B)   | nlattr… NFQA_PACKET_HDR first, NFQA_PAYLOAD last |
//  | type 0x0300      | family, v0, queue|                                                |
//  +------------------+------------------+------------------------------------------------+
//  Attribute payloads are big-endian (spec §11.1); attribute headers are host order.

/// <summary>
/// Decodes one NFQNL_MSG_PACKET message into a <see cref="PacketView"/>. Allocation-free and
/// exception-free: truncated or inconsistent attributes are skipped and flagged
/// (<see cref="PacketFlags.Malformed"/>); only a message without a usable NFQA_PACKET_HDR (no
/// packet id, so nothing can be verdicted) is rejected.
/// </summary>
internal static class NfqueuePacketParser
{
    /// <param name="buffer">The receive buffer the view will point into.</param>
    /// <param name="offset">Start of the message (its nlmsghdr) in <paramref name="buffer"/>.</param>
    /// <param name="length">Bytes of the message present (nlmsg_len, or less when <paramref name="cut"/>).</param>
    /// <param name="cut">The datagram was truncated by the receive slot (MSG_TRUNC).</param>
    public static bool TryParse(byte[] buffer, int offset, int length, bool cut, out PacketView packet)
    {
        packet = default;
        if ((uint)offset > (uint)buffer.Length || (uint)length > (uint)(buffer.Length - offset) || length < NetlinkWriter.NfHeaderSize)
            return false;
        ReadOnlySpan<byte> message = buffer.AsSpan(offset, length);
        byte family = message[NlMsgHdr.Size + NfGenMsg.FamilyOffset];
        ushort queue = BinaryPrimitives.ReadUInt16BigEndian(message[(NlMsgHdr.Size + NfGenMsg.ResourceIdOffset)..]);

        uint packetId = 0, inDev = 0, outDev = 0, physInDev = 0, physOutDev = 0, mark = 0, ctInfo = 0, capLen = 0;
        ushort hwProtocol = 0;
        byte hook = 0;
        bool haveHeader = false;
        int payloadOffset = 0, payloadLength = 0, ctOffset = 0, ctLength = 0;
        PacketFlags flags = cut ? PacketFlags.MessageTruncated : PacketFlags.None;

        int attributesStart = offset + NetlinkWriter.NfHeaderSize;
        var reader = new NetlinkAttributeReader(message[NetlinkWriter.NfHeaderSize..]);
        while (reader.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            switch (type)
            {
                case Nfqnl.AttrPacketHdr:
                    if (value.Length < NfqnlMsgPacketHdr.Size)
                    {
                        flags |= PacketFlags.Malformed;
                        break;
                    }
                    packetId = BinaryPrimitives.ReadUInt32BigEndian(value[NfqnlMsgPacketHdr.PacketIdOffset..]);
                    hwProtocol = BinaryPrimitives.ReadUInt16BigEndian(value[NfqnlMsgPacketHdr.HwProtocolOffset..]);
                    hook = value[NfqnlMsgPacketHdr.HookOffset];
                    haveHeader = true;
                    break;
                case Nfqnl.AttrMark:
                    if (TryReadU32(value, ref flags, out mark))
                        flags |= PacketFlags.HasMark;
                    break;
                case Nfqnl.AttrIfIndexInDev:
                    TryReadU32(value, ref flags, out inDev);
                    break;
                case Nfqnl.AttrIfIndexOutDev:
                    TryReadU32(value, ref flags, out outDev);
                    break;
                case Nfqnl.AttrIfIndexPhysInDev:
                    TryReadU32(value, ref flags, out physInDev);
                    break;
                case Nfqnl.AttrIfIndexPhysOutDev:
                    TryReadU32(value, ref flags, out physOutDev);
                    break;
                case Nfqnl.AttrCtInfo:
                    if (TryReadU32(value, ref flags, out ctInfo))
                        flags |= PacketFlags.HasConntrackInfo;
                    break;
                case Nfqnl.AttrCapLen:
                    if (TryReadU32(value, ref flags, out capLen))
                        flags |= PacketFlags.PayloadTruncated;
                    break;
                case Nfqnl.AttrSkbInfo:
                    if (TryReadU32(value, ref flags, out uint skbInfo))
                    {
                        if ((skbInfo & Nfqnl.SkbGso) != 0)
                            flags |= PacketFlags.Gso;
                        if ((skbInfo & Nfqnl.SkbCsumNotReady) != 0)
                            flags |= PacketFlags.ChecksumNotReady;
                        if ((skbInfo & Nfqnl.SkbCsumNotVerified) != 0)
                            flags |= PacketFlags.ChecksumNotVerified;
                    }
                    break;
                case Nfqnl.AttrCt:
                    ctOffset = attributesStart + reader.PayloadOffset;
                    ctLength = value.Length;
                    flags |= PacketFlags.HasConntrack;
                    break;
                case Nfqnl.AttrPayload:
                    payloadOffset = attributesStart + reader.PayloadOffset;
                    payloadLength = value.Length;
                    flags |= PacketFlags.HasPayload;
                    break;
                default:
                    break; // timestamps, hwaddr, uid/gid, secctx, vlan, l2hdr, priority: not needed yet
            }
        }
        if (reader.Malformed)
            flags |= PacketFlags.Malformed;
        if (!haveHeader)
            return false;

        uint originalLength = (flags & PacketFlags.PayloadTruncated) != 0 ? capLen : (uint)payloadLength;
        packet = new PacketView(
            buffer, payloadOffset, payloadLength, ctOffset, ctLength,
            packetId, hwProtocol, (NfHook)hook, family, queue,
            inDev, outDev, physInDev, physOutDev, mark, ctInfo, originalLength, flags);
        return true;
    }

    private static bool TryReadU32(ReadOnlySpan<byte> value, ref PacketFlags flags, out uint result)
    {
        if (value.Length < sizeof(uint))
        {
            flags |= PacketFlags.Malformed;
            result = 0;
            return false;
        }
        result = BinaryPrimitives.ReadUInt32BigEndian(value);
        return true;
    }
}
