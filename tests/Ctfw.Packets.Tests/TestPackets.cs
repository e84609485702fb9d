using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Packets.Tests;

internal delegate int BuildPacket(Span<byte> buffer);

/// <summary>Addresses, builders-to-arrays and byte surgery shared by the packet tests.</summary>
internal static class TestPackets
{
    public static readonly IpAddress V4Client = Addr("192.0.2.10");
    public static readonly IpAddress V4Server = Addr("198.51.100.20");
    public static readonly IpAddress V4Router = Addr("203.0.113.1");
    public static readonly IpAddress V6Client = Addr("2001:db8::10");
    public static readonly IpAddress V6Server = Addr("2001:db8:1::20");
    public static readonly IpAddress V6Router = Addr("2001:db8:ffff::1");
    public static readonly IpAddress V6LinkLocalRouter = Addr("fe80::1");

    public static IpAddress Client(bool v6) => v6 ? V6Client : V4Client;
    public static IpAddress Server(bool v6) => v6 ? V6Server : V4Server;
    public static IpAddress Router(bool v6) => v6 ? V6Router : V4Router;

    public static IpAddress Addr(string text)
    {
        Assert.True(IpAddress.TryParse(text, out IpAddress address, out _), text);
        return address;
    }

    public static byte[] Build(BuildPacket build)
    {
        byte[] buffer = new byte[70_000];
        int length = build(buffer);
        return buffer.AsSpan(0, length).ToArray();
    }

    public static TcpSpec Syn(bool v6) => new()
    {
        V6 = v6,
        Src = Client(v6),
        Dst = Server(v6),
        SrcPort = 40000,
        DstPort = 443,
        Seq = 0x1000_0000,
        Flags = TcpFlags.Syn,
        Window = 64240,
        Mss = 1460,
        SackPermitted = true,
        Timestamp = true,
        TsVal = 0xA1B2C3D4,
        WindowScale = 7,
    };

    public static TcpSpec DataSegment(bool v6, int payload = 100) => new()
    {
        V6 = v6,
        Src = Client(v6),
        Dst = Server(v6),
        SrcPort = 40000,
        DstPort = 443,
        Seq = 0x1000_0001,
        Ack = 0x2000_0001,
        Flags = TcpFlags.Ack | TcpFlags.Psh,
        Window = 502,
        Timestamp = true,
        TsVal = 7,
        TsEcr = 9,
        PayloadLength = payload,
        PayloadFill = 0x5A,
    };

    public static byte[] Tcp(in TcpSpec spec)
    {
        TcpSpec copy = spec;
        return Build(b => PacketBuilder.Tcp(b, copy));
    }

    public static byte[] Udp(bool v6, int payload = 30) =>
        Build(b => PacketBuilder.Udp(b, v6, Client(v6), Server(v6), 5353, 53, payload, payloadFill: 0x33));

    public static byte[] Echo(bool v6, ushort id = 0x1234, int payload = 16) => v6
        ? Build(b => PacketBuilder.Icmpv6(b, V6Client, V6Server, 128, 0, id, 1, payload))
        : Build(b => PacketBuilder.Icmp(b, V4Client, V4Server, 8, 0, id, 1, payload));

    public static ParsedPacket ParseOk(ReadOnlySpan<byte> packet)
    {
        InvalidReason reason = PacketParser.Parse(packet, out ParsedPacket parsed);
        Assert.Equal(InvalidReason.None, reason);
        return parsed;
    }

    public static InvalidReason Reason(ReadOnlySpan<byte> packet) => PacketParser.Parse(packet, out _);

    /// <summary>Inserts IPv4 options (a multiple of 4 bytes) and fixes IHL, total length and header checksum.</summary>
    public static byte[] WithIpv4Options(byte[] packet, ReadOnlySpan<byte> options)
    {
        int ihl = (packet[0] & 0xF) * 4;
        byte[] result = [.. packet.AsSpan(0, ihl), .. options, .. packet.AsSpan(ihl)];
        result[0] = (byte)(0x40 | (ihl + options.Length) / 4);
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(2), (ushort)result.Length);
        PacketBuilder.WriteIpv4HeaderChecksum(result);
        return result;
    }

    /// <summary>Builds an IPv6 packet then inserts extension headers; <paramref name="chain"/> lists them first to last.</summary>
    public static byte[] WithIpv6Extensions(byte[] packet, params (byte Type, int Length)[] chain)
    {
        byte[] buffer = new byte[packet.Length + 4096];
        packet.CopyTo(buffer, 0);
        int length = packet.Length;
        for (int i = chain.Length - 1; i >= 0; i--)
            length = PacketBuilder.Ipv6InsertExtensionHeader(buffer, length, chain[i].Type, chain[i].Length);
        return buffer.AsSpan(0, length).ToArray();
    }

    public static byte[] WithIpv6Fragment(byte[] packet, int offsetBytes, bool more)
    {
        byte[] buffer = new byte[packet.Length + 8];
        packet.CopyTo(buffer, 0);
        int length = PacketBuilder.Ipv6InsertFragmentHeader(buffer, packet.Length, offsetBytes, more);
        return buffer.AsSpan(0, length).ToArray();
    }

    public static void WriteU16(byte[] packet, int offset, int value) =>
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(offset), (ushort)value);
}

/// <summary>
/// The textbook RFC 1071 checksum, 16 bits at a time in big-endian order: an independent oracle for
/// the 8-byte fast path in <see cref="Checksums"/>.
/// </summary>
internal static class ReferenceChecksum
{
    public static ushort Sum(ReadOnlySpan<byte> data, uint acc = 0)
    {
        for (int i = 0; i + 1 < data.Length; i += 2)
            acc += (uint)(data[i] << 8 | data[i + 1]);
        if (data.Length % 2 == 1)
            acc += (uint)(data[^1] << 8);
        while (acc > 0xFFFF)
            acc = (acc & 0xFFFF) + (acc >> 16);
        return (ushort)acc;
    }

    /// <summary>One's-complement sum of pseudo-header plus segment; 0xFFFF means the checksum is right.</summary>
    public static ushort TransportSum(ReadOnlySpan<byte> packet, bool v6, byte protocol, int l3Length)
    {
        ReadOnlySpan<byte> l4 = packet[l3Length..];
        uint acc = 0;
        if (protocol != IpProto.Icmp)
        {
            acc += Sum(v6 ? packet.Slice(8, 32) : packet.Slice(12, 8));
            acc += (uint)l4.Length + protocol;
        }
        return Sum(l4, acc);
    }
}
