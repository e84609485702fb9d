namespace Ctfw.Firewall;

/// <summary>The netfilter hook a packet was taken at (values as the kernel's NF_INET_*).</summary>
public enum PacketHook : byte
{
    PreRouting = 0,
    Input = 1,
    Forward = 2,
    Output = 3,
    PostRouting = 4,
}

/// <summary>
/// What the transport knows about a packet besides its bytes: where it was taken, the interfaces,
/// the mark, its full length and whether its checksum can be verified. Built by the adapter (the
/// NFQUEUE worker from NFQA_* attributes, replay from the capture record and its flags), read by
/// <see cref="FirewallPipeline.Decide"/>. A plain struct: copying it allocates nothing.
/// </summary>
public readonly struct PacketMeta
{
    public PacketHook Hook { get; init; }

    /// <summary>Input interface index; 0 when the hook has none (OUTPUT).</summary>
    public uint InInterface { get; init; }

    /// <summary>Output interface index; 0 when not yet routed (INPUT).</summary>
    public uint OutInterface { get; init; }

    /// <summary>skb->mark as the kernel handed it over (shadow mode's bits included).</summary>
    public uint Mark { get; init; }

    /// <summary>Length of the whole packet, for rule byte counters; 0 means the length in the IP header (a capture cut by its snap length).</summary>
    public int OriginalLength { get; init; }

    /// <summary>
    /// The transport checksum can and should be verified, as the kernel does at PRE_ROUTING when
    /// nothing vouched for it: false for locally generated packets, CHECKSUM_PARTIAL packets and
    /// packets cut short (a truncated queue copy or capture record cannot be summed).
    /// </summary>
    public bool VerifyChecksums { get; init; }

    /// <summary>Conntrack zone (CT --zone); 0 by default.</summary>
    public ushort Zone { get; init; }
}
