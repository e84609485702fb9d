using System.Text;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>The FTP helper's reading of one segment (find_pattern and its number parsers), and the IPv6 text reader.</summary>
public class FtpParserTests
{
    private static readonly IpAddress Client = IpAddress.FromV4(0x0A630102);

    /// <summary>One segment read right after a '\n' (the helper state remembers the sequence number 100).</summary>
    private static HelperVerdict Read(string text, int dir, bool v6, IpAddress sender, out FtpCommand cmd)
    {
        HelperSlot h = default;
        if (dir == 0)
        {
            h.NlCount0 = 1;
            h.Nl0A = 100;
        }
        else
        {
            h.NlCount1 = 1;
            h.Nl1A = 100;
        }
        return FtpHelper.Segment(ref h, dir, 100, Encoding.ASCII.GetBytes(text), v6, sender, out cmd);
    }

    [Fact]
    public void Port_EveryProperPrefixIsPartial_WholeLineExpects()
    {
        const string line = "PORT 10,99,1,2,4,1\r\n";
        for (int n = 1; n < line.Length; n++)
        {
            HelperVerdict v = Read(line[..n], 0, false, Client, out _);
            // The terminator '\r' ends the numbers: from there on the command is whole.
            Assert.True((n > line.IndexOf('\r') ? HelperVerdict.Expect : HelperVerdict.Drop) == v, $"prefix {n}: {v}");
        }
        Assert.Equal(HelperVerdict.Expect, Read(line, 0, false, Client, out FtpCommand cmd));
        Assert.Equal(Client, cmd.Address);
        Assert.Equal(1025, cmd.Port);
    }

    [Fact]
    public void Reply227_NumbersFromFirstDigit_AnyTerminator()
    {
        const string line = "227 Entering Passive Mode (10,99,2,2,195,80).\r\n";
        int close = line.IndexOf(')');
        for (int n = 1; n < line.Length; n++)
        {
            HelperVerdict v = Read(line[..n], 1, false, Client, out _);
            Assert.True((n > close ? HelperVerdict.Expect : HelperVerdict.Drop) == v, $"prefix {n}: {v}");
        }
        Assert.Equal(HelperVerdict.Expect, Read("227 =10,99,2,2,195,80\r\n", 1, false, Client, out FtpCommand cmd));
        Assert.Equal(IpAddress.FromV4(0x0A630202), cmd.Address);
        Assert.Equal((195 << 8) | 80, cmd.Port);
        // Numbers the kernel does not range-check: the shifted numbers are ORed, so 256 bleeds into the byte before it.
        Assert.Equal(HelperVerdict.Expect, Read("227 (10,99,2,256,1,300)\r\n", 1, false, Client, out cmd));
        Assert.Equal(IpAddress.FromV4(0x0A630300), cmd.Address);
        Assert.Equal((ushort)((1 << 8) | 300), cmd.Port);
    }

    [Theory]
    [InlineData("PASV\r\n", 0, VAccept)]
    [InlineData("230 ok\r\n", 1, VAccept)]
    [InlineData("P", 0, VDrop)]
    [InlineData("E", 0, VDrop)]
    [InlineData("2", 1, VDrop)]
    [InlineData("229 ", 1, VDrop)]
    [InlineData("229 Entering Extended Passive Mode (|||0|)\r\n", 1, VDrop)]   // port 0
    [InlineData("229 Entering Extended Passive Mode (||6446|)\r\n", 1, VDrop)]  // two delimiters
    [InlineData("229 Entering Extended Passive Mode (1116446|)\r\n", 1, VDrop)] // digit delimiter
    [InlineData("229 Entering Extended Passive Mode (!!!6446!)\r\n", 1, VExpect)]
    [InlineData("PORT 10,99,1,2,4\r\n", 0, VDrop)]       // five numbers
    [InlineData("PORT 10,99,1,2,4,1,7\r\n", 0, VDrop)]   // seven
    [InlineData("PORT10,99,1,2,4,1\r\n", 0, VDrop)]      // no space: skips to none
    [InlineData("EPRT |1|10.99.1.2|1025|\r\n", 0, VExpect)]
    [InlineData("EPRT |1|10.99.1.2|1025\r\n", 0, VDrop)]
    [InlineData("EPRT |3|10.99.1.2|1025|\r\n", 0, VDrop)]
    [InlineData("PORT 10,99,1,2,4,1\r\n", 1, VAccept)]   // a command in the reply direction is not read
    [InlineData("227 (10,99,2,2,4,1)\r\n", 0, VAccept)]  // nor a reply from the client
    public void Segment_Verdicts(string text, int dir, int expected) =>
        Assert.Equal((HelperVerdict)expected, Read(text, dir, false, Client, out _));

    // HelperVerdict is internal: theory data carries its values.
    private const int VAccept = (int)HelperVerdict.Accept, VExpect = (int)HelperVerdict.Expect, VDrop = (int)HelperVerdict.Drop;

    [Fact]
    public void SegmentNotAfterNewline_IsNotRead_ButItsNewlineIsRemembered()
    {
        HelperSlot h = default;
        byte[] port = Encoding.ASCII.GetBytes("PORT 10,99,1,2,4,1\r\n");
        Assert.Equal(HelperVerdict.Accept, FtpHelper.Segment(ref h, 0, 100, port, false, Client, out _));
        Assert.Equal(HelperVerdict.Expect, FtpHelper.Segment(ref h, 0, 100 + (uint)port.Length, port, false, Client, out _));
        // Two places per direction: after a third line the oldest is gone, the two later ones stay.
        uint s2 = 100 + (2 * (uint)port.Length);
        Assert.Equal(HelperVerdict.Expect, FtpHelper.Segment(ref h, 0, s2, port, false, Client, out _));
        Assert.Equal(HelperVerdict.Accept, FtpHelper.Segment(ref h, 0, 100 + (uint)port.Length, "X"u8, false, Client, out _));
        Assert.Equal(HelperVerdict.Expect, FtpHelper.Segment(ref h, 0, s2 + (uint)port.Length, port, false, Client, out _));
        Assert.Equal(HelperVerdict.Accept, FtpHelper.Segment(ref h, 0, 100 + (uint)port.Length, port, false, Client, out _));
    }

    [Theory]
    [InlineData("fd99:1::2|", "fd990001000000000000000000000002", 9)]
    [InlineData("::1|", "00000000000000000000000000000001", 3)]
    [InlineData("::|", "00000000000000000000000000000000", 2)]
    [InlineData("1:2:3:4:5:6:7:8|", "00010002000300040005000600070008", 15)]
    [InlineData("::ffff:10.0.0.1|", "00000000000000000000ffff0a000001", 15)]
    [InlineData("FE80::A|", "fe80000000000000000000000000000a", 7)]
    public void Ipv6Text_Valid(string text, string hex, int length)
    {
        Assert.Equal(length, Ipv6Text.TryParse(Encoding.ASCII.GetBytes(text), (byte)'|', out IpAddress a));
        Assert.Equal(IpAddress.FromV6(Convert.FromHexString(hex)), a);
    }

    [Theory]
    [InlineData("fd99::1::2|")]
    [InlineData("1:2:3:4:5:6:7|")]
    [InlineData("1:2:3:4:5:6:7:8:9|")]
    [InlineData("12345::1|")]
    [InlineData("fd99:1::2")]
    [InlineData(":1::2|")]
    [InlineData("fd99:g::2|")]
    [InlineData("|")]
    public void Ipv6Text_Invalid(string text) =>
        Assert.Equal(0, Ipv6Text.TryParse(Encoding.ASCII.GetBytes(text), (byte)'|', out _));
}
