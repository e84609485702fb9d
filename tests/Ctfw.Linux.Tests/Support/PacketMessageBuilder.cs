using System.Buffers.Binary;

namespace Ctfw.Linux.Tests.Support;

/// <summary>
/// Builds NFQNL_MSG_PACKET messages byte by byte, the way nfqnl_build_packet_message lays them out,
/// independently of the product's own netlink writer (so the tests do not check the code against itself).
/// </summary>
internal sealed class PacketMessageBuilder
{
    private readonly List<(ushort Type, byte[] Payload)> _attributes = [];

    public byte Family { get; set; } = 2;

    public ushort Queue { get; set; }

    public ushort MessageType { get; set; } = 0x0300;

    public PacketMessageBuilder Header(uint packetId, ushort hwProtocol, byte hook)
    {
        byte[] p = new byte[7];
        BinaryPrimitives.WriteUInt32BigEndian(p, packetId);
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), hwProtocol);
        p[6] = hook;
        return Attribute(1, p);
    }

    public PacketMessageBuilder U32(ushort type, uint value)
    {
        byte[] p = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(p, value);
        return Attribute(type, p);
    }

    public PacketMessageBuilder Attribute(ushort type, byte[] payload)
    {
        _attributes.Add((type, payload));
        return this;
    }

    public byte[] Build()
    {
        int length = 20;
        foreach ((_, byte[] p) in _attributes)
            length += Align(4 + p.Length);
        byte[] m = new byte[length];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), MessageType);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(6), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(12), 0);
        m[16] = Family;
        m[17] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(18), Queue);
        int at = 20;
        foreach ((ushort type, byte[] p) in _attributes)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(at), (ushort)(4 + p.Length));
            BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(at + 2), type);
            p.CopyTo(m, at + 4);
            at += Align(4 + p.Length);
        }
        return m;
    }

    /// <summary>A typical LOCAL_IN UDP packet message: every attribute the parser decodes.</summary>
    public static PacketMessageBuilder Typical(uint id, byte[] payload) =>
        new PacketMessageBuilder { Queue = 7 }
            .Header(id, 0x0800, 1)
            .U32(5, 3)              // NFQA_IFINDEX_INDEV
            .U32(6, 4)              // NFQA_IFINDEX_OUTDEV
            .U32(3, 0x2a)           // NFQA_MARK
            .Attribute(0x8000 | 11, [8, 0, 3, 0, 0, 0, 0, 8]) // NFQA_CT, nested flag set, one CTA_STATUS-like child
            .U32(12, 2)             // NFQA_CT_INFO: IP_CT_NEW
            .U32(13, 1500)          // NFQA_CAP_LEN
            .U32(14, 0x7)           // NFQA_SKB_INFO: CSUMNOTREADY | GSO | CSUM_NOTVERIFIED
            .Attribute(10, payload);

    public static byte[] UdpPayload(int length)
    {
        byte[] p = new byte[length];
        p[0] = 0x45;
        for (int i = 1; i < length; i++)
            p[i] = (byte)(i * 7);
        return p;
    }

    private static int Align(int n) => (n + 3) & ~3;
}
