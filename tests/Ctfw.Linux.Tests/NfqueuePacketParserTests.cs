using System.Buffers.Binary;
using Ctfw.Linux.Nfqueue;
using Ctfw.Linux.Tests.Support;

namespace Ctfw.Linux.Tests;

public sealed class NfqueuePacketParserTests
{
    [Fact]
    public void TryParse_TypicalMessage_DecodesEveryAttribute()
    {
        byte[] payload = PacketMessageBuilder.UdpPayload(61);
        byte[] message = PacketMessageBuilder.Typical(0x01020304, payload).Build();

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.Equal(0x01020304u, p.PacketId);
        Assert.Equal(0x0800, p.HwProtocol);
        Assert.Equal(NfHook.LocalIn, p.Hook);
        Assert.Equal(2, p.Family);
        Assert.Equal(7, p.Queue);
        Assert.Equal(3u, p.InputInterface);
        Assert.Equal(4u, p.OutputInterface);
        Assert.Equal(0x2au, p.Mark);
        Assert.Equal(2u, p.ConntrackInfo);
        Assert.Equal(1500u, p.OriginalLength);
        Assert.Equal(payload, p.Payload.ToArray());
        Assert.Equal(new byte[] { 8, 0, 3, 0, 0, 0, 0, 8 }, p.ConntrackAttributes.ToArray());
        Assert.Equal(
            PacketFlags.HasMark | PacketFlags.HasConntrack | PacketFlags.HasConntrackInfo | PacketFlags.Gso |
            PacketFlags.ChecksumNotReady | PacketFlags.ChecksumNotVerified | PacketFlags.PayloadTruncated | PacketFlags.HasPayload,
            p.Flags);
        Assert.True(p.IsGso);
        Assert.True(p.ChecksumNotReady);
    }

    /// <summary>
    /// A message captured from Linux 6.18 (this VM) by a minimal Python netlink client, not by ctfw:
    /// queue 21, GSO flag, UDP "captured" to 127.0.0.1:7777 from LOCAL_OUT with skb mark 5.
    /// </summary>
    private const string CapturedLocalOutUdp =
        "60000000000300000000000000000000020000150b00010000000001080003000800060000000001080003000000000508000e0000000001" +
        "28000a004500002444a840004011f81e7f0000017f0000018fab1e610010fe236361707475726564";

    [Fact]
    public void TryParse_MessageCapturedFromTheKernel_DecodesAsTheKernelSentIt()
    {
        byte[] message = Convert.FromHexString(CapturedLocalOutUdp);

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.Equal(1u, p.PacketId);
        Assert.Equal(0x0800, p.HwProtocol);
        Assert.Equal(NfHook.LocalOut, p.Hook);
        Assert.Equal((2, (ushort)21), (p.Family, p.Queue));
        Assert.Equal((0u, 1u), (p.InputInterface, p.OutputInterface)); // lo
        Assert.Equal(5u, p.Mark);
        Assert.Equal(PacketFlags.HasMark | PacketFlags.ChecksumNotReady | PacketFlags.HasPayload, p.Flags);
        Assert.Equal(36, p.Payload.Length);
        Assert.Equal(36u, p.OriginalLength);
        Assert.Equal("captured"u8.ToArray(), p.Payload[28..].ToArray());
    }

    [Fact]
    public void TryParse_MinimalMessage_HasDefaultsAndNoFlags()
    {
        byte[] message = new PacketMessageBuilder { Family = 10 }.Header(9, 0x86DD, 3).Build();

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.Equal(9u, p.PacketId);
        Assert.Equal(0x86DD, p.HwProtocol);
        Assert.Equal(NfHook.LocalOut, p.Hook);
        Assert.Equal(10, p.Family);
        Assert.Equal(PacketFlags.None, p.Flags);
        Assert.Equal(0u, p.Mark);
        Assert.True(p.Payload.IsEmpty);
        Assert.True(p.ConntrackAttributes.IsEmpty);
        Assert.Equal(0u, p.OriginalLength);
    }

    [Fact]
    public void TryParse_AtAnOffsetInsideALargerBuffer_ViewsPointIntoIt()
    {
        byte[] message = PacketMessageBuilder.Typical(5, PacketMessageBuilder.UdpPayload(28)).Build();
        byte[] buffer = new byte[message.Length + 100];
        message.CopyTo(buffer, 40);

        Assert.True(NfqueuePacketParser.TryParse(buffer, 40, message.Length, cut: false, out PacketView p));

        Assert.Equal(PacketMessageBuilder.UdpPayload(28), p.Payload.ToArray());
        buffer[40 + message.Length - 28] = 0x99; // first payload byte, in place
        Assert.Equal(0x99, p.Payload[0]);
    }

    [Fact]
    public void TryParse_NoPacketHeader_IsRejected()
    {
        byte[] message = new PacketMessageBuilder().U32(3, 1).Attribute(10, [0x45, 0, 0, 20]).Build();

        Assert.False(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out _));
    }

    [Fact]
    public void TryParse_PacketHeaderTooShort_IsRejectedAsMalformed()
    {
        byte[] message = new PacketMessageBuilder().Attribute(1, [0, 0, 0, 1, 8, 0]).Build();

        Assert.False(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out _));
    }

    [Fact]
    public void TryParse_AttributeTooShortForItsType_IsSkippedAndFlagged()
    {
        byte[] message = new PacketMessageBuilder()
            .Header(1, 0x0800, 1)
            .Attribute(3, [0, 1])          // NFQA_MARK with 2 bytes
            .U32(5, 11)                    // still decoded after the bad one
            .Build();

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.Equal(PacketFlags.Malformed, p.Flags);
        Assert.Equal(0u, p.Mark);
        Assert.Equal(11u, p.InputInterface);
    }

    [Fact]
    public void TryParse_AttributeLengthBelowHeader_StopsTheWalkKeepsTheId()
    {
        byte[] message = new PacketMessageBuilder().Header(77, 0x0800, 1).U32(5, 11).Build();
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(32), 2); // nla_len of NFQA_IFINDEX_INDEV = 2

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.Equal(77u, p.PacketId);
        Assert.Equal(0u, p.InputInterface);
        Assert.True((p.Flags & PacketFlags.Malformed) != 0);
    }

    [Fact]
    public void TryParse_AttributeRunningPastTheMessage_StopsTheWalk()
    {
        byte[] message = new PacketMessageBuilder().Header(77, 0x0800, 1).Attribute(10, new byte[40]).Build();
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(32), 200); // NFQA_PAYLOAD claims 196 bytes

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.True(p.Payload.IsEmpty);
        Assert.Equal(PacketFlags.Malformed, p.Flags);
    }

    [Fact]
    public void TryParse_UnknownAttributesAndByteOrderFlag_AreIgnored()
    {
        byte[] message = new PacketMessageBuilder()
            .Header(3, 0x0800, 2)
            .Attribute(0x4000 | 3, [0, 0, 0, 5])  // NLA_F_NET_BYTEORDER set on NFQA_MARK: still the mark
            .Attribute(4, new byte[16])           // NFQA_TIMESTAMP: not decoded
            .Attribute(0x3FF0, [1, 2, 3])         // unknown type
            .Build();

        Assert.True(NfqueuePacketParser.TryParse(message, 0, message.Length, cut: false, out PacketView p));

        Assert.Equal(5u, p.Mark);
        Assert.Equal(PacketFlags.HasMark, p.Flags);
    }

    [Fact]
    public void TryParse_EveryPrefix_NeverThrowsAndKeepsTheIdOnceTheHeaderIsIn()
    {
        byte[] message = PacketMessageBuilder.Typical(42, PacketMessageBuilder.UdpPayload(100)).Build();
        const int HeaderAttributeEnd = 20 + 4 + 7;
        for (int length = 0; length <= message.Length; length++)
        {
            bool ok = NfqueuePacketParser.TryParse(message, 0, length, cut: length < message.Length, out PacketView p);
            if (length < HeaderAttributeEnd)
            {
                Assert.False(ok, $"prefix {length}");
                continue;
            }
            Assert.True(ok, $"prefix {length}");
            Assert.Equal(42u, p.PacketId);
            Assert.True(p.Payload.Length <= 100);
            _ = p.ConntrackAttributes.Length;
            Assert.Equal(length < message.Length, (p.Flags & PacketFlags.MessageTruncated) != 0);
            if (length == message.Length)
                Assert.Equal(100, p.Payload.Length);
        }
    }

    [Fact]
    public void TryParse_RandomMutations_NeverThrowAndViewsStayInBounds()
    {
        var random = new Random(20260122);
        byte[] original = PacketMessageBuilder.Typical(42, PacketMessageBuilder.UdpPayload(64)).Build();
        int accepted = 0;
        for (int round = 0; round < 20_000; round++)
        {
            byte[] m = (byte[])original.Clone();
            int mutations = random.Next(1, 6);
            for (int i = 0; i < mutations; i++)
            {
                int at = random.Next(m.Length);
                m[at] = random.Next(3) switch
                {
                    0 => (byte)random.Next(256),
                    1 => (byte)(m[at] ^ (1 << random.Next(8))),
                    _ => 0,
                };
            }
            int length = random.Next(3) == 0 ? random.Next(m.Length + 1) : m.Length;
            if (NfqueuePacketParser.TryParse(m, 0, length, cut: false, out PacketView p))
            {
                accepted++;
                Assert.True(p.Payload.Length <= length);
                Assert.True(p.ConntrackAttributes.Length <= length);
            }
        }
        Assert.InRange(accepted, 1, 19_999); // both outcomes were exercised
    }

    [Fact]
    public void TryParse_OffsetOrLengthOutsideTheBuffer_IsRejected()
    {
        byte[] message = PacketMessageBuilder.Typical(1, [0x45]).Build();

        Assert.False(NfqueuePacketParser.TryParse(message, 4, message.Length, cut: false, out _));
        Assert.False(NfqueuePacketParser.TryParse(message, message.Length + 1, 0, cut: false, out _));
        Assert.False(NfqueuePacketParser.TryParse(message, 0, -1, cut: false, out _));
    }
}
