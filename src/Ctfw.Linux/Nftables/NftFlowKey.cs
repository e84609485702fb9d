using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Linux.Nftables;

//  The key of a flow set, `ipv4_addr . ipv4_addr . inet_service . inet_service` (or ipv6_addr), as
//  NFTA_DATA_VALUE carries it: each field of a concatenation starts a 32-bit register, so a port
//  (network order) is followed by two zero bytes. Checked against `nft add element` (strace).
//   IPv4 (16 bytes):  | saddr (4) | daddr (4) | sport (2) 0 0 | dport (2) 0 0 |
//   IPv6 (40 bytes):  | saddr (16) | daddr (16) | sport (2) 0 0 | dport (2) 0 0 |

/// <summary>One direction of a flow, the key of a flow set element.</summary>
public readonly record struct NftFlowKey(IpAddress Source, IpAddress Destination, ushort SourcePort, ushort DestinationPort, bool IsV6)
{
    public const int V4Length = 16;
    public const int V6Length = 40;

    /// <summary>NFTA_SET_KEY_LEN of the family's set.</summary>
    public static int LengthOf(bool isV6) => isV6 ? V6Length : V4Length;

    public int Length => LengthOf(IsV6);

    /// <summary>Writes the key as the kernel compares it; returns its length.</summary>
    public int Write(Span<byte> destination)
    {
        int address = IsV6 ? 16 : 4;
        if (IsV6)
        {
            Source.WriteV6(destination);
            Destination.WriteV6(destination[16..]);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, Source.V4);
            BinaryPrimitives.WriteUInt32BigEndian(destination[4..], Destination.V4);
        }
        Span<byte> ports = destination.Slice(2 * address, 8);
        ports.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(ports, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(ports[4..], DestinationPort);
        return Length;
    }

    /// <summary>Reads a key of 16 (IPv4) or 40 (IPv6) bytes; false for any other length or non-zero port padding.</summary>
    public static bool TryRead(ReadOnlySpan<byte> value, out NftFlowKey key)
    {
        key = default;
        bool v6;
        if (value.Length == V4Length)
            v6 = false;
        else if (value.Length == V6Length)
            v6 = true;
        else
            return false;
        int address = v6 ? 16 : 4;
        ReadOnlySpan<byte> ports = value.Slice(2 * address, 8);
        if (ports[2] != 0 || ports[3] != 0 || ports[6] != 0 || ports[7] != 0)
            return false;
        IpAddress source = v6 ? IpAddress.FromV6(value[..16]) : IpAddress.FromV4(value[..4]);
        IpAddress destination = v6 ? IpAddress.FromV6(value.Slice(16, 16)) : IpAddress.FromV4(value.Slice(4, 4));
        key = new NftFlowKey(source, destination, BinaryPrimitives.ReadUInt16BigEndian(ports), BinaryPrimitives.ReadUInt16BigEndian(ports[4..]), v6);
        return true;
    }

    /// <summary>The key of <paramref name="tuple"/>'s direction (TCP/UDP: SrcId/DstId are the ports).</summary>
    public static NftFlowKey FromTuple(in Ctfw.Conntrack.ConnTuple tuple) =>
        new(tuple.Src, tuple.Dst, tuple.SrcId, tuple.DstId, tuple.IsV6);

    public override string ToString() =>
        $"{Source.Format(IsV6)} . {Destination.Format(IsV6)} . {SourcePort} . {DestinationPort}";
}
