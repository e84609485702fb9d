using System.Buffers.Binary;
using Ctfw.Linux.Netlink;

namespace Ctfw.Linux.Nftables;

//  The rule issue 15's bypass chain holds, one per family and protocol, as nft compiles
//    meta l4proto tcp tcp flags & (fin|syn|rst) == 0
//    ip saddr . ip daddr . th sport . th dport @flows4 [update @flows4 { ip saddr . ip daddr . th sport . th dport }]
//    meta mark set MARK
//  (`nft --debug=netlink`):
//    [ meta load l4proto => reg 1 ]  [ cmp eq reg 1 0x06 ]
//    [ payload load 1b @ transport header + 13 => reg 1 ]  [ bitwise reg 1 = (reg 1 & 0x07) ^ 0 ]  [ cmp eq reg 1 0 ]   (TCP only)
//    [ meta load nfproto => reg 1 ]  [ cmp eq reg 1 0x02 ]                                                          (inet only)
//    [ payload load 4b @ network header + 12 => reg 1 ] … + 16 => reg 9, 2b @ transport + 0 => reg 10, + 2 => reg 11
//    [ lookup reg 1 set flows4 ]
//    (the four loads again) [ dynset update reg_key 1 set flows4 ]                                                  (with refresh)
//    [ immediate reg 1 MARK ]  [ meta set mark with reg 1 ]                                                        (NftMarkMode.Set)
//    [ meta load mark => reg 1 ]  [ bitwise reg 1 = ( reg 1 & ~MARK ) ^ MARK ]  [ meta set mark with reg 1 ]        (NftMarkMode.Or:
//                                                                              `meta mark set meta mark or MARK`)
//  Each expression is NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } } inside NFTA_RULE_EXPRESSIONS.
//  A concatenation field at 32-bit word k goes to NFT_REG_1 + k/4 when k is a multiple of 4 (16-byte
//  register), else NFT_REG32_00 + k — nft's choice, so the bytes match its own.
//  Kernel facts (6.18, NftablesLiveTests): a lookup runs the element's counter, and so does an update,
//  so with refresh every packet counts twice; the update re-arms the element to the set's default
//  timeout, not to the element's own.

/// <summary>How the bypass rule writes the packet mark.</summary>
public enum NftMarkMode
{
    /// <summary><c>meta mark set MARK</c>: the whole mark becomes MARK (other bits are lost).</summary>
    Set,

    /// <summary><c>meta mark set meta mark or MARK</c>: only MARK's bits are set, the others kept (shadow-mode marks, operators' bits).</summary>
    Or,
}

/// <summary>Writes the bypass rule (NFT_MSG_NEWRULE, appended) for one family and protocol of a flow set.</summary>
public static class NftFlowRule
{
    /// <summary>Upper bound of the rule message, for buffer checks.</summary>
    public const int MaxSize = 1536;

    private const byte Tcp = 6;
    private const byte TcpFinSynRst = 0x07;
    private const byte NfprotoIpv4 = 2;
    private const byte NfprotoIpv6 = 10;

    /// <summary>
    /// NFT_MSG_NEWRULE (NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK) into <paramref name="chain"/> of the set's
    /// table: packets of <paramref name="protocol"/> (6: TCP, and then only those without FIN, SYN or RST;
    /// 17: UDP) whose tuple is in <paramref name="set"/> get <paramref name="mark"/>; with
    /// <paramref name="refresh"/>, their element is updated (timeout re-armed) from the packet path.
    /// <paramref name="markMode"/> Or sets only <paramref name="mark"/>'s bits (then non-zero). Returns the
    /// end, or -1 when it does not fit.
    /// </summary>
    public static int Write(Span<byte> d, int offset, uint sequence, NftFlowSet set, string chain, byte protocol, bool refresh, uint mark,
        NftMarkMode markMode = NftMarkMode.Set)
    {
        ArgumentNullException.ThrowIfNull(set);
        NftFlowSet.CheckName(chain, nameof(chain));
        if (markMode == NftMarkMode.Or && mark == 0)
            throw new ArgumentOutOfRangeException(nameof(mark), "OR-ing 0 into the mark changes nothing: give the offload bit(s)");
        if (markMode is not (NftMarkMode.Set or NftMarkMode.Or))
            throw new ArgumentOutOfRangeException(nameof(markMode), markMode, "Set or Or");
        if (d.Length - offset < MaxSize + (2 * set.Name.Length) + set.Table.Length + chain.Length)
            return -1;
        var w = new Writer(d, Header(d, offset, sequence, set.Family));
        w.String(Nftables.RuleTable, set.Table);
        w.String(Nftables.RuleChain, chain);
        int list = w.Begin(Nftables.RuleExpressions);

        w.MetaLoad(Nftables.MetaL4proto, Nftables.Reg1);
        w.CmpEq(Nftables.Reg1, [protocol]);
        if (protocol == Tcp)
        {
            w.Payload(Nftables.Reg1, Nftables.PayloadTransportHeader, 13, 1);  // TCP flags
            w.Bitwise(Nftables.Reg1, [TcpFinSynRst], [0]);
            w.CmpEq(Nftables.Reg1, [0]);
        }
        if (set.Family == Nftables.FamilyInet)
        {
            w.MetaLoad(Nftables.MetaNfproto, Nftables.Reg1);
            w.CmpEq(Nftables.Reg1, [set.IsV6 ? NfprotoIpv6 : NfprotoIpv4]);
        }
        LoadKey(ref w, set.IsV6);
        w.Lookup(set.Name);
        if (refresh)
        {
            LoadKey(ref w, set.IsV6);
            w.DynsetUpdate(set.Name);
        }
        if (markMode == NftMarkMode.Or)
        {
            w.MetaLoad(Nftables.MetaMark, Nftables.Reg1);
            Span<byte> keep = stackalloc byte[4], bits = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(keep, ~mark); // a mark sits in the register in host order
            BinaryPrimitives.WriteUInt32LittleEndian(bits, mark);
            w.Bitwise(Nftables.Reg1, keep, bits);
        }
        else
        {
            w.Immediate(Nftables.Reg1, mark);
        }
        w.MetaSet(Nftables.MetaMark, Nftables.Reg1);

        w.End(list);
        NetlinkWriter.Finish(d, offset, w.Offset);
        return w.Offset;
    }

    private static int Header(Span<byte> d, int offset, uint sequence, byte family) =>
        offset + NetlinkWriter.WriteNfHeader(d[offset..], Nftables.MsgNewRule,
            NlMsgHdr.FlagRequest | NlMsgHdr.FlagAck | Nftables.FlagCreate | Nftables.FlagAppend, sequence, family, 0);

    /// <summary>saddr . daddr . sport . dport into the registers from NFT_REG_1 on.</summary>
    private static void LoadKey(ref Writer w, bool v6)
    {
        uint address = v6 ? 16u : 4u;
        uint source = v6 ? 8u : 12u; // offset of saddr in the IPv6 / IPv4 header
        w.Payload(Register(0), Nftables.PayloadNetworkHeader, source, address);
        w.Payload(Register(address / 4), Nftables.PayloadNetworkHeader, source + address, address);
        w.Payload(Register(2 * address / 4), Nftables.PayloadTransportHeader, 0, 2);
        w.Payload(Register((2 * address / 4) + 1), Nftables.PayloadTransportHeader, 2, 2);
    }

    private static uint Register(uint word) => word % 4 == 0 ? Nftables.Reg1 + (word / 4) : Nftables.Reg32First + word;

    /// <summary>Attribute writer over the caller's span (sized by <see cref="MaxSize"/> up front).</summary>
    private ref struct Writer(Span<byte> d, int offset)
    {
        private readonly Span<byte> _d = d;

        public int Offset { get; private set; } = offset;

        public int Begin(ushort type)
        {
            int start = Offset;
            Offset = NetlinkWriter.WriteAttributeHeader(_d, Offset, (ushort)(type | NlAttr.FlagNested), 0);
            return start;
        }

        public readonly void End(int start) =>
            BinaryPrimitives.WriteUInt16LittleEndian(_d[(start + NlAttr.LengthOffset)..], (ushort)(Offset - start));

        public void String(ushort type, string value)
        {
            int p = NetlinkWriter.WriteAttributeHeader(_d, Offset, type, value.Length + 1);
            for (int i = 0; i < value.Length; i++)
                _d[p + i] = (byte)value[i];
            _d[p + value.Length] = 0;
            Offset = NetlinkWriter.Pad(_d, p + value.Length + 1);
        }

        public void U32(ushort type, uint value) => Offset = NetlinkWriter.WriteUInt32BigEndian(_d, Offset, type, value);

        /// <summary>An nft_data nest: NFTA_DATA_VALUE with the bytes as they sit in the register.</summary>
        public void Data(ushort type, scoped ReadOnlySpan<byte> value)
        {
            int nest = Begin(type);
            int p = NetlinkWriter.WriteAttributeHeader(_d, Offset, Nftables.DataValue, value.Length);
            value.CopyTo(_d[p..]);
            Offset = NetlinkWriter.Pad(_d, p + value.Length);
            End(nest);
        }

        private int Expression(string name)
        {
            int element = Begin(Nftables.ListElem);
            String(Nftables.ExprName, name);
            return element;
        }

        private void Close(int element, int data)
        {
            End(data);
            End(element);
        }

        public void MetaLoad(uint key, uint dreg)
        {
            int e = Expression("meta"), data = Begin(Nftables.ExprData);
            U32(Nftables.MetaKey, key);
            U32(Nftables.MetaDreg, dreg);
            Close(e, data);
        }

        public void MetaSet(uint key, uint sreg)
        {
            int e = Expression("meta"), data = Begin(Nftables.ExprData);
            U32(Nftables.MetaKey, key);
            U32(Nftables.MetaSreg, sreg);
            Close(e, data);
        }

        public void CmpEq(uint sreg, scoped ReadOnlySpan<byte> value)
        {
            int e = Expression("cmp"), data = Begin(Nftables.ExprData);
            U32(Nftables.CmpSreg, sreg);
            U32(Nftables.CmpOp, Nftables.CmpEq);
            Data(Nftables.CmpData, value);
            Close(e, data);
        }

        public void Payload(uint dreg, uint payloadBase, uint offset, uint length)
        {
            int e = Expression("payload"), data = Begin(Nftables.ExprData);
            U32(Nftables.PayloadDreg, dreg);
            U32(Nftables.PayloadBase, payloadBase);
            U32(Nftables.PayloadOffset, offset);
            U32(Nftables.PayloadLength, length);
            Close(e, data);
        }

        /// <summary>reg = (reg &amp; mask) ^ xor, in place.</summary>
        public void Bitwise(uint reg, scoped ReadOnlySpan<byte> mask, scoped ReadOnlySpan<byte> xor)
        {
            int e = Expression("bitwise"), data = Begin(Nftables.ExprData);
            U32(Nftables.BitwiseSreg, reg);
            U32(Nftables.BitwiseDreg, reg);
            U32(Nftables.BitwiseOp, Nftables.BitwiseMaskXor);
            U32(Nftables.BitwiseLength, (uint)mask.Length);
            Data(Nftables.BitwiseMask, mask);
            Data(Nftables.BitwiseXor, xor);
            Close(e, data);
        }

        public void Lookup(string set)
        {
            int e = Expression("lookup"), data = Begin(Nftables.ExprData);
            U32(Nftables.LookupSreg, Nftables.Reg1);
            String(Nftables.LookupSet, set);
            Close(e, data);
        }

        public void DynsetUpdate(string set)
        {
            int e = Expression("dynset"), data = Begin(Nftables.ExprData);
            U32(Nftables.DynsetSregKey, Nftables.Reg1);
            U32(Nftables.DynsetOp, Nftables.DynsetOpUpdate);
            String(Nftables.DynsetSetName, set);
            Close(e, data);
        }

        /// <summary>A 32-bit value as the register holds it (host order: a mark is compared as a host integer).</summary>
        public void Immediate(uint dreg, uint value)
        {
            int e = Expression("immediate"), data = Begin(Nftables.ExprData);
            U32(Nftables.ImmediateDreg, dreg);
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
            Data(Nftables.ImmediateData, bytes);
            Close(e, data);
        }
    }
}
