namespace Ctfw.Capture.Tests;

public class LinkLayerTests
{
    private static readonly byte[] s_ipv4 = [0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
    private static readonly byte[] s_ipv6 = [0x60, 0, 0, 0, 0, 0, 59, 64, .. new byte[32]];

    private static byte[] Ethernet(params ushort[] etherTypes)
    {
        var w = new ByteWriter { BigEndian = true }.Bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        for (int i = 0; i < etherTypes.Length; i++)
        {
            w.U16(etherTypes[i]);
            if (i < etherTypes.Length - 1)
                w.U16((ushort)(100 + i));  // TCI: the VLAN id
        }
        return w.ToArray();
    }

    private static void AssertIp(int linkType, byte[] frame, int expectedOffset, byte[] expectedPacket)
    {
        Assert.Equal(LinkResult.Ip, LinkLayer.GetNetworkPacket(linkType, frame, out var packet, out int offset));
        Assert.Equal(expectedOffset, offset);
        Assert.Equal(expectedPacket, packet.ToArray());
        Assert.True(LinkLayer.TryGetNetworkPacket(linkType, frame, out var again, out _));
        Assert.True(again == packet);
    }

    private static void AssertSkipped(int linkType, byte[] frame, LinkResult expected)
    {
        Assert.Equal(expected, LinkLayer.GetNetworkPacket(linkType, frame, out var packet, out _));
        Assert.True(packet.IsEmpty);
        Assert.False(LinkLayer.TryGetNetworkPacket(linkType, frame, out _, out _));
    }

    [Theory]
    [InlineData(new ushort[] { 0x0800 }, 14)]
    [InlineData(new ushort[] { 0x86DD }, 14)]
    [InlineData(new ushort[] { 0x8100, 0x0800 }, 18)]          // 802.1Q
    [InlineData(new ushort[] { 0x88A8, 0x8100, 0x86DD }, 22)]  // 802.1ad QinQ
    [InlineData(new ushort[] { 0x9100, 0x8100, 0x0800 }, 22)]  // legacy QinQ
    public void GetNetworkPacket_EthernetIpWithUpToTwoTags_ReturnsPacketAfterTags(ushort[] etherTypes, int offset)
    {
        byte[] ip = etherTypes[^1] == 0x0800 ? s_ipv4 : s_ipv6;

        AssertIp(LinkTypes.Ethernet, [.. Ethernet(etherTypes), .. ip], offset, ip);
    }

    [Theory]
    [InlineData(new ushort[] { 0x0806 })]                            // ARP
    [InlineData(new ushort[] { 0x8100, 0x0806 })]                    // tagged ARP
    [InlineData(new ushort[] { 0x0040 })]                            // 802.3 length, LLC follows
    [InlineData(new ushort[] { 0x88A8, 0x8100, 0x8100, 0x0800 })]    // a third tag
    public void GetNetworkPacket_EthernetNotIp_ReportsNotIp(ushort[] etherTypes) =>
        AssertSkipped(LinkTypes.Ethernet, [.. Ethernet(etherTypes), .. s_ipv4], LinkResult.NotIp);

    [Theory]
    [InlineData(new ushort[] { 0x0800 }, 13)]           // EtherType cut
    [InlineData(new ushort[] { 0x0800 }, 14)]           // no payload
    [InlineData(new ushort[] { 0x8100, 0x0800 }, 16)]   // cut inside the tag
    public void GetNetworkPacket_EthernetCut_ReportsTruncated(ushort[] etherTypes, int length)
    {
        byte[] frame = [.. Ethernet(etherTypes), .. s_ipv4];

        AssertSkipped(LinkTypes.Ethernet, frame[..length], LinkResult.Truncated);
    }

    [Theory]
    [InlineData(LinkTypes.Raw)]
    [InlineData(LinkTypes.RawBsd12)]
    [InlineData(LinkTypes.RawBsd14)]
    [InlineData(LinkTypes.Ipv4)]
    [InlineData(LinkTypes.Ipv6)]
    public void GetNetworkPacket_RawLinkTypes_ReturnsWholeFrame(int linkType)
    {
        AssertIp(linkType, s_ipv4, 0, s_ipv4);
        AssertSkipped(linkType, [], LinkResult.Truncated);
    }

    [Fact]
    public void GetNetworkPacket_LinuxSll_ReadsProtocolAtOffset14()
    {
        byte[] header = [0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];  // outgoing, ARPHRD_ETHER, 6-byte address

        AssertIp(LinkTypes.LinuxSll, [.. header, 0x86, 0xDD, .. s_ipv6], 16, s_ipv6);
        AssertSkipped(LinkTypes.LinuxSll, [.. header, 0x08, 0x06, .. s_ipv4], LinkResult.NotIp);
        AssertSkipped(LinkTypes.LinuxSll, [.. header, 0x08], LinkResult.Truncated);
    }

    [Fact]
    public void GetNetworkPacket_LinuxSll2_ReadsProtocolAtOffset0()
    {
        byte[] rest = [0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];  // reserved, ifindex 3, ARPHRD_ETHER, host, 6

        AssertIp(LinkTypes.LinuxSll2, [0x08, 0x00, .. rest, .. s_ipv4], 20, s_ipv4);
        AssertSkipped(LinkTypes.LinuxSll2, [0x08, 0x06, .. rest, .. s_ipv4], LinkResult.NotIp);
        AssertSkipped(LinkTypes.LinuxSll2, [0x08, 0x00, .. rest[..17]], LinkResult.Truncated);
    }

    [Theory]
    [InlineData(LinkTypes.Null, 2u, false)]
    [InlineData(LinkTypes.Null, 2u, true)]
    [InlineData(LinkTypes.Null, 10u, false)]   // Linux AF_INET6
    [InlineData(LinkTypes.Null, 24u, true)]    // NetBSD / OpenBSD
    [InlineData(LinkTypes.Null, 28u, false)]   // FreeBSD
    [InlineData(LinkTypes.Null, 30u, false)]   // Darwin
    [InlineData(LinkTypes.Null, 23u, false)]   // Windows
    [InlineData(LinkTypes.Loop, 2u, true)]
    [InlineData(LinkTypes.Loop, 24u, false)]   // written in the wrong order: still understood
    public void GetNetworkPacket_NullOrLoopIpFamily_ReturnsPacketAfterFamily(int linkType, uint family, bool bigEndian)
    {
        byte[] ip = family == 2 ? s_ipv4 : s_ipv6;

        AssertIp(linkType, [.. new ByteWriter { BigEndian = bigEndian }.U32(family).ToArray(), .. ip], 4, ip);
    }

    [Fact]
    public void GetNetworkPacket_NullOtherFamilyOrCut_IsSkipped()
    {
        AssertSkipped(LinkTypes.Null, [7, 0, 0, 0, .. s_ipv4], LinkResult.NotIp);  // AF_BRIDGE
        AssertSkipped(LinkTypes.Loop, [0, 0, 2], LinkResult.Truncated);
        AssertSkipped(LinkTypes.Loop, [0, 0, 0, 2], LinkResult.Truncated);
    }

    [Fact]
    public void GetNetworkPacket_UnknownLinkType_ReportsUnsupported() =>
        AssertSkipped(147, s_ipv4, LinkResult.UnsupportedLinkType);

    /// <summary>An NFLOG frame as the kernel's nfnetlink_log builds it, TLVs in the given byte order.</summary>
    private static byte[] Nflog(byte family, bool bigEndian, byte[]? payload, string? prefix, ushort hwProtocol = 0x0800,
        int cutPayloadTo = -1)
    {
        var w = new ByteWriter { BigEndian = bigEndian }.U8(family).U8(0).U8(0).U8(5);  // version 0, group 5
        w.U16(8).U16(1);                                          // NFULA_PACKET_HDR
        w.BigEndian = true;
        w.U16(hwProtocol).U8(3).U8(0);                            // hw_protocol (network order), hook
        w.BigEndian = bigEndian;
        w.U16(8).U16(11).U32(0);                                  // NFULA_MARK-ish attribute to skip
        if (prefix is not null)
        {
            byte[] text = [.. System.Text.Encoding.ASCII.GetBytes(prefix), 0];
            w.U16((ushort)(4 + text.Length)).U16(10).Bytes(text).Pad4();
        }
        if (payload is not null)
            w.U16((ushort)(4 + payload.Length)).U16(9).Bytes(payload).Pad4();
        byte[] frame = w.ToArray();
        return cutPayloadTo < 0 ? frame : frame[..(frame.Length - payload!.Length + cutPayloadTo)];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TryParseNflog_PayloadAndPrefix_ReturnsBoth(bool bigEndian)
    {
        byte[] frame = Nflog(2, bigEndian, s_ipv4[..19], "ctfw-drop: ");  // odd payload: padded in the frame

        Assert.True(LinkLayer.TryParseNflog(frame, out var packet, out var prefix));
        Assert.Equal(s_ipv4[..19], packet.ToArray());
        Assert.Equal("ctfw-drop: "u8.ToArray(), prefix.ToArray());
        AssertIp(LinkTypes.Nflog, frame, frame.Length - 20, s_ipv4[..19]);
    }

    [Fact]
    public void TryParseNflog_NoPrefix_ReturnsEmptyPrefix()
    {
        Assert.True(LinkLayer.TryParseNflog(Nflog(10, false, s_ipv6, null), out var packet, out var prefix));
        Assert.Equal(s_ipv6, packet.ToArray());
        Assert.True(prefix.IsEmpty);
    }

    [Fact]
    public void TryParseNflog_UnspecifiedFamilyButIpHwProtocol_ReturnsPacket() =>
        Assert.True(LinkLayer.TryParseNflog(Nflog(0, false, s_ipv6, "x", hwProtocol: 0x86DD), out _, out _));

    [Fact]
    public void TryParseNflog_PayloadCutBySnaplen_ReturnsCapturedPart()
    {
        Assert.True(LinkLayer.TryParseNflog(Nflog(2, false, s_ipv4, "p", cutPayloadTo: 10), out var packet, out var prefix));
        Assert.Equal(s_ipv4[..10], packet.ToArray());
        Assert.Equal("p"u8.ToArray(), prefix.ToArray());
    }

    [Fact]
    public void GetNetworkPacket_NflogArpFamily_ReportsNotIpButKeepsPrefix()
    {
        byte[] frame = Nflog(3, false, [0, 1, 8, 0], "arp", hwProtocol: 0x0806);

        AssertSkipped(LinkTypes.Nflog, frame, LinkResult.NotIp);
        Assert.False(LinkLayer.TryParseNflog(frame, out _, out var prefix));
        Assert.Equal("arp"u8.ToArray(), prefix.ToArray());
    }

    [Fact]
    public void GetNetworkPacket_NflogWithoutPayload_ReportsTruncated() =>
        AssertSkipped(LinkTypes.Nflog, Nflog(2, false, null, "no copy"), LinkResult.Truncated);

    [Fact]
    public void GetNetworkPacket_NflogTlvShorterThanItsHeader_ReportsTruncated()
    {
        byte[] frame = Nflog(2, false, s_ipv4, null);
        frame[4] = 2;  // first TLV's length

        AssertSkipped(LinkTypes.Nflog, frame, LinkResult.Truncated);
    }

    [Fact]
    public void GetNetworkPacket_EveryPrefixOfEveryFrame_NeverThrowsAndStaysInsideFrame()
    {
        (int LinkType, byte[] Frame)[] frames =
        [
            (LinkTypes.Ethernet, [.. Ethernet(0x88A8, 0x8100, 0x0800), .. s_ipv4]),
            (LinkTypes.LinuxSll, [0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00, .. s_ipv4]),
            (LinkTypes.LinuxSll2, [0x86, 0xDD, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, .. s_ipv6]),
            (LinkTypes.Null, [2, 0, 0, 0, .. s_ipv4]),
            (LinkTypes.Nflog, Nflog(2, false, s_ipv4, "prefix")),
            (LinkTypes.Nflog, Nflog(10, true, s_ipv6, "prefix")),
        ];
        foreach (var (linkType, frame) in frames)
        {
            for (int length = 0; length <= frame.Length; length++)
            {
                ReadOnlySpan<byte> cut = frame.AsSpan(0, length);
                LinkResult result = LinkLayer.GetNetworkPacket(linkType, cut, out var packet, out int offset);
                if (result == LinkResult.Ip)
                {
                    Assert.False(packet.IsEmpty);
                    Assert.True(packet == cut.Slice(offset, packet.Length));
                }
                else
                {
                    Assert.Equal(LinkResult.Truncated, result);
                }
            }
        }
    }
}
