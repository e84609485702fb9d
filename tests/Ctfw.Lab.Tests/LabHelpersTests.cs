using System.Text;
using Ctfw.Conntrack;
using Ctfw.Lab.Scenarios;
using Ctfw.Packets;

namespace Ctfw.Lab.Tests;

/// <summary>The lab's helper assignment: which packets get which helper, and the gateway rules that say the same.</summary>
public sealed class LabHelpersTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Select_FtpControlAndTftpRequestPorts_GetTheirHelpers(bool v6)
    {
        Assert.Equal(CtHelper.Ftp, LabHelpers.Select(new TcpPacket(Side.Client, v6) { SrcPort = 40000, DstPort = 21 }.ToBytes()));
        Assert.Equal(CtHelper.Tftp, LabHelpers.Select(new UdpPacket(Side.Client, v6, 40000, 69, 8).ToBytes()));
    }

    [Fact]
    public void Select_OtherPortsProtocolsAndReplies_GetNone()
    {
        Assert.Equal(CtHelper.None, LabHelpers.Select(new TcpPacket(Side.Client, false) { SrcPort = 40000, DstPort = 2121 }.ToBytes()));
        Assert.Equal(CtHelper.None, LabHelpers.Select(new UdpPacket(Side.Client, false, 40000, 6969, 8).ToBytes()));
        Assert.Equal(CtHelper.None, LabHelpers.Select(new UdpPacket(Side.Client, false, 40000, 21, 8).ToBytes()));
        Assert.Equal(CtHelper.None, LabHelpers.Select(new TcpPacket(Side.Client, false) { SrcPort = 40000, DstPort = 69 }.ToBytes()));
        // The server's answers carry the helper's port as the source: no template for them.
        Assert.Equal(CtHelper.None, LabHelpers.Select(new TcpPacket(Side.Server, false) { SrcPort = 21, DstPort = 40000 }.ToBytes()));
        Assert.Equal(CtHelper.None, LabHelpers.Select(new GenericPacket(Side.Client, false, 47).ToBytes()));
    }

    [Fact]
    public void Select_NonFirstFragment_GetsNone()
    {
        byte[] packet = new UdpPacket(Side.Client, false, 40000, 69, 64).ToBytes();
        PacketBuilder.Ipv4SetFragment(packet, 64, moreFragments: false);
        Assert.Equal(CtHelper.None, LabHelpers.Select(packet));
    }

    [Fact]
    public void RawRules_BothFamilies_OneCtRulePerAssignment()
    {
        string[] rules = [.. LabHelpers.RawRules().Select(r => string.Join(' ', r))];
        Assert.Equal(
        [
            "iptables -w -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp",
            "iptables -w -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp",
            "ip6tables -w -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp",
            "ip6tables -w -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp",
        ], rules);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void PacketSpecText_TcpAndUdp_CarriesTheTextWithAValidChecksum(bool v6)
    {
        const string port = "PORT 10,99,1,2,156,64\r\n";
        byte[] tcp = new TcpPacket(Side.Client, v6) { SrcPort = 40000, DstPort = 21, PayloadLength = port.Length, Text = port }.ToBytes();
        AssertPayload(tcp, port);
        const string rrq = "\0\u0001boot.img\0octet\0";
        byte[] udp = new UdpPacket(Side.Client, v6, 40000, 69, rrq.Length) { Text = rrq }.ToBytes();
        AssertPayload(udp, rrq);
    }

    [Fact]
    public void PacketSpecText_LengthMismatch_Throws()
    {
        Assert.Throws<ArgumentException>(() => new UdpPacket(Side.Client, false, 40000, 69, 3) { Text = "four" }.ToBytes());
    }

    private static void AssertPayload(byte[] packet, string text)
    {
        Assert.Equal(InvalidReason.None, PacketParser.Parse(packet, out ParsedPacket p));
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(packet, p));
        Assert.Equal(text, Encoding.Latin1.GetString(packet.AsSpan(packet.Length - text.Length)));
    }
}
