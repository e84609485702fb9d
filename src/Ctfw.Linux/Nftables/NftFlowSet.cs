namespace Ctfw.Linux.Nftables;

/// <summary>
/// A flow set: <c>type ipv4_addr . ipv4_addr . inet_service . inet_service</c> (or ipv6_addr),
/// <c>flags timeout, dynamic</c>, a default timeout, and (by default) a counter on every element —
/// what <c>nft add set inet TABLE NAME { type …; flags timeout, dynamic; counter; timeout …; }</c> makes.
/// </summary>
public sealed record NftFlowSet
{
    public NftFlowSet(string table, string name, bool isV6, TimeSpan defaultTimeout, byte family = Nftables.FamilyInet)
    {
        CheckName(table, nameof(table));
        CheckName(name, nameof(name));
        if (defaultTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(defaultTimeout), "must be positive");
        if (family is not (Nftables.FamilyInet or Nftables.FamilyIpv4 or Nftables.FamilyIpv6))
            throw new ArgumentOutOfRangeException(nameof(family), "inet, ip or ip6");
        Table = table;
        Name = name;
        IsV6 = isV6;
        DefaultTimeout = defaultTimeout;
        Family = family;
    }

    public string Table { get; }

    public string Name { get; }

    public bool IsV6 { get; }

    public TimeSpan DefaultTimeout { get; }

    /// <summary>NFPROTO_INET (1), NFPROTO_IPV4 (2) or NFPROTO_IPV6 (10).</summary>
    public byte Family { get; }

    /// <summary>
    /// NFTA_SET_DESC_SIZE, nft's <c>size</c>: the most elements the set takes (ENFILE past it). Null: the
    /// kernel's default, which for a dynamic set is 65 535 (as <c>nft list</c> shows).
    /// </summary>
    public uint? MaxElements { get; init; }

    /// <summary>Each element gets a counter (the set's NFTA_SET_EXPR).</summary>
    public bool Counters { get; init; } = true;

    /// <summary>NFTA_SET_KEY_TYPE: nft's datatype ids of the four fields, 6 bits each (0x1c734d for IPv4).</summary>
    public uint KeyType
    {
        get
        {
            uint address = IsV6 ? Nftables.TypeIpv6Address : Nftables.TypeIpv4Address;
            uint type = address;
            type = (type << Nftables.TypeBits) | address;
            type = (type << Nftables.TypeBits) | Nftables.TypeInetService;
            return (type << Nftables.TypeBits) | Nftables.TypeInetService;
        }
    }

    /// <summary>Table, set and chain names: 1..255 printable ASCII characters (the kernel takes any bytes but NUL; nft's grammar fewer).</summary>
    internal static void CheckName(string value, string parameter)
    {
        ArgumentNullException.ThrowIfNull(value, parameter);
        if (value.Length is 0 or > Nftables.MaxNameLength)
            throw new ArgumentException($"a name of 1 to {Nftables.MaxNameLength} characters, not {value.Length}", parameter);
        foreach (char c in value)
        {
            if (c is <= ' ' or > '~')
                throw new ArgumentException($"'{value}' holds a character other than printable ASCII", parameter);
        }
    }
}

/// <summary>An element to add: its key and its own timeout (null: the set's default).</summary>
public readonly record struct NftElement(NftFlowKey Key, TimeSpan? Timeout = null);

/// <summary>An element as a dump returns it: the timeout it was given, the time left, and its counter.</summary>
public readonly record struct NftElementState(NftFlowKey Key, TimeSpan Timeout, TimeSpan Expiration, bool HasCounter, ulong Packets, ulong Bytes);
