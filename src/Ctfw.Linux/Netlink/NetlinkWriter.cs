using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Ctfw.Linux.Netlink;

/// <summary>
/// Builds nfnetlink requests in a caller's buffer: nlmsghdr + nfgenmsg, then attributes. Callers
/// size their buffers for the worst case, so the span slicing below never runs past the end.
/// </summary>
internal static class NetlinkWriter
{
    public const int NfHeaderSize = NlMsgHdr.Size + NfGenMsg.Size;

    /// <summary>Writes nlmsghdr (length patched by <see cref="Finish"/>) and nfgenmsg; returns the bytes written.</summary>
    public static int WriteNfHeader(Span<byte> destination, ushort type, ushort flags, uint sequence, byte family, ushort resourceId)
    {
        var header = new NlMsgHdr { Length = NfHeaderSize, Type = type, Flags = flags, Sequence = sequence, PortId = 0 };
        MemoryMarshal.Write(destination, in header);
        destination[NlMsgHdr.Size + NfGenMsg.FamilyOffset] = family;
        destination[NlMsgHdr.Size + NfGenMsg.VersionOffset] = NfGenMsg.Version0;
        BinaryPrimitives.WriteUInt16BigEndian(destination[(NlMsgHdr.Size + NfGenMsg.ResourceIdOffset)..], resourceId);
        return NfHeaderSize;
    }

    /// <summary>Writes an attribute header for <paramref name="payloadLength"/> bytes; returns the offset of its payload.</summary>
    public static int WriteAttributeHeader(Span<byte> destination, int offset, ushort type, int payloadLength)
    {
        var attr = new NlAttr { Length = (ushort)(NlAttr.Size + payloadLength), Type = type };
        MemoryMarshal.Write(destination[offset..], in attr);
        return offset + NlAttr.Size;
    }

    /// <summary>Writes a big-endian u32 attribute; returns the aligned end.</summary>
    public static int WriteUInt32BigEndian(Span<byte> destination, int offset, ushort type, uint value)
    {
        int payload = WriteAttributeHeader(destination, offset, type, sizeof(uint));
        BinaryPrimitives.WriteUInt32BigEndian(destination[payload..], value);
        return payload + sizeof(uint);
    }

    /// <summary>Zeroes the alignment padding after <paramref name="end"/> and returns the aligned end.</summary>
    public static int Pad(Span<byte> destination, int end)
    {
        int aligned = NlMsgHdr.Align(end);
        destination[end..aligned].Clear();
        return aligned;
    }

    /// <summary>Patches nlmsg_len of the message that starts at <paramref name="start"/> and ends (aligned) at <paramref name="end"/>.</summary>
    public static void Finish(Span<byte> destination, int start, int end)
    {
        uint length = (uint)(end - start);
        MemoryMarshal.Write(destination[(start + NlMsgHdr.LengthOffset)..], in length);
    }
}
