namespace Ctfw.Packets;

/// <summary>
/// Why a packet was classified INVALID (or dropped). One value per distinct kernel code path
/// (kernel-conntrack.md §2, §4.13, §7, §8), plus parse failures for input the kernel would not even
/// have accepted as an IP packet. <see cref="InvalidReasons.Name"/> gives the stable text used in
/// `replay` output and counters.
/// </summary>
public enum InvalidReason : byte
{
    None = 0,

    // L3 parse (§2 step 2)
    Truncated,               // fewer bytes captured than the IP header needs
    BadIpVersion,
    BadIpv4HeaderLength,     // IHL < 5 or beyond the captured bytes
    BadIpv4TotalLength,      // total length < IHL*4
    BadIpv6PayloadLength,    // jumbo (0) payload length or headers longer than the payload
    NonFirstFragment,        // IPv4 offset != 0 or IPv6 non-first fragment: conntrack sees no L4
    BadIpv6ExtensionHeader,  // extension chain truncated or malformed

    // TCP (§4.2, §4.5, §4.6, §4.7)
    TcpHeaderTruncated,
    TcpBadDataOffset,
    TcpBadChecksum,
    TcpInvalidFlags,
    TcpInvalidNew,           // first packet of a flow is SYN/ACK, FIN, RST or no-flag
    TcpLooseDisabled,        // mid-stream ACK with nf_conntrack_tcp_loose = 0
    TcpInvalidTransition,    // state table gives sIV
    TcpInvalidRst,           // RST below the peer's max ack
    TcpSeqOverUpperBound,
    TcpAckOverUpperBound,

    // UDP (§7)
    UdpHeaderTruncated,
    UdpBadLength,
    UdpBadChecksum,

    // ICMP / ICMPv6 (§8)
    IcmpHeaderTruncated,
    IcmpBadChecksum,
    IcmpUnknownType,         // IPv4 type > 18
    IcmpNoInverse,           // not a query type, cannot start an entry
    IcmpErrorBadInner,       // embedded header unreadable
    IcmpErrorNoEntry,        // embedded tuple matches no tracked flow
    IcmpErrorOuterMismatch,  // outer daddr != entry's destination
    Icmpv6RedirectInvalid,
    IcmpWrongFamily,         // ICMPv4 inside IPv6 or ICMPv6 inside IPv4

    // Generic protocols
    L4Truncated,             // ports of a protocol that has them are not readable

    // Not INVALID in the kernel's sense: the packet is dropped (§3.3, §4.6 reopen race).
    TableFull,
    ReopenRace,
    InsertClash,             // another packet of the same new flow was confirmed first (insert_failed)

    // ctfw beyond the kernel (opt-in rescue, docs/RESCUE.md); never produced with rescue off.
    RescueOutOfWindow,       // late FIN/RST for an expired flow whose tombstone's windows it does not fit

    // SCTP (nf_conntrack_proto_sctp.c)
    SctpShortPacket,         // fewer than the 12-byte common header
    SctpBadChecksum,         // CRC32c wrong (PRE_ROUTING, nf_conntrack_checksum = 1)
    SctpBadChunks,           // do_basic_checks: no chunk, a zero-length chunk, INIT/INIT_ACK/SHUTDOWN_COMPLETE not alone, COOKIE_ECHO/ACK not first
    SctpOotbNew,             // first packet of a flow carries ABORT, SHUTDOWN_COMPLETE or COOKIE_ACK (§8.4)
    SctpInvalidNew,          // sctp_new: a chunk that cannot start an entry (DATA, SACK, …), INIT with a vtag, INIT truncated
    SctpVtagMismatch,        // vtag is not the one this direction must carry (§8.5), incl. the ABORT/SHUTDOWN_COMPLETE T-bit and COOKIE_ECHO rules
    SctpInitVtagNotZero,     // INIT on an existing entry with a non-zero vtag (§8.5.1 A)
    SctpInitAckTag,          // INIT_ACK whose initiate tag is not the one the INIT announced, or a collision
    SctpHeartbeatVtag,       // HEARTBEAT/HEARTBEAT_ACK with a vtag the entry does not know, not accepted as a new path
    SctpInvalidTransition,   // state table gives sIV

    // UDP-Lite (udplite_error)
    UdpLiteShortPacket,      // fewer than 8 bytes of header
    UdpLiteBadCoverage,      // checksum coverage 1..7 or beyond the datagram
    UdpLiteNoChecksum,       // checksum 0: UDP-Lite mandates one
    UdpLiteBadChecksum,
    // Not INVALID: a conntrack helper dropped the packet (nf_conntrack_ftp/tftp returning NF_DROP).
    HelperPartial,           // FTP: a PORT/EPRT/227/229 cut short at the end of the segment
    HelperExpectFailed,      // the expectation could not be added (another master's clash, table full)
}

public static class InvalidReasons
{
    private static readonly string[] s_names =
    [
        "-",
        "truncated",
        "bad-ip-version",
        "bad-ipv4-header-length",
        "bad-ipv4-total-length",
        "bad-ipv6-payload-length",
        "non-first-fragment",
        "bad-ipv6-extension-header",
        "tcp-header-truncated",
        "tcp-bad-data-offset",
        "tcp-bad-checksum",
        "tcp-invalid-flags",
        "tcp-invalid-new",
        "tcp-loose-disabled",
        "tcp-invalid-transition",
        "tcp-invalid-rst",
        "tcp-seq-over-upper-bound",
        "tcp-ack-over-upper-bound",
        "udp-header-truncated",
        "udp-bad-length",
        "udp-bad-checksum",
        "icmp-header-truncated",
        "icmp-bad-checksum",
        "icmp-unknown-type",
        "icmp-no-inverse",
        "icmp-error-bad-inner",
        "icmp-error-no-entry",
        "icmp-error-outer-mismatch",
        "icmpv6-redirect-invalid",
        "icmp-wrong-family",
        "l4-truncated",
        "table-full",
        "reopen-race",
        "insert-clash",
        "rescue-out-of-window",
        "sctp-short-packet",
        "sctp-bad-checksum",
        "sctp-bad-chunks",
        "sctp-ootb-new",
        "sctp-invalid-new",
        "sctp-vtag-mismatch",
        "sctp-init-vtag-not-zero",
        "sctp-init-ack-tag",
        "sctp-heartbeat-vtag",
        "sctp-invalid-transition",
        "udplite-short-packet",
        "udplite-bad-coverage",
        "udplite-no-checksum",
        "udplite-bad-checksum",
        "helper-partial",
        "helper-expect-failed",
    ];

    public static int Count => s_names.Length;

    public static string Name(this InvalidReason reason) =>
        (uint)reason < (uint)s_names.Length ? s_names[(int)reason] : "unknown";
}
