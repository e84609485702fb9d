namespace Ctfw.Linux.Nfqueue;

/// <summary>Wire constants of linux/netfilter/nfnetlink_queue.h (spec §11), values written out.</summary>
internal static class Nfqnl
{
    /// <summary>NFNL_SUBSYS_QUEUE; nlmsg_type = (subsystem &lt;&lt; 8) | message.</summary>
    public const ushort Subsystem = 3;

    public const ushort MsgPacket = (Subsystem << 8) | 0;        // NFQNL_MSG_PACKET
    public const ushort MsgVerdict = (Subsystem << 8) | 1;       // NFQNL_MSG_VERDICT
    public const ushort MsgConfig = (Subsystem << 8) | 2;        // NFQNL_MSG_CONFIG
    public const ushort MsgVerdictBatch = (Subsystem << 8) | 3;  // NFQNL_MSG_VERDICT_BATCH

    // enum nfqnl_attr_type
    public const ushort AttrPacketHdr = 1;
    public const ushort AttrVerdictHdr = 2;
    public const ushort AttrMark = 3;
    public const ushort AttrTimestamp = 4;
    public const ushort AttrIfIndexInDev = 5;
    public const ushort AttrIfIndexOutDev = 6;
    public const ushort AttrIfIndexPhysInDev = 7;
    public const ushort AttrIfIndexPhysOutDev = 8;
    public const ushort AttrHwAddr = 9;
    public const ushort AttrPayload = 10;
    public const ushort AttrCt = 11;
    public const ushort AttrCtInfo = 12;
    public const ushort AttrCapLen = 13;
    public const ushort AttrSkbInfo = 14;
    public const ushort AttrUid = 16;
    public const ushort AttrGid = 17;
    public const ushort AttrPriority = 21;

    // enum nfqnl_attr_config
    public const ushort CfgCmd = 1;
    public const ushort CfgParams = 2;
    public const ushort CfgQueueMaxLen = 3;
    public const ushort CfgMask = 4;
    public const ushort CfgFlags = 5;

    // enum nfqnl_msg_config_cmds
    public const byte CmdBind = 1;
    public const byte CmdUnbind = 2;

    // enum nfqnl_config_mode
    public const byte CopyNone = 0;
    public const byte CopyMeta = 1;
    public const byte CopyPacket = 2;

    /// <summary>The kernel's ceiling for copy_range: 0xFFFF - NLA_HDRLEN (0 means this too).</summary>
    public const uint MaxCopyRange = 0xFFFF - 4;

    // NFQA_CFG_F_*
    public const uint FlagFailOpen = 0x01;
    public const uint FlagConntrack = 0x02;
    public const uint FlagGso = 0x04;
    public const uint FlagUidGid = 0x08;
    public const uint FlagSecCtx = 0x10;

    // NFQA_SKB_* (bits of NFQA_SKB_INFO)
    public const uint SkbCsumNotReady = 0x1;
    public const uint SkbGso = 0x2;
    public const uint SkbCsumNotVerified = 0x4;

    /// <summary>AF_UNSPEC: nfgen_family of user-to-kernel queue messages (ignored by the kernel).</summary>
    public const byte AfUnspec = 0;
}
