using System.Buffers.Binary;
using System.Text;

namespace Ctfw.Packets.Tests;

/// <summary>The SCTP and UDP-Lite builders and their checksums.</summary>
public class SctpBuilderTests
{
    private static readonly IpAddress A = IpAddress.FromV4(0x0A000001), B = IpAddress.FromV4(0x0A000002);

    [Fact]
    public void Crc32C_CheckValue_MatchesRfc3720()
    {
        // The CRC-32C check value (RFC 3720 B.4 / the Castagnoli catalogue): "123456789" → 0xE3069283.
        Assert.Equal(0xE3069283u, Crc32C.Compute(0, Encoding.ASCII.GetBytes("123456789")));
        // Continuing over a split input gives the same value.
        Assert.Equal(0xE3069283u, Crc32C.Compute(Crc32C.Compute(0, "1234"u8), "56789"u8));
    }

    [Fact]
    public void Sctp_Built_ParsesWithPortsAndVerifies()
    {
        var buf = new byte[256];
        Span<byte> chunk = stackalloc byte[8];
        int c = PacketBuilder.SctpChunk(chunk, 11, 0, default);
        int n = PacketBuilder.Sctp(buf, false, A, B, 40000, 3868, 0x11223344, chunk[..c]);
        Assert.Equal(20 + 12 + 4, n);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(buf.AsSpan(0, n), out ParsedPacket p));
        Assert.Equal(IpProto.Sctp, p.Protocol);
        Assert.Equal(40000, p.SrcPort);
        Assert.Equal(3868, p.DstPort);
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyTransport(buf.AsSpan(0, n), p));
        buf[n - 1] ^= 1;
        Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyTransport(buf.AsSpan(0, n), p));
    }

    [Fact]
    public void SctpChunk_OddValue_PaddedWithLengthUnpadded()
    {
        Span<byte> chunk = stackalloc byte[16];
        chunk.Fill(0xFF);
        int written = PacketBuilder.SctpChunk(chunk, 0, 3, [1, 2, 3, 4, 5]);
        Assert.Equal(12, written);
        Assert.Equal(9, BinaryPrimitives.ReadUInt16BigEndian(chunk[2..]));
        Assert.Equal([0, 0, 0], chunk[9..12].ToArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(20)]
    public void UdpLite_KernelPseudoHeader_VerifiesOnlyThatWay(int coverage)
    {
        var buf = new byte[256];
        int n = PacketBuilder.UdpLite(buf, false, A, B, 1, 2, 32, (ushort)coverage, payloadFill: 7, pseudoHeaderProtocol: IpProto.Udp);
        Assert.Equal(InvalidReason.None, PacketParser.Parse(buf.AsSpan(0, n), out ParsedPacket p));
        int covered = coverage == 0 ? p.L4Length : coverage;
        Assert.Equal(ChecksumResult.Valid, Checksums.VerifyUdpLite(buf.AsSpan(0, n), p, covered));
        n = PacketBuilder.UdpLite(buf, false, A, B, 1, 2, 32, (ushort)coverage, payloadFill: 7);
        Assert.Equal(ChecksumResult.Invalid, Checksums.VerifyUdpLite(buf.AsSpan(0, n), p, covered));
    }
}
