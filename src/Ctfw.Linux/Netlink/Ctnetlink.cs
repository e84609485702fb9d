namespace Ctfw.Linux.Netlink;

/// <summary>
/// Wire constants of ctnetlink (linux/netfilter/nfnetlink_conntrack.h, spec §13), values written out;
/// <c>CtnetlinkLayoutTests</c> compares each with the installed headers.
/// </summary>
internal static class Ctnetlink
{
    /// <summary>NFNL_SUBSYS_CTNETLINK; nlmsg_type = (subsystem &lt;&lt; 8) | message.</summary>
    public const ushort Subsystem = 1;

    public const ushort MsgNew = (Subsystem << 8) | 0;      // IPCTNL_MSG_CT_NEW
    public const ushort MsgGet = (Subsystem << 8) | 1;      // IPCTNL_MSG_CT_GET
    public const ushort MsgDelete = (Subsystem << 8) | 2;   // IPCTNL_MSG_CT_DELETE

    // nlmsg_flags beyond NlMsgHdr's.
    public const ushort FlagDumpInterrupted = 0x10;  // NLM_F_DUMP_INTR
    public const ushort FlagDump = 0x300;            // NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
    public const ushort FlagExclusive = 0x200;       // NLM_F_EXCL
    public const ushort FlagCreate = 0x400;          // NLM_F_CREATE

    // enum ctattr_type
    public const ushort TupleOrig = 1;
    public const ushort TupleReply = 2;
    public const ushort Status = 3;
    public const ushort ProtoInfo = 4;
    public const ushort Help = 5;
    public const ushort Timeout = 7;
    public const ushort Mark = 8;
    public const ushort TupleMaster = 14;
    public const ushort Zone = 18;

    // enum ctattr_tuple
    public const ushort TupleIp = 1;
    public const ushort TupleProto = 2;
    public const ushort TupleZone = 3;

    // enum ctattr_ip
    public const ushort IpV4Src = 1;
    public const ushort IpV4Dst = 2;
    public const ushort IpV6Src = 3;
    public const ushort IpV6Dst = 4;

    // enum ctattr_l4proto
    public const ushort ProtoNum = 1;
    public const ushort ProtoSrcPort = 2;
    public const ushort ProtoDstPort = 3;
    public const ushort ProtoIcmpId = 4;
    public const ushort ProtoIcmpType = 5;
    public const ushort ProtoIcmpCode = 6;
    public const ushort ProtoIcmpv6Id = 7;
    public const ushort ProtoIcmpv6Type = 8;
    public const ushort ProtoIcmpv6Code = 9;

    // enum ctattr_protoinfo, enum ctattr_protoinfo_tcp
    public const ushort ProtoInfoTcp = 1;
    public const ushort TcpState = 1;
    public const ushort TcpWscaleOriginal = 2;
    public const ushort TcpWscaleReply = 3;
    public const ushort TcpFlagsOriginal = 4;
    public const ushort TcpFlagsReply = 5;

    // enum ctattr_protoinfo (SCTP), enum ctattr_protoinfo_sctp
    public const ushort ProtoInfoSctp = 3;
    public const ushort SctpState = 1;
    public const ushort SctpVtagOriginal = 2;
    public const ushort SctpVtagReply = 3;

    /// <summary>SCTP_CONNTRACK_HEARTBEAT_SENT: the largest state 6.x uses (9, HEARTBEAT_ACKED, is "no longer used").</summary>
    public const byte MaxSctpState = 8;

    // enum ctattr_help
    public const ushort HelpName = 1;

    /// <summary>sizeof(struct nf_ct_tcp_flags): u8 flags, u8 mask.</summary>
    public const int TcpFlagsSize = 2;

    /// <summary>TCP_CONNTRACK_SYN_SENT2: the largest state a create accepts (6.x policy; older kernels: below TCP_CONNTRACK_MAX).</summary>
    public const byte MaxTcpState = 9;

    /// <summary>TCP_MAX_WSCALE.</summary>
    public const byte MaxWindowScale = 14;

    // enum ip_conntrack_status bits that matter to a create (nf_ct_change_status_common).
    public const uint StatusExpected = 1u << 0;
    public const uint StatusSeenReply = 1u << 1;
    public const uint StatusAssured = 1u << 2;
    public const uint StatusConfirmed = 1u << 3;
    public const uint StatusFixedTimeout = 1u << 10;

    /// <summary>
    /// What a create may ask for: ctnetlink_create_conntrack sets CONFIRMED before it applies CTA_STATUS,
    /// and nf_ct_change_status_common answers EBUSY to any status that differs from it in EXPECTED,
    /// CONFIRMED or DYING; NAT, NAT_DONE, SEQ_ADJUST, TEMPLATE, UNTRACKED and OFFLOAD bits are in
    /// IPS_UNCHANGEABLE_MASK and silently ignored. So: CONFIRMED always, plus these.
    /// </summary>
    public const uint CreatableStatus = StatusSeenReply | StatusAssured | StatusFixedTimeout;

    public const byte AfInet = 2;
    public const byte AfInet6 = 10;
    public const byte AfUnspec = 0;
}
