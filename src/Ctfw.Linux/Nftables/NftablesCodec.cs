using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Ctfw.Linux.Netlink;

namespace Ctfw.Linux.Nftables;

//  An nf_tables transaction on the wire: one datagram of nfnetlink messages, each nlmsghdr (16) +
//  nfgenmsg (4: family, version 0, res_id) + attributes (4-byte nlattr, payload padded to 4).
//
//    NFNL_MSG_BATCH_BEGIN   family AF_UNSPEC, res_id = NFNL_SUBSYS_NFTABLES (be16)
//    NFT_MSG_NEWTABLE       NFTA_TABLE_NAME (string) · NFTA_TABLE_FLAGS (be32)
//    NFT_MSG_NEWSET         NFTA_SET_TABLE · NAME · FLAGS (be32) · KEY_TYPE (be32) · KEY_LEN (be32) · ID (be32)
//                           · [DESC (nested: NFTA_SET_DESC_SIZE be32)] · TIMEOUT (be64 ms) · EXPR (nested: NFTA_EXPR_NAME "counter", NFTA_EXPR_DATA {})
//    NFT_MSG_NEWSETELEM     NFTA_SET_ELEM_LIST_TABLE · LIST_SET · LIST_ELEMENTS (nested) ─┐
//      (DEL/DESTROYSETELEM: the same without timeouts)                                 │
//        NFTA_LIST_ELEM (nested) ── NFTA_SET_ELEM_TIMEOUT (be64 ms) · NFTA_SET_ELEM_KEY ─┴─ NFTA_DATA_VALUE (key bytes)
//    NFNL_MSG_BATCH_END
//
//  The kernel runs the messages in order and commits all or none; with NLM_F_ACK each message gets
//  one NLMSG_ERROR (0 or -errno, by its sequence number), sent after the commit or the abort.
//  Message layouts, flags and attribute order follow what nft 1.0.6 sends (strace of `nft add …`),
//  plus NLM_F_ACK; nft's NFTA_SET_USERDATA (its own display hints) is left out.

/// <summary>
/// Encodes nf_tables requests and decodes its answers as pure functions over bytes (no socket, no
/// clock): what <see cref="NftablesSocket"/> sends and reads, testable without privileges. Writers
/// return the end offset, or -1 when the message would not fit the destination; readers never throw.
/// </summary>
public static class NftablesCodec
{
    private const ushort Nested = NlAttr.FlagNested;
    private const ushort Request = NlMsgHdr.FlagRequest;
    private const ushort Ack = NlMsgHdr.FlagAck;

    public const int BatchDelimiterSize = NetlinkWriter.NfHeaderSize;

    /// <summary>NFNL_MSG_BATCH_BEGIN / END: headers only, for the nftables subsystem.</summary>
    public static int WriteBatchDelimiter(Span<byte> d, int offset, bool begin, uint sequence)
    {
        if (d.Length - offset < BatchDelimiterSize)
            return -1;
        int end = offset + NetlinkWriter.WriteNfHeader(d[offset..], begin ? Nftables.MsgBatchBegin : Nftables.MsgBatchEnd,
            Request, sequence, Nftables.FamilyUnspec, Nftables.Subsystem);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>
    /// NFT_MSG_NEWTABLE: creates the table, or leaves an existing one as it is (no NLM_F_EXCL). With
    /// <paramref name="owner"/>, NFTA_TABLE_FLAGS carries NFT_TABLE_F_OWNER (as <c>nft add table … { flags owner; }</c>).
    /// </summary>
    public static int WriteNewTable(Span<byte> d, int offset, uint sequence, byte family, string table, bool owner = false)
    {
        if (d.Length - offset < NetlinkWriter.NfHeaderSize + StringSize(table) + 8)
            return -1;
        int end = Header(d, offset, Nftables.MsgNewTable, Request | Ack, sequence, family);
        end = WriteString(d, end, Nftables.TableName, table);
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.TableFlags, owner ? Nftables.TableFlagOwner : 0);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>NFT_MSG_DESTROYTABLE (idempotent: a missing table is acknowledged) or NFT_MSG_DELTABLE (ENOENT then).</summary>
    public static int WriteDeleteTable(Span<byte> d, int offset, uint sequence, byte family, string table, bool idempotent = true)
    {
        if (d.Length - offset < NetlinkWriter.NfHeaderSize + StringSize(table))
            return -1;
        int end = Header(d, offset, idempotent ? Nftables.MsgDestroyTable : Nftables.MsgDelTable, Request | Ack, sequence, family);
        end = WriteString(d, end, Nftables.TableName, table);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>
    /// NFT_MSG_NEWSET with NLM_F_CREATE: a flow set (see <see cref="NftFlowSet"/>), flags timeout and
    /// dynamic, a default timeout, and a counter expression the kernel gives every element.
    /// </summary>
    public static int WriteNewSet(Span<byte> d, int offset, uint sequence, NftFlowSet set, uint setId)
    {
        ArgumentNullException.ThrowIfNull(set);
        int size = NetlinkWriter.NfHeaderSize + StringSize(set.Table) + StringSize(set.Name) + (4 * 8) + 12 + 12 + 20;
        if (d.Length - offset < size)
            return -1;
        int end = Header(d, offset, Nftables.MsgNewSet, Request | Ack | Nftables.FlagCreate, sequence, set.Family);
        end = WriteString(d, end, Nftables.SetTable, set.Table);
        end = WriteString(d, end, Nftables.SetName, set.Name);
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.SetFlags, Nftables.SetFlagTimeout | Nftables.SetFlagEval);
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.SetKeyType, set.KeyType);
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.SetKeyLength, (uint)NftFlowKey.LengthOf(set.IsV6));
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.SetId, setId);
        if (set.MaxElements is uint maxElements)
        {
            int desc = end;
            end = BeginNest(d, end, Nftables.SetDesc);
            end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.SetDescSize, maxElements);
            EndNest(d, desc, end);
        }
        end = WriteUInt64BigEndian(d, end, Nftables.SetTimeout, Milliseconds(set.DefaultTimeout));
        if (set.Counters)
        {
            int expr = end;
            end = BeginNest(d, end, Nftables.SetExpr);
            end = WriteString(d, end, Nftables.ExprName, "counter");
            end = BeginNest(d, end, Nftables.ExprData); // a counter takes no arguments
            EndNest(d, expr, end);
        }
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>NFT_MSG_NEWCHAIN with NLM_F_CREATE: a base chain of type filter on <paramref name="hook"/> at <paramref name="priority"/>, policy accept.</summary>
    public static int WriteNewBaseChain(Span<byte> d, int offset, uint sequence, byte family, string table, string chain, uint hook, int priority)
    {
        int size = NetlinkWriter.NfHeaderSize + StringSize(table) + StringSize(chain) + StringSize("filter") + 8 + 20;
        if (d.Length - offset < size)
            return -1;
        int end = Header(d, offset, Nftables.MsgNewChain, Request | Ack | Nftables.FlagCreate, sequence, family);
        end = WriteString(d, end, Nftables.ChainTable, table);
        end = WriteString(d, end, Nftables.ChainName, chain);
        end = WriteString(d, end, Nftables.ChainType, "filter");
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.ChainPolicy, Nftables.VerdictAccept);
        int nest = end;
        end = BeginNest(d, end, Nftables.ChainHook);
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.HookNumber, hook);
        end = NetlinkWriter.WriteUInt32BigEndian(d, end, Nftables.HookPriority, unchecked((uint)priority));
        EndNest(d, nest, end);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>Bytes one element takes inside NFTA_SET_ELEM_LIST_ELEMENTS.</summary>
    public static int ElementSize(bool isV6, bool withTimeout) =>
        NlAttr.Size + (withTimeout ? 12 : 0) + NlAttr.Size + NlAttr.Size + NftFlowKey.LengthOf(isV6);

    /// <summary>Bytes of an element message around its elements (headers, table and set names, the list nest).</summary>
    public static int ElementMessageOverhead(NftFlowSet set) =>
        NetlinkWriter.NfHeaderSize + StringSize(set.Table) + StringSize(set.Name) + NlAttr.Size;

    /// <summary>
    /// NFT_MSG_NEWSETELEM (NLM_F_CREATE; NLM_F_EXCL when <paramref name="exclusive"/>, else an existing
    /// element is no error) with <paramref name="elements"/>, each with its own timeout when it has one.
    /// Returns -1 when they do not all fit, or when they would pass the 64 KiB a nest length can say.
    /// </summary>
    public static int WriteNewElements(Span<byte> d, int offset, uint sequence, NftFlowSet set, ReadOnlySpan<NftElement> elements, bool exclusive = false)
    {
        ArgumentNullException.ThrowIfNull(set);
        int payload = 0;
        foreach (NftElement e in elements)
        {
            if (e.Key.IsV6 != set.IsV6)
                throw new ArgumentException($"element {e.Key} is not of the set's family", nameof(elements));
            payload += ElementSize(set.IsV6, e.Timeout is not null);
        }
        if (payload + NlAttr.Size > ushort.MaxValue || d.Length - offset < ElementMessageOverhead(set) + payload)
            return -1;
        ushort flags = (ushort)(Request | Ack | Nftables.FlagCreate | (exclusive ? Nftables.FlagExclusive : 0));
        int end = ElementListHeader(d, offset, Nftables.MsgNewSetElem, flags, sequence, set, out int list);
        foreach (NftElement e in elements)
        {
            int item = end;
            end = BeginNest(d, end, Nftables.ListElem);
            if (e.Timeout is TimeSpan timeout)
                end = WriteUInt64BigEndian(d, end, Nftables.ElemTimeout, Milliseconds(timeout));
            end = WriteKey(d, end, e.Key);
            EndNest(d, item, end);
        }
        EndNest(d, list, end);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>
    /// NFT_MSG_DESTROYSETELEM (idempotent: an element already gone, e.g. expired, is no error) or
    /// NFT_MSG_DELSETELEM (ENOENT then) for <paramref name="keys"/>. -1 when they do not fit.
    /// </summary>
    public static int WriteDeleteElements(Span<byte> d, int offset, uint sequence, NftFlowSet set, ReadOnlySpan<NftFlowKey> keys, bool idempotent = true)
    {
        ArgumentNullException.ThrowIfNull(set);
        int payload = keys.Length * ElementSize(set.IsV6, withTimeout: false);
        if (payload + NlAttr.Size > ushort.MaxValue || d.Length - offset < ElementMessageOverhead(set) + payload)
            return -1;
        ushort type = idempotent ? Nftables.MsgDestroySetElem : Nftables.MsgDelSetElem;
        int end = ElementListHeader(d, offset, type, Request | Ack, sequence, set, out int list);
        end = WriteKeyElements(d, end, set, keys);
        EndNest(d, list, end);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>
    /// NFT_MSG_DELSETELEM with the table and set only, no element list: the kernel flushes the set
    /// (<c>nft flush set</c>, whose message this is byte for byte plus NLM_F_ACK). -1 when it does not fit.
    /// </summary>
    public static int WriteFlushSet(Span<byte> d, int offset, uint sequence, NftFlowSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (d.Length - offset < NetlinkWriter.NfHeaderSize + StringSize(set.Table) + StringSize(set.Name))
            return -1;
        // nft names the set before the table, here too.
        int end = Header(d, offset, Nftables.MsgDelSetElem, Request | Ack, sequence, set.Family);
        end = WriteString(d, end, Nftables.ElemListSet, set.Name);
        end = WriteString(d, end, Nftables.ElemListTable, set.Table);
        NetlinkWriter.Finish(d, offset, end);
        return end;
    }

    /// <summary>
    /// NFT_MSG_GETSETELEM without NLM_F_DUMP, with NLM_F_ACK (outside a batch): the elements of
    /// <paramref name="keys"/>. The kernel answers one NEWSETELEM per element in key order and stops at
    /// the first key it does not find, with ENOENT and (NETLINK_EXT_ACK) the offset of that key's
    /// attribute (<see cref="GetElementIndexAt"/>). Returns the length, or -1 when the keys do not fit.
    /// </summary>
    public static int WriteGetElements(Span<byte> d, uint sequence, NftFlowSet set, ReadOnlySpan<NftFlowKey> keys)
    {
        ArgumentNullException.ThrowIfNull(set);
        int payload = keys.Length * ElementSize(set.IsV6, withTimeout: false);
        if (payload + NlAttr.Size > ushort.MaxValue || d.Length < ElementMessageOverhead(set) + payload)
            return -1;
        int end = Header(d, 0, Nftables.MsgGetSetElem, Request | Ack, sequence, set.Family);
        end = WriteString(d, end, Nftables.ElemListSet, set.Name);
        end = WriteString(d, end, Nftables.ElemListTable, set.Table);
        int list = end;
        end = BeginNest(d, end, Nftables.ElemListElements);
        end = WriteKeyElements(d, end, set, keys);
        EndNest(d, list, end);
        NetlinkWriter.Finish(d, 0, end);
        return end;
    }

    /// <summary>
    /// Which key of a <see cref="WriteGetElements"/> request starts at byte <paramref name="offset"/> of
    /// it (an extended ack's NLMSGERR_ATTR_OFFS); -1 when the offset names no key (the table or set).
    /// </summary>
    public static int GetElementIndexAt(NftFlowSet set, int keys, uint offset)
    {
        ArgumentNullException.ThrowIfNull(set);
        int first = ElementMessageOverhead(set);
        int size = ElementSize(set.IsV6, withTimeout: false);
        if (offset < (uint)first || (offset - (uint)first) % (uint)size != 0)
            return -1;
        uint index = (offset - (uint)first) / (uint)size;
        return index < (uint)keys ? (int)index : -1;
    }

    /// <summary>
    /// NLMSGERR_ATTR_OFFS of an NLMSG_ERROR (sent with NLM_F_ACK_TLVS when the socket set
    /// NETLINK_EXT_ACK): where in the request the kernel found fault. False when there is none.
    /// </summary>
    public static bool TryReadErrorOffset(ReadOnlySpan<byte> message, out uint offset)
    {
        offset = 0;
        if (message.Length < NlMsgHdr.Size + NlMsgErr.Size)
            return false;
        NlMsgHdr header = MemoryMarshal.Read<NlMsgHdr>(message);
        if ((header.Flags & Nftables.FlagAckTlvs) == 0)
            return false;
        // The echoed request: its header only when capped, else all of it.
        int start = NlMsgHdr.Size + NlMsgErr.Size;
        if ((header.Flags & Nftables.FlagCapped) == 0)
        {
            uint echoed = MemoryMarshal.Read<uint>(message[(NlMsgHdr.Size + NlMsgErr.MessageOffset)..]);
            if (echoed < NlMsgHdr.Size || echoed > (uint)(message.Length - NlMsgHdr.Size - NlMsgErr.MessageOffset))
                return false;
            start = NlMsgHdr.Size + NlMsgErr.MessageOffset + NlMsgHdr.Align((int)echoed);
        }
        if (start > message.Length)
            return false;
        var attributes = new NetlinkAttributeReader(message[start..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == Nftables.ErrorAttrOffset && value.Length == sizeof(uint))
            {
                offset = MemoryMarshal.Read<uint>(value);
                return true;
            }
        }
        return false;
    }

    /// <summary>NFT_MSG_GETSETELEM with NLM_F_DUMP: every element of the set (outside a batch). Returns its length.</summary>
    public static int WriteDumpElements(Span<byte> d, uint sequence, NftFlowSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        if (d.Length < NetlinkWriter.NfHeaderSize + StringSize(set.Table) + StringSize(set.Name))
            return -1;
        // nft names the set before the table; the kernel does not mind the order.
        int end = Header(d, 0, Nftables.MsgGetSetElem, Request | Nftables.FlagDump, sequence, set.Family);
        end = WriteString(d, end, Nftables.ElemListSet, set.Name);
        end = WriteString(d, end, Nftables.ElemListTable, set.Table);
        NetlinkWriter.Finish(d, 0, end);
        return end;
    }

    /// <summary>The error code of an NLMSG_ERROR message (0 = ACK); false when it is too short to carry one.</summary>
    public static bool TryReadError(ReadOnlySpan<byte> message, out Errno error)
    {
        error = Errno.None;
        if (message.Length < NlMsgHdr.Size + sizeof(int))
            return false;
        error = (Errno)(-MemoryMarshal.Read<int>(message[(NlMsgHdr.Size + NlMsgErr.ErrorOffset)..]));
        return true;
    }

    /// <summary>
    /// Reads the elements of one NFT_MSG_NEWSETELEM dump message into <paramref name="elements"/>.
    /// False, with a reason, when the message or an element cannot be read (elements before it stay added).
    /// </summary>
    public static bool TryParseElements(ReadOnlySpan<byte> message, List<NftElementState> elements, out string? reason)
    {
        ArgumentNullException.ThrowIfNull(elements);
        reason = null;
        if (message.Length < NetlinkWriter.NfHeaderSize)
        {
            reason = "shorter than its headers";
            return false;
        }
        var attributes = new NetlinkAttributeReader(message[NetlinkWriter.NfHeaderSize..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type != Nftables.ElemListElements)
                continue;
            var list = new NetlinkAttributeReader(value);
            while (list.TryRead(out ushort itemType, out ReadOnlySpan<byte> item))
            {
                if (itemType != Nftables.ListElem)
                    continue;
                if (!TryParseElement(item, out NftElementState element, out reason))
                    return false;
                elements.Add(element);
            }
            if (list.Malformed)
            {
                reason = "element list runs past its attribute";
                return false;
            }
        }
        if (attributes.Malformed)
        {
            reason = "attribute runs past the message";
            return false;
        }
        return true;
    }

    private static bool TryParseElement(ReadOnlySpan<byte> nest, out NftElementState element, out string? reason)
    {
        element = default;
        reason = null;
        bool haveKey = false;
        NftFlowKey key = default;
        ulong timeout = 0, expiration = 0, packets = 0, bytes = 0;
        bool counter = false;
        var attributes = new NetlinkAttributeReader(nest);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            switch (type)
            {
                case Nftables.ElemKey:
                    var data = new NetlinkAttributeReader(value);
                    while (data.TryRead(out ushort dataType, out ReadOnlySpan<byte> bytesOfKey))
                    {
                        if (dataType == Nftables.DataValue)
                        {
                            if (!NftFlowKey.TryRead(bytesOfKey, out key))
                            {
                                reason = $"key of {bytesOfKey.Length} bytes is no flow key";
                                return false;
                            }
                            haveKey = true;
                        }
                    }
                    if (data.Malformed)
                    {
                        reason = "key runs past its attribute";
                        return false;
                    }
                    break;
                case Nftables.ElemTimeout:
                    if (!TryUInt64(value, "timeout", out timeout, out reason))
                        return false;
                    break;
                case Nftables.ElemExpiration:
                    if (!TryUInt64(value, "expiration", out expiration, out reason))
                        return false;
                    break;
                case Nftables.ElemExpr:
                    if (!TryParseCounter(value, ref counter, ref packets, ref bytes, out reason))
                        return false;
                    break;
                case Nftables.ElemExpressions:
                    var exprs = new NetlinkAttributeReader(value);
                    while (exprs.TryRead(out ushort exprType, out ReadOnlySpan<byte> expr))
                    {
                        if (exprType == Nftables.ListElem && !TryParseCounter(expr, ref counter, ref packets, ref bytes, out reason))
                            return false;
                    }
                    if (exprs.Malformed)
                    {
                        reason = "expression list runs past its attribute";
                        return false;
                    }
                    break;
            }
        }
        if (attributes.Malformed)
        {
            reason = "element attribute runs past its nest";
            return false;
        }
        if (!haveKey)
        {
            reason = "element without a key";
            return false;
        }
        element = new NftElementState(key, FromMilliseconds(timeout), FromMilliseconds(expiration), counter, packets, bytes);
        return true;
    }

    /// <summary>Reads a counter expression (NFTA_EXPR_NAME "counter", NFTA_EXPR_DATA {BYTES, PACKETS}); other expressions are skipped.</summary>
    private static bool TryParseCounter(ReadOnlySpan<byte> expr, ref bool counter, ref ulong packets, ref ulong bytes, out string? reason)
    {
        reason = null;
        bool isCounter = false;
        ReadOnlySpan<byte> data = default;
        var attributes = new NetlinkAttributeReader(expr);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == Nftables.ExprName)
                isCounter = value.Length >= 7 && value[..7].SequenceEqual("counter"u8) && (value.Length == 7 || value[7] == 0);
            else if (type == Nftables.ExprData)
                data = value;
        }
        if (attributes.Malformed)
        {
            reason = "expression runs past its attribute";
            return false;
        }
        if (!isCounter)
            return true;
        var fields = new NetlinkAttributeReader(data);
        while (fields.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == Nftables.CounterBytes && !TryUInt64(value, "counter bytes", out bytes, out reason))
                return false;
            if (type == Nftables.CounterPackets && !TryUInt64(value, "counter packets", out packets, out reason))
                return false;
        }
        if (fields.Malformed)
        {
            reason = "counter runs past its attribute";
            return false;
        }
        counter = true;
        return true;
    }

    private static bool TryUInt64(ReadOnlySpan<byte> value, string name, out ulong result, out string? reason)
    {
        if (value.Length != sizeof(ulong))
        {
            result = 0;
            reason = $"{name} of {value.Length} bytes, not 8";
            return false;
        }
        result = BinaryPrimitives.ReadUInt64BigEndian(value);
        reason = null;
        return true;
    }

    private static int Header(Span<byte> d, int offset, ushort type, ushort flags, uint sequence, byte family) =>
        offset + NetlinkWriter.WriteNfHeader(d[offset..], type, flags, sequence, family, 0);

    private static int ElementListHeader(Span<byte> d, int offset, ushort type, ushort flags, uint sequence, NftFlowSet set, out int list)
    {
        int end = Header(d, offset, type, flags, sequence, set.Family);
        end = WriteString(d, end, Nftables.ElemListTable, set.Table);
        end = WriteString(d, end, Nftables.ElemListSet, set.Name);
        list = end;
        return BeginNest(d, end, Nftables.ElemListElements);
    }

    /// <summary>One NFTA_LIST_ELEM holding only NFTA_SET_ELEM_KEY per key (delete and get).</summary>
    private static int WriteKeyElements(Span<byte> d, int end, NftFlowSet set, ReadOnlySpan<NftFlowKey> keys)
    {
        foreach (NftFlowKey key in keys)
        {
            if (key.IsV6 != set.IsV6)
                throw new ArgumentException($"key {key} is not of the set's family", nameof(keys));
            int item = end;
            end = BeginNest(d, end, Nftables.ListElem);
            end = WriteKey(d, end, key);
            EndNest(d, item, end);
        }
        return end;
    }

    private static int WriteKey(Span<byte> d, int offset, in NftFlowKey key)
    {
        int nest = offset;
        int end = BeginNest(d, offset, Nftables.ElemKey);
        int p = NetlinkWriter.WriteAttributeHeader(d, end, Nftables.DataValue, key.Length);
        end = p + key.Write(d[p..]); // 16 or 40: already aligned
        EndNest(d, nest, end);
        return end;
    }

    /// <summary>Attribute bytes of a NUL-terminated name, padded.</summary>
    private static int StringSize(string value) => NlMsgHdr.Align(NlAttr.Size + value.Length + 1);

    private static int WriteString(Span<byte> d, int offset, ushort type, string value)
    {
        int p = NetlinkWriter.WriteAttributeHeader(d, offset, type, value.Length + 1);
        for (int i = 0; i < value.Length; i++)
            d[p + i] = (byte)value[i]; // names are checked to be printable ASCII (NftFlowSet)
        d[p + value.Length] = 0;
        return NetlinkWriter.Pad(d, p + value.Length + 1);
    }

    private static int WriteUInt64BigEndian(Span<byte> d, int offset, ushort type, ulong value)
    {
        int p = NetlinkWriter.WriteAttributeHeader(d, offset, type, sizeof(ulong));
        BinaryPrimitives.WriteUInt64BigEndian(d[p..], value);
        return p + sizeof(ulong);
    }

    private static int BeginNest(Span<byte> d, int offset, ushort type) =>
        NetlinkWriter.WriteAttributeHeader(d, offset, (ushort)(type | Nested), 0);

    private static void EndNest(Span<byte> d, int start, int end)
    {
        ushort length = (ushort)(end - start);
        MemoryMarshal.Write(d[(start + NlAttr.LengthOffset)..], in length);
    }

    /// <summary>Saturates at <see cref="TimeSpan.MaxValue"/>: the kernel's u64 can say more than a TimeSpan holds.</summary>
    private static TimeSpan FromMilliseconds(ulong ms) =>
        ms >= (ulong)(TimeSpan.MaxValue.Ticks / TimeSpan.TicksPerMillisecond) ? TimeSpan.MaxValue : TimeSpan.FromTicks((long)ms * TimeSpan.TicksPerMillisecond);

    private static ulong Milliseconds(TimeSpan value) => (ulong)Math.Max(0, (long)Math.Ceiling(value.TotalMilliseconds));
}
