using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>
/// A conntrack tuple (kernel-conntrack.md §1.3): addresses, L4 ids, protocol, family and zone.
/// For TCP/UDP the ids are ports; for ICMP/ICMPv6 <see cref="SrcId"/> is the echo identifier and
/// <see cref="DstId"/> is (type &lt;&lt; 8 | code); for other protocols both are zero.
/// 40 bytes, compared and hashed as five 64-bit words.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 8, Size = 40)]
public struct ConnTuple : IEquatable<ConnTuple>
{
    public IpAddress Src;
    public IpAddress Dst;
    public ushort SrcId;
    public ushort DstId;
    public byte Protocol;
    /// <summary>4 or 6.</summary>
    public byte IpVersion;
    public ushort Zone;

    public readonly bool IsV6 => IpVersion == 6;

    /// <summary>Protocols whose tuple carries ports (the kernel's port-based trackers we model).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasPorts(byte protocol) => protocol is IpProto.Tcp or IpProto.Udp or IpProto.UdpLite or IpProto.Sctp;

    /// <summary>The tuple of a parsed packet as it was sent (nf_ct_get_tuple).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ConnTuple From(in ParsedPacket p, ushort zone = 0)
    {
        ConnTuple t = default;
        t.Src = p.Src;
        t.Dst = p.Dst;
        t.Protocol = p.Protocol;
        t.IpVersion = p.IpVersion;
        t.Zone = zone;
        if (HasPorts(p.Protocol))
        {
            t.SrcId = p.SrcPort;
            t.DstId = p.DstPort;
        }
        else if (p.Protocol is IpProto.Icmp or IpProto.Icmpv6)
        {
            t.SrcId = p.IcmpId;
            t.DstId = (ushort)((p.IcmpType << 8) | p.IcmpCode);
        }
        return t;
    }

    /// <summary>The tuple of the packet an ICMP error quotes, as that packet was sent (not inverted).</summary>
    public static ConnTuple FromInner(in ParsedPacket p, ushort zone = 0)
    {
        ConnTuple t = default;
        t.Src = p.Inner.Src;
        t.Dst = p.Inner.Dst;
        t.Protocol = p.Inner.Protocol;
        t.IpVersion = p.IpVersion;
        t.Zone = zone;
        if (HasPorts(t.Protocol) || t.Protocol is IpProto.Icmp or IpProto.Icmpv6)
        {
            t.SrcId = p.Inner.SrcId;
            t.DstId = p.Inner.DstId;
        }
        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Equals(ConnTuple other)
    {
        ref ulong a = ref Unsafe.As<ConnTuple, ulong>(ref Unsafe.AsRef(in this));
        ref ulong b = ref Unsafe.As<ConnTuple, ulong>(ref other);
        return a == b
            && Unsafe.Add(ref a, 1) == Unsafe.Add(ref b, 1)
            && Unsafe.Add(ref a, 2) == Unsafe.Add(ref b, 2)
            && Unsafe.Add(ref a, 3) == Unsafe.Add(ref b, 3)
            && Unsafe.Add(ref a, 4) == Unsafe.Add(ref b, 4);
    }

    public override readonly bool Equals(object? obj) => obj is ConnTuple t && Equals(t);

    public override readonly int GetHashCode() => HashCode.Combine(Src, Dst, SrcId, DstId, Protocol, Zone);

    public static bool operator ==(ConnTuple a, ConnTuple b) => a.Equals(b);

    public static bool operator !=(ConnTuple a, ConnTuple b) => !a.Equals(b);

    /// <summary>
    /// The tuple of the other direction (§1.3): addresses and ids swapped; for ICMP the type maps
    /// through the request↔reply table and the id stays. False when there is no inverse (ICMP types
    /// that are not queries or replies), which makes a new entry impossible (§8.3).
    /// </summary>
    public readonly bool TryInvert(out ConnTuple inverse)
    {
        inverse = this;
        inverse.Src = Dst;
        inverse.Dst = Src;
        if (Protocol == IpProto.Icmp || Protocol == IpProto.Icmpv6)
        {
            int type = IcmpInverse.Of(Protocol, (byte)(DstId >> 8));
            if (type < 0)
                return false;
            inverse.DstId = (ushort)((type << 8) | (DstId & 0xFF));
            return true;
        }
        inverse.SrcId = DstId;
        inverse.DstId = SrcId;
        return true;
    }

    public override readonly string ToString()
    {
        string proto = Protocol switch { IpProto.Tcp => "tcp", IpProto.Udp => "udp", IpProto.Icmp => "icmp", IpProto.Icmpv6 => "icmpv6", IpProto.Sctp => "sctp", IpProto.UdpLite => "udplite", _ => Protocol.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        return $"{proto} {Src.Format(IsV6)}:{SrcId} -> {Dst.Format(IsV6)}:{DstId}";
    }
}

/// <summary>ICMP request↔reply type maps (`invmap` in nf_conntrack_proto_icmp{,v6}.c).</summary>
public static class IcmpInverse
{
    /// <summary>Returns the inverse type, or -1 when the type has none.</summary>
    public static int Of(byte protocol, byte type)
    {
        if (protocol == IpProto.Icmp)
        {
            return type switch
            {
                8 => 0, 0 => 8,       // echo
                13 => 14, 14 => 13,   // timestamp
                15 => 16, 16 => 15,   // info
                17 => 18, 18 => 17,   // address mask
                _ => -1,
            };
        }
        return type switch
        {
            128 => 129, 129 => 128,   // echo
            139 => 140, 140 => 139,   // node information
            _ => -1,
        };
    }

    /// <summary>Types that may create an entry (`valid_new`): queries only.</summary>
    public static bool IsQuery(byte protocol, byte type) => protocol == IpProto.Icmp
        ? type is 8 or 13 or 15 or 17
        : type is 128 or 139;
}
