namespace Ctfw.Linux.Nftables;

/// <summary>
/// Wire constants of nf_tables (linux/netfilter/nf_tables.h, nfnetlink.h), values written out;
/// <c>NftablesCodecTests.Constants_MatchKernelHeaders</c> compares those the installed headers know
/// with them. The DESTROY messages (kernel 6.3) are newer than the installed uapi headers: their
/// values follow <c>enum nf_tables_msg_types</c> of the kernel source (NFT_MSG_GETRULE_RESET = 25, then
/// DESTROYTABLE … DESTROYFLOWTABLE, GETSETELEM_RESET).
/// </summary>
internal static class Nftables
{
    /// <summary>NFNL_SUBSYS_NFTABLES; nlmsg_type = (subsystem &lt;&lt; 8) | message.</summary>
    public const ushort Subsystem = 10;

    // nfnetlink batch delimiters (control messages below NLMSG_MIN_TYPE, not of a subsystem).
    public const ushort MsgBatchBegin = 0x10;   // NFNL_MSG_BATCH_BEGIN
    public const ushort MsgBatchEnd = 0x11;     // NFNL_MSG_BATCH_END

    public const ushort MsgNewTable = (Subsystem << 8) | 0;
    public const ushort MsgDelTable = (Subsystem << 8) | 2;
    public const ushort MsgNewChain = (Subsystem << 8) | 3;
    public const ushort MsgNewSet = (Subsystem << 8) | 9;
    public const ushort MsgNewSetElem = (Subsystem << 8) | 12;
    public const ushort MsgGetSetElem = (Subsystem << 8) | 13;
    public const ushort MsgDelSetElem = (Subsystem << 8) | 14;
    public const ushort MsgDestroyTable = (Subsystem << 8) | 26;    // deletes, and a missing table is no error
    public const ushort MsgDestroySetElem = (Subsystem << 8) | 30;  // likewise for an element

    // nlmsg_flags beyond NlMsgHdr's.
    public const ushort FlagReplace = 0x100;    // NLM_F_REPLACE
    public const ushort FlagExclusive = 0x200;  // NLM_F_EXCL
    public const ushort FlagCreate = 0x400;     // NLM_F_CREATE
    public const ushort FlagDump = 0x300;       // NLM_F_DUMP
    public const ushort FlagDumpInterrupted = 0x10;
    public const ushort FlagCapped = 0x100;     // NLM_F_CAPPED on NLMSG_ERROR: the request's payload is not echoed
    public const ushort FlagAckTlvs = 0x200;    // NLM_F_ACK_TLVS on NLMSG_ERROR: extended-ack attributes follow

    // Extended acknowledgements (linux/netlink.h): socket option NETLINK_EXT_ACK, and enum nlmsgerr_attrs.
    public const int NetlinkExtAck = 11;
    public const ushort ErrorAttrOffset = 2;    // NLMSGERR_ATTR_OFFS: u32, offset of the bad attribute in the request

    // Families (NFPROTO_*), carried in nfgen_family.
    public const byte FamilyUnspec = 0;
    public const byte FamilyInet = 1;
    public const byte FamilyIpv4 = 2;
    public const byte FamilyIpv6 = 10;

    // enum nft_table_attributes
    public const ushort TableName = 1;
    public const ushort TableFlags = 2;

    /// <summary>NFT_TABLE_F_OWNER: the table belongs to the netlink socket that created it (see <see cref="NftBatch.AddTable"/>).</summary>
    public const uint TableFlagOwner = 0x2;

    // enum nft_chain_attributes, enum nft_hook_attributes
    public const ushort ChainTable = 1;
    public const ushort ChainName = 3;
    public const ushort ChainHook = 4;
    public const ushort ChainPolicy = 5;
    public const ushort ChainType = 7;
    public const ushort HookNumber = 1;
    public const ushort HookPriority = 2;

    // enum nft_set_attributes
    public const ushort SetTable = 1;
    public const ushort SetName = 2;
    public const ushort SetFlags = 3;
    public const ushort SetKeyType = 4;
    public const ushort SetKeyLength = 5;
    public const ushort SetDesc = 9;
    public const ushort SetDescSize = 1;   // enum nft_set_desc_attributes
    public const ushort SetId = 10;
    public const ushort SetTimeout = 11;
    public const ushort SetExpr = 17;

    // enum nft_set_flags
    public const uint SetFlagTimeout = 0x10;    // NFT_SET_TIMEOUT
    public const uint SetFlagEval = 0x20;       // NFT_SET_EVAL: nft's "dynamic", updatable from the packet path

    // enum nft_set_elem_list_attributes
    public const ushort ElemListTable = 1;
    public const ushort ElemListSet = 2;
    public const ushort ElemListElements = 3;

    // enum nft_list_attributes
    public const ushort ListElem = 1;

    // enum nft_set_elem_attributes
    public const ushort ElemKey = 1;
    public const ushort ElemFlags = 3;
    public const ushort ElemTimeout = 4;
    public const ushort ElemExpiration = 5;
    public const ushort ElemExpr = 7;
    public const ushort ElemExpressions = 11;

    // enum nft_data_attributes
    public const ushort DataValue = 1;

    // enum nft_expr_attributes, enum nft_counter_attributes
    public const ushort ExprName = 1;
    public const ushort ExprData = 2;
    public const ushort CounterBytes = 1;
    public const ushort CounterPackets = 2;

    public const ushort MsgNewRule = (Subsystem << 8) | 6;
    public const ushort FlagAppend = 0x800;  // NLM_F_APPEND

    // enum nft_rule_attributes
    public const ushort RuleTable = 1;
    public const ushort RuleChain = 2;
    public const ushort RuleExpressions = 4;

    // Registers: NFT_REG_1..4 name 16-byte registers, NFT_REG32_00..15 the same space in 4-byte steps.
    public const uint Reg1 = 1;
    public const uint Reg32First = 8;

    // enum nft_meta_attributes, enum nft_meta_keys
    public const ushort MetaDreg = 1;
    public const ushort MetaKey = 2;
    public const ushort MetaSreg = 3;
    public const uint MetaMark = 3;
    public const uint MetaNfproto = 15;
    public const uint MetaL4proto = 16;

    // enum nft_cmp_attributes, NFT_CMP_EQ
    public const ushort CmpSreg = 1;
    public const ushort CmpOp = 2;
    public const ushort CmpData = 3;
    public const uint CmpEq = 0;

    // enum nft_payload_attributes, enum nft_payload_bases
    public const ushort PayloadDreg = 1;
    public const ushort PayloadBase = 2;
    public const ushort PayloadOffset = 3;
    public const ushort PayloadLength = 4;
    public const uint PayloadNetworkHeader = 1;
    public const uint PayloadTransportHeader = 2;

    // enum nft_bitwise_attributes, NFT_BITWISE_MASK_XOR (formerly _BOOL)
    public const ushort BitwiseSreg = 1;
    public const ushort BitwiseDreg = 2;
    public const ushort BitwiseLength = 3;
    public const ushort BitwiseMask = 4;
    public const ushort BitwiseXor = 5;
    public const ushort BitwiseOp = 6;
    public const uint BitwiseMaskXor = 0;

    // enum nft_lookup_attributes, enum nft_dynset_attributes, NFT_DYNSET_OP_UPDATE
    public const ushort LookupSet = 1;
    public const ushort LookupSreg = 2;
    public const ushort DynsetSetName = 1;
    public const ushort DynsetOp = 3;
    public const ushort DynsetSregKey = 4;
    public const uint DynsetOpUpdate = 1;

    // enum nft_immediate_attributes
    public const ushort ImmediateDreg = 1;
    public const ushort ImmediateData = 2;

    // Netfilter hooks (NF_INET_*) and verdicts for a base chain's policy.
    public const uint HookPrerouting = 0;
    public const uint HookInput = 1;
    public const uint HookForward = 2;
    public const uint HookOutput = 3;
    public const uint VerdictAccept = 1;  // NF_ACCEPT

    // nft's datatype ids (src/datatype.h), which NFTA_SET_KEY_TYPE carries for nft to print the set:
    // informational to the kernel. A concatenation packs them 6 bits each, first field highest.
    public const uint TypeIpv4Address = 7;
    public const uint TypeIpv6Address = 8;
    public const uint TypeInetService = 13;
    public const int TypeBits = 6;

    /// <summary>Longest table, set or chain name the kernel takes (NFT_NAME_MAXLEN - 1).</summary>
    public const int MaxNameLength = 255;
}
