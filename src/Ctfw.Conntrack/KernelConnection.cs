namespace Ctfw.Conntrack;

/// <summary>
/// One connection as ctnetlink shows it (kernel-conntrack.md §13.3), with no Linux types: what
/// <see cref="ConntrackEngine.Adopt"/> takes from a kernel dump and
/// <see cref="ConntrackEngine.ExportConnections"/> gives back for IPCTNL_MSG_CT_NEW. Both tuples are
/// kept as the kernel reports them, so an entry whose REPLY tuple is not the inverse of its ORIGINAL
/// one (NAT) can be recognised. Zones are in the tuples (<see cref="ConnTuple.Zone"/>); a directional
/// zone shows as two tuples with different zones.
/// </summary>
public readonly record struct KernelConnection
{
    public ConnTuple Original { get; init; }

    public ConnTuple Reply { get; init; }

    /// <summary>CTA_STATUS: the kernel's <c>ip_conntrack_status</c> bits (§1.6), bits 0–15 meaningful.</summary>
    public CtStatus Status { get; init; }

    /// <summary>CTA_TIMEOUT: whole seconds left (the kernel rounds down); 0 when absent (offloaded entries).</summary>
    public uint TimeoutSeconds { get; init; }

    /// <summary>CTA_MARK (connmark).</summary>
    public uint Mark { get; init; }

    /// <summary>CTA_PROTOINFO_TCP_STATE; <see cref="TcpState.None"/> for other protocols and when the dump had none.</summary>
    public TcpState TcpState { get; init; }

    /// <summary>CTA_PROTOINFO_TCP_WSCALE_ORIGINAL: the window scale of the ORIGINAL sender.</summary>
    public byte WindowScaleOriginal { get; init; }

    /// <summary>CTA_PROTOINFO_TCP_WSCALE_REPLY.</summary>
    public byte WindowScaleReply { get; init; }

    /// <summary>CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: the ORIGINAL sender's <c>IP_CT_TCP_FLAG_*</c> byte (§1.8).</summary>
    public byte TcpFlagsOriginal { get; init; }

    /// <summary>CTA_PROTOINFO_TCP_FLAGS_REPLY.</summary>
    public byte TcpFlagsReply { get; init; }

    /// <summary>CTA_HELP_NAME: the conntrack helper attached to the entry (e.g. "ftp"), or null.</summary>
    public string? Helper { get; init; }

    /// <summary>CTA_TUPLE_MASTER: an expected entry's master (its ORIGINAL tuple), or null.</summary>
    public ConnTuple? Master { get; init; }

    /// <summary>CTA_PROTOINFO_SCTP_STATE (the 6.x numbering, <see cref="Conntrack.SctpState"/>); None for other protocols.</summary>
    public SctpState SctpState { get; init; }

    /// <summary>CTA_PROTOINFO_SCTP_VTAG_ORIGINAL: the verification tag of ORIGINAL's packets.</summary>
    public uint SctpVtagOriginal { get; init; }

    /// <summary>CTA_PROTOINFO_SCTP_VTAG_REPLY.</summary>
    public uint SctpVtagReply { get; init; }

    /// <summary>
    /// The per-direction TCP flags that mean the same in any table: WINDOW_SCALE, SACK_PERM, CLOSE_INIT
    /// and BE_LIBERAL. The others describe window values ctnetlink does not carry (MAXACK_SET says
    /// td_maxack is valid, DATA_UNACKNOWLEDGED that td_end is ahead of the peer's ACK) or live only in
    /// last_flags; an entry created from a dump starts with zero windows, so they would be false.
    /// </summary>
    public const byte PortableTcpFlags = 0x01 | 0x02 | 0x04 | TcpFlagBeLiberal;

    /// <summary>IP_CT_TCP_FLAG_BE_LIBERAL (<c>TcpSideFlags.BeLiberal</c>): the direction's window checks are relaxed (a synced entry's, whose windows are unknown).</summary>
    public const byte TcpFlagBeLiberal = 0x08;
}

/// <summary>
/// The kernel's <c>ip_conntrack_status</c> bits (§1.6) that <see cref="CtStatus"/> does not name,
/// for reading and writing <see cref="KernelConnection.Status"/>.
/// </summary>
public static class KernelStatus
{
    public const CtStatus SrcNat = (CtStatus)(1u << 4);
    public const CtStatus DstNat = (CtStatus)(1u << 5);
    public const CtStatus SeqAdjust = (CtStatus)(1u << 6);
    public const CtStatus SrcNatDone = (CtStatus)(1u << 7);
    public const CtStatus DstNatDone = (CtStatus)(1u << 8);
    public const CtStatus Template = (CtStatus)(1u << 11);
    /// <summary>IPS_UNTRACKED, reused in the kernel as IPS_NAT_CLASH: a clash-resolved entry never inserted in the table.</summary>
    public const CtStatus NatClash = (CtStatus)(1u << 12);
    /// <summary>IPS_HELPER: a helper was attached explicitly (CT target).</summary>
    public const CtStatus Helper = (CtStatus)(1u << 13);
    public const CtStatus Offload = (CtStatus)(1u << 14);
    public const CtStatus HwOffload = (CtStatus)(1u << 15);

    /// <summary>The bits the kernel defines (§1.6); anything above is unknown to this build.</summary>
    public const CtStatus Defined = (CtStatus)0xFFFF;
}
