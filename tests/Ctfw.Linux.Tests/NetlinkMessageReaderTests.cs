using System.Buffers.Binary;
using Ctfw.Linux.Netlink;
using Ctfw.Linux.Tests.Support;

namespace Ctfw.Linux.Tests;

public sealed class NetlinkMessageReaderTests
{
    [Fact]
    public void TryRead_TwoMessagesInOneDatagram_ReturnsBothAligned()
    {
        byte[] first = new PacketMessageBuilder().Header(1, 0x0800, 1).Attribute(10, [1, 2, 3]).Build();
        byte[] second = Error(-2, sequence: 0);
        byte[] datagram = [.. first, .. second];

        var reader = new NetlinkMessageReader(datagram, datagramTruncated: false);

        Assert.True(reader.TryRead(out NlMsgHdr h1, out int o1, out int l1, out bool cut1));
        Assert.Equal((0x0300, 0, first.Length, false), (h1.Type, o1, l1, cut1));
        Assert.True(reader.TryRead(out NlMsgHdr h2, out int o2, out int l2, out _));
        Assert.Equal((NlMsgHdr.TypeError, first.Length, second.Length), (h2.Type, o2, l2));
        Assert.False(reader.TryRead(out _, out _, out _, out _));
        Assert.False(reader.Malformed);
    }

    [Fact]
    public void TryRead_MessageLongerThanDatagram_IsMalformedUnlessTruncatedByTheReceive()
    {
        byte[] message = new PacketMessageBuilder().Header(1, 0x0800, 1).Attribute(10, new byte[64]).Build();
        byte[] prefix = message[..40];

        var plain = new NetlinkMessageReader(prefix, datagramTruncated: false);
        Assert.False(plain.TryRead(out _, out _, out _, out _));
        Assert.True(plain.Malformed);

        var truncated = new NetlinkMessageReader(prefix, datagramTruncated: true);
        Assert.True(truncated.TryRead(out NlMsgHdr header, out int offset, out int length, out bool cut));
        Assert.Equal(((uint)message.Length, 0, 40, true), (header.Length, offset, length, cut));
        Assert.False(truncated.TryRead(out _, out _, out _, out _));
    }

    [Fact]
    public void TryRead_LengthBelowHeader_StopsAsMalformed()
    {
        byte[] datagram = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(datagram, 8);

        var reader = new NetlinkMessageReader(datagram, datagramTruncated: false);

        Assert.False(reader.TryRead(out _, out _, out _, out _));
        Assert.True(reader.Malformed);
    }

    [Fact]
    public void TryRead_ResumingAtAnOffset_ContinuesFromThere()
    {
        byte[] first = new PacketMessageBuilder().Header(1, 0x0800, 1).Build();
        byte[] second = new PacketMessageBuilder().Header(2, 0x0800, 1).Build();
        byte[] datagram = [.. first, .. second];

        var reader = new NetlinkMessageReader(datagram, datagramTruncated: false, startOffset: first.Length);

        Assert.True(reader.TryRead(out _, out int offset, out _, out _));
        Assert.Equal(first.Length, offset);
        Assert.False(reader.TryRead(out _, out _, out _, out _));
    }

    [Fact]
    public void TryRead_EveryPrefixOfAMultiMessageDatagram_NeverThrows()
    {
        byte[] datagram = [.. PacketMessageBuilder.Typical(1, new byte[30]).Build(), .. Error(-2, 0), .. PacketMessageBuilder.Typical(2, new byte[5]).Build()];
        for (int length = 0; length <= datagram.Length; length++)
        {
            foreach (bool truncated in (bool[])[false, true])
            {
                var reader = new NetlinkMessageReader(datagram.AsSpan(0, length), truncated);
                int count = 0;
                while (reader.TryRead(out _, out int offset, out int messageLength, out _))
                {
                    Assert.InRange(offset + messageLength, 0, length);
                    Assert.True(++count <= 3);
                }
            }
        }
    }

    internal static byte[] Error(int error, uint sequence)
    {
        byte[] m = new byte[36];
        BinaryPrimitives.WriteUInt32LittleEndian(m, 36);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), NlMsgHdr.TypeError);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), sequence);
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(16), error);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(20), 16);
        return m;
    }
}
