using System.Buffers.Binary;
using Ctfw.Linux.Netlink;

namespace Ctfw.Linux.Nfqueue;

//  NFQNL_MSG_CONFIG (user → kernel): nlmsghdr (type 0x0302, REQUEST|ACK) + nfgenmsg (AF_UNSPEC, v0,
//  be16 queue) + one NFQA_CFG_* attribute (two for FLAGS: MASK is mandatory with it).

/// <summary>Encoders of the configuration requests <see cref="NfqueueSocket"/> sends; each returns its length.</summary>
internal static class NfqueueRequests
{
    private const ushort RequestAck = NlMsgHdr.FlagRequest | NlMsgHdr.FlagAck;

    public static int WriteBind(Span<byte> destination, uint sequence, ushort queue) =>
        WriteCommand(destination, sequence, queue, Nfqnl.CmdBind);

    public static int WriteQueueMaxLen(Span<byte> destination, uint sequence, ushort queue, uint maxLength)
    {
        int end = NetlinkWriter.WriteNfHeader(destination, Nfqnl.MsgConfig, RequestAck, sequence, Nfqnl.AfUnspec, queue);
        end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Nfqnl.CfgQueueMaxLen, maxLength);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    public static int WriteFlags(Span<byte> destination, uint sequence, ushort queue, uint flags, uint mask)
    {
        int end = NetlinkWriter.WriteNfHeader(destination, Nfqnl.MsgConfig, RequestAck, sequence, Nfqnl.AfUnspec, queue);
        end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Nfqnl.CfgFlags, flags);
        end = NetlinkWriter.WriteUInt32BigEndian(destination, end, Nfqnl.CfgMask, mask);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    public static int WriteParams(Span<byte> destination, uint sequence, ushort queue, byte copyMode, uint copyRange)
    {
        int end = NetlinkWriter.WriteNfHeader(destination, Nfqnl.MsgConfig, RequestAck, sequence, Nfqnl.AfUnspec, queue);
        int payload = NetlinkWriter.WriteAttributeHeader(destination, end, Nfqnl.CfgParams, NfqnlMsgConfigParams.Size);
        BinaryPrimitives.WriteUInt32BigEndian(destination[(payload + NfqnlMsgConfigParams.CopyRangeOffset)..], copyRange);
        destination[payload + NfqnlMsgConfigParams.CopyModeOffset] = copyMode;
        end = NetlinkWriter.Pad(destination, payload + NfqnlMsgConfigParams.Size);
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }

    private static int WriteCommand(Span<byte> destination, uint sequence, ushort queue, byte command)
    {
        int end = NetlinkWriter.WriteNfHeader(destination, Nfqnl.MsgConfig, RequestAck, sequence, Nfqnl.AfUnspec, queue);
        int payload = NetlinkWriter.WriteAttributeHeader(destination, end, Nfqnl.CfgCmd, NfqnlMsgConfigCmd.Size);
        destination[payload + NfqnlMsgConfigCmd.CommandOffset] = command;
        destination[payload + 1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(destination[(payload + NfqnlMsgConfigCmd.PfOffset)..], 0);
        end = payload + NfqnlMsgConfigCmd.Size;
        NetlinkWriter.Finish(destination, 0, end);
        return end;
    }
}
