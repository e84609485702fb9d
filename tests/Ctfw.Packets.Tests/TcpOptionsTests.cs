using Ctfw.Packets;
using static Ctfw.Packets.Tests.TestPackets;

namespace Ctfw.Packets.Tests;

/// <summary>The kernel's tcp_options / tcp_sack walk (kernel-conntrack.md §4.9), through the parser and directly.</summary>
public class TcpOptionsTests
{
    private const uint Ack = 0x2000_0001;

    private static TcpOptions Read(params byte[] options)
    {
        TcpHeader.ReadOptions(options, Ack, out TcpOptions result);
        return result;
    }

    private static ParsedPacket ParseWith(bool v6, params byte[] options)
    {
        TcpSpec spec = DataSegment(v6, 10);
        return ParseOk(Build(b => PacketBuilder.TcpWithOptions(b, spec, options)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Parser_RawOptionsArea_PassedToWalkPaddedToFourBytes(bool v6)
    {
        ParsedPacket p = ParseWith(v6, 3, 3, 9);
        Assert.Equal(24, p.TcpHeaderLength);
        Assert.True(p.TcpOptions.HasWindowScale);
        Assert.Equal(9, p.TcpOptions.WindowScale);
        Assert.False(p.TcpOptions.Malformed);
    }

    [Fact]
    public void Walk_Empty_NothingSetSackLatestIsAck()
    {
        TcpOptions o = Read();
        Assert.Equal(Ack, o.SackLatest);
        Assert.False(o.HasWindowScale || o.SackPermitted || o.HasTimestamp || o.Malformed);
    }

    [Theory]
    [InlineData(14, 14)]
    [InlineData(15, 14)]
    [InlineData(255, 14)]
    [InlineData(0, 0)]
    public void Walk_WindowScale_CappedAtFourteen(byte value, byte expected)
    {
        TcpOptions o = Read(1, 3, 3, value);
        Assert.True(o.HasWindowScale);
        Assert.Equal(expected, o.WindowScale);
    }

    [Fact]
    public void Walk_WindowScaleWrongLength_Ignored()
    {
        TcpOptions o = Read(3, 4, 7, 0);
        Assert.False(o.HasWindowScale);
        Assert.False(o.Malformed);
    }

    [Fact]
    public void Walk_SackPermittedWrongLength_Ignored() => Assert.False(Read(4, 3, 0, 1).SackPermitted);

    [Fact]
    public void Walk_EolStopsBeforeLaterOptions()
    {
        TcpOptions o = Read(0, 3, 3, 5);
        Assert.False(o.HasWindowScale);
        Assert.False(o.Malformed);
    }

    [Fact]
    public void Walk_LengthZero_StopsMalformed()
    {
        TcpOptions o = Read(4, 2, 99, 0, 3, 3, 5);
        Assert.True(o.SackPermitted); // options before the bad one still count
        Assert.True(o.Malformed);
        Assert.False(o.HasWindowScale);
    }

    [Fact]
    public void Walk_LengthOne_StopsMalformed()
    {
        TcpOptions o = Read(99, 1, 3, 3, 5);
        Assert.True(o.Malformed);
        Assert.False(o.HasWindowScale);
    }

    [Fact]
    public void Walk_LengthBeyondArea_StopsMalformed()
    {
        TcpOptions o = Read(1, 1, 3, 5, 6, 0);
        Assert.True(o.Malformed);
        Assert.False(o.HasWindowScale);
    }

    [Fact]
    public void Walk_LoneKindByteAtEnd_StopsMalformed()
    {
        TcpOptions o = Read(1, 3, 3, 6, 8);
        Assert.True(o.HasWindowScale);
        Assert.True(o.Malformed);
    }

    [Fact]
    public void Walk_LengthExactlyRemaining_Accepted()
    {
        TcpOptions o = Read(1, 1, 30, 2);
        Assert.False(o.Malformed);
    }

    [Fact]
    public void Walk_MssAndTimestampExactLengthsOnly()
    {
        TcpOptions o = Read(2, 4, 0x05, 0xB4, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2);
        Assert.Equal(1460, o.Mss);
        Assert.True(o.HasTimestamp);
        Assert.Equal(1u, o.TsVal);
        Assert.Equal(2u, o.TsEcr);

        TcpOptions bad = Read(2, 5, 0x05, 0xB4, 0, 8, 9, 0, 0, 0, 1, 0, 0, 0);
        Assert.Equal(0, bad.Mss);
        Assert.False(bad.HasTimestamp);
        Assert.False(bad.Malformed);
    }

    [Fact]
    public void Sack_LatestRightEdgeByModularOrder()
    {
        // Edges straddle the 2^32 wrap: 0x00000010 is after 0xFFFFFFF0.
        TcpHeader.ReadOptions(Sack((0xFFFFFF00, 0xFFFFFFF0), (0xFFFFFFF0, 0x00000010)), 0xFFFF0000, out TcpOptions o);
        Assert.Equal(0x00000010u, o.SackLatest);
        Assert.Equal(2, o.SackBlockCount);
    }

    [Fact]
    public void Sack_AllEdgesBeforeAck_SackLatestIsAck()
    {
        TcpOptions o = Read(Sack((Ack - 100, Ack - 50)));
        Assert.Equal(Ack, o.SackLatest);
        Assert.Equal(1, o.SackBlockCount);
    }

    [Fact]
    public void Sack_LeftEdgesIgnored()
    {
        TcpOptions o = Read(Sack((Ack + 1000, Ack + 10)));
        Assert.Equal(Ack + 10, o.SackLatest);
    }

    [Theory]
    [InlineData(9)]
    [InlineData(11)]
    [InlineData(17)]
    public void Sack_IllSizedOption_SkippedAndNextWellFormedUsed(byte badLength)
    {
        byte[] bad = new byte[badLength];
        bad[0] = 5;
        bad[1] = badLength;
        bad[5] = 0xFF; // would be a big right edge if it were read
        TcpOptions o = Read([.. bad, .. Sack((Ack, Ack + 5))]);
        Assert.Equal(Ack + 5, o.SackLatest);
        Assert.False(o.Malformed);
    }

    [Fact]
    public void Sack_OnlyFirstWellFormedOptionCounts()
    {
        TcpOptions o = Read([.. Sack((Ack, Ack + 5)), .. Sack((Ack, Ack + 500))]);
        Assert.Equal(Ack + 5, o.SackLatest);
        Assert.Equal(1, o.SackBlockCount);
    }

    [Fact]
    public void Sack_AlignedTimestampOnly_SackLatestIsAckAndTimestampRead()
    {
        TcpOptions o = Read(1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6);
        Assert.Equal(Ack, o.SackLatest);
        Assert.True(o.HasTimestamp);
        Assert.Equal(5u, o.TsVal);
    }

    [Fact]
    public void Sack_AfterMalformedOption_NotReached()
    {
        TcpOptions o = Read([1, 1, 77, 0, .. Sack((Ack, Ack + 5))]);
        Assert.True(o.Malformed);
        Assert.Equal(Ack, o.SackLatest);
    }

    [Fact]
    public void Parser_SackThroughBuilder_Matches()
    {
        TcpSpec spec = DataSegment(false, 0);
        spec.Timestamp = false;
        ParsedPacket p = ParseOk(Build(b => PacketBuilder.Tcp(b, spec, [spec.Ack + 10, spec.Ack + 20, spec.Ack + 30, spec.Ack + 40, spec.Ack + 50, spec.Ack + 60, spec.Ack - 5, spec.Ack - 1])));
        Assert.Equal(4, p.TcpOptions.SackBlockCount);
        Assert.Equal(spec.Ack + 60, p.TcpOptions.SackLatest);
    }

    private static byte[] Sack(params (uint Left, uint Right)[] blocks)
    {
        byte[] o = new byte[2 + blocks.Length * 8];
        o[0] = 5;
        o[1] = (byte)o.Length;
        for (int i = 0; i < blocks.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(2 + i * 8), blocks[i].Left);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(6 + i * 8), blocks[i].Right);
        }
        return o;
    }
}
