using System.Buffers.Binary;
using System.Globalization;
using Ctfw.Linux.Netlink;
using Ctfw.Linux.Nftables;
using Ctfw.Packets;

namespace Ctfw.Linux.Tests;

/// <summary>
/// nf_tables messages as bytes, without a socket. The golden messages are what nft 1.0.6 itself sent
/// on this machine's kernel (6.18), captured with
/// <c>strace -e trace=sendmsg -e write=3 -x nft add table inet ctfw</c> (and likewise for the set,
/// element, chain and delete commands, and <c>-e read=3</c> for the dump answer of <c>nft list set</c>),
/// hex copied from the dump. ctfw's messages differ from nft's only where each test says: NLM_F_ACK on
/// every message, no NFTA_SET_USERDATA (nft's display hints), no NFTA_SET_ELEM_LIST_SET_ID (nft's
/// in-transaction set reference), zeroed padding.
/// </summary>
public sealed class NftablesCodecTests
{
    // ---- nft's own messages (nlmsghdr onward, one message each) ----
    private const string NftNewTable = "28000000000a01000100000000000000010000000900010063746677000000000800020000000000";
    private const string NftNewSet4 = "80000000090a01040100000000000000010000000900010063746677000000000b000200666c6f7773340000080003000000003008000400001c734d080005000000001008000a00000000010c000b00000000000000753014000d00000400000000030800040d0000000100140011800c000100636f756e7465720004000280";
    private const string NftNewSet6 = "80000000090a01040100000000000000010000000900010063746677000000000b000200666c6f77733600000800030000000030080004000020834d080005000000002808000a00000000010c000b00000000000000753014000d00000400000000030800040d0000000100140011800c000100636f756e7465720004000280";
    // ...with "size 1048576;" added
    private const string NftNewSet4Sized = "8c000000090a01040100000000000000010000000900010063746677000000000b000200666c6f7773340000080003000000003008000400001c734d080005000000001008000a00000000010c00098008000100001000000c000b00000000000000753014000d00000400000000030800040d0000000100140011800c000100636f756e7465720004000280";
    // nft add element inet ctfw flows4 '{ 10.0.0.1 . 10.0.0.2 . 1234 . 80 timeout 60s }'
    private const string NftNewElem4 = "600000000c0a01040100000000000000010000000900010063746677000000000b000200666c6f777334000008000400000000012c000380280001800c000400000000000000ea6018000180140001000a0000010a00000204d2000000500000";
    // nft add element inet ctfw flows6 '{ fd00::1 . fd00::2 . 1234 . 80 timeout 90s }'
    private const string NftNewElem6 = "780000000c0a01040100000000000000010000000900010063746677000000000b000200666c6f7773360000080004000000000244000380400001800c0004000000000000015f90300001802c000100fd000000000000000000000000000001fd00000000000000000000000000000204d2000000500000";
    // nft delete element inet ctfw flows4 '{ 10.0.0.1 . 10.0.0.2 . 1234 . 80 }'
    private const string NftDelElem4 = "4c0000000e0a01000100000000000000010000000900010063746677000000000b000200666c6f7773340000200003801c00018018000180140001000a0000010a00000204d2000000500000";
    private const string NftDelTable = "20000000020a0100010000000000000001000000090001006374667700000000";
    // nft add chain inet ctfw bypass '{ type filter hook forward priority -10; policy accept; }'
    private const string NftNewChain = "54000000030a01040100000000000000010000000900010063746677000000000b00030062797061737300000b00070066696c7465720000080005000000000114000480080001000000000208000200fffffff6";
    // nft list set inet ctfw flows4: the GETSETELEM request (nft leaves stale bytes "tfw" in the last padding; ctfw zeroes it)
    private const string NftGetElems = "2c0000000d0a01030000000000000000010000000b000200666c6f7773340000090001006374667700746677";
    // ...and the kernel's answer to it: one NEWSETELEM (NLM_F_MULTI) with the element, an empty one, NLMSG_DONE.
    private const string KernelElemDump = "900000000c0a0200000000007d100000010000180900010063746677000000000b000200666c6f7773340000640003006000010018000100140001000a0000010a00000204d20000005000002c0007000c000100636f756e746572001c0002000c00010000000000000000000c00020000000000000000000c000400000000000000ea600c000500000000000000ea58" +
        "300000000c0a0200000000007d100000010000180900010063746677000000000b000200666c6f7773340000040003001400000003000200000000007d10000000000000";

    private static readonly NftFlowSet Set4 = new("ctfw", "flows4", isV6: false, TimeSpan.FromSeconds(30));
    private static readonly NftFlowSet Set6 = new("ctfw", "flows6", isV6: true, TimeSpan.FromSeconds(30));

    private static NftFlowKey Key4(string src, string dst, ushort sport, ushort dport)
    {
        Assert.True(IpAddress.TryParse(src, out IpAddress s, out bool v6));
        Assert.True(IpAddress.TryParse(dst, out IpAddress d, out _));
        return new NftFlowKey(s, d, sport, dport, v6);
    }

    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    /// <summary>nft's message with ctfw's flags (NLM_F_ACK added).</summary>
    private static byte[] WithAck(byte[] message)
    {
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(message.AsSpan(NlMsgHdr.FlagsOffset));
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(NlMsgHdr.FlagsOffset), (ushort)(flags | NlMsgHdr.FlagAck));
        return message;
    }

    private static byte[] WithType(byte[] message, ushort type)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(message.AsSpan(NlMsgHdr.TypeOffset), type);
        return message;
    }

    /// <summary>nft's message without its top-level attribute <paramref name="type"/> (and nlmsg_len to match).</summary>
    private static byte[] Without(byte[] message, ushort type)
    {
        List<byte> kept = [.. message.AsSpan(0, 20)];
        int offset = 20;
        while (offset < message.Length)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(message.AsSpan(offset));
            int aligned = (length + 3) & ~3;
            if ((BinaryPrimitives.ReadUInt16LittleEndian(message.AsSpan(offset + 2)) & NlAttr.TypeMask) != type)
                kept.AddRange(message.AsSpan(offset, aligned));
            offset += aligned;
        }
        byte[] result = [.. kept];
        BinaryPrimitives.WriteUInt32LittleEndian(result, (uint)result.Length);
        return result;
    }

    private static byte[] Written(Func<byte[], int> write)
    {
        byte[] buffer = new byte[4096];
        int end = write(buffer);
        Assert.True(end > 0);
        return buffer[..end];
    }

    private static string Dump(byte[] bytes) => Convert.ToHexString(bytes).ToLowerInvariant();

    // ---- Encoding: each message against nft's ----

    [Fact]
    public void WriteNewTable_AsNftSendsIt_PlusAck()
    {
        byte[] ours = Written(b => NftablesCodec.WriteNewTable(b, 0, 1, Nftables.Nftables.FamilyInet, "ctfw"));
        Assert.Equal(Dump(WithAck(Hex(NftNewTable))), Dump(ours));
    }

    [Fact]
    public void WriteDeleteTable_DelAsNftSendsIt_DestroyIsTheSameMessageType26()
    {
        byte[] del = Written(b => NftablesCodec.WriteDeleteTable(b, 0, 1, 1, "ctfw", idempotent: false));
        byte[] destroy = Written(b => NftablesCodec.WriteDeleteTable(b, 0, 1, 1, "ctfw"));
        Assert.Equal(Dump(WithAck(Hex(NftDelTable))), Dump(del));
        Assert.Equal(Dump(WithType(WithAck(Hex(NftDelTable)), 0x0a1a)), Dump(destroy));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WriteNewSet_AsNftSendsIt_PlusAck_WithoutNftUserdata(bool v6)
    {
        byte[] ours = Written(b => NftablesCodec.WriteNewSet(b, 0, 1, v6 ? Set6 : Set4, setId: 1));
        byte[] nft = Without(WithAck(Hex(v6 ? NftNewSet6 : NftNewSet4)), 13 /* NFTA_SET_USERDATA */);
        Assert.Equal(Dump(nft), Dump(ours));
        Assert.Equal(v6 ? 0x20834du : 0x1c734du, (v6 ? Set6 : Set4).KeyType);
    }

    [Fact]
    public void WriteNewSet_WithMaxElements_DescSizeAsNftSendsIt()
    {
        NftFlowSet sized = Set4 with { MaxElements = 1 << 20 };
        byte[] ours = Written(b => NftablesCodec.WriteNewSet(b, 0, 1, sized, setId: 1));
        Assert.Equal(Dump(Without(WithAck(Hex(NftNewSet4Sized)), 13)), Dump(ours));
    }

    [Fact]
    public void WriteNewElements_V4AndV6WithTimeout_AsNftSendsThem_PlusAck_WithoutSetId()
    {
        NftElement e4 = new(Key4("10.0.0.1", "10.0.0.2", 1234, 80), TimeSpan.FromSeconds(60));
        NftElement e6 = new(Key4("fd00::1", "fd00::2", 1234, 80), TimeSpan.FromSeconds(90));
        byte[] ours4 = Written(b => NftablesCodec.WriteNewElements(b, 0, 1, Set4, [e4]));
        byte[] ours6 = Written(b => NftablesCodec.WriteNewElements(b, 0, 1, Set6, [e6]));
        Assert.Equal(Dump(Without(WithAck(Hex(NftNewElem4)), 4 /* NFTA_SET_ELEM_LIST_SET_ID */)), Dump(ours4));
        Assert.Equal(Dump(Without(WithAck(Hex(NftNewElem6)), 4)), Dump(ours6));
    }

    [Fact]
    public void WriteNewElements_Exclusive_SetsExcl_NoTimeout_LeavesTheAttributeOut()
    {
        NftElement e = new(Key4("10.0.0.1", "10.0.0.2", 1234, 80));
        byte[] ours = Written(b => NftablesCodec.WriteNewElements(b, 0, 1, Set4, [e], exclusive: true));
        Assert.Equal(NlMsgHdr.FlagRequest | NlMsgHdr.FlagAck | 0x400 | 0x200, BinaryPrimitives.ReadUInt16LittleEndian(ours.AsSpan(6)));
        Assert.Equal(Hex(NftNewElem4).Length - 8 - 12, ours.Length); // no SET_ID, no timeout
        Assert.Throws<ArgumentException>(() => NftablesCodec.WriteNewElements(new byte[4096], 0, 1, Set6, [e]));
    }

    [Fact]
    public void WriteDeleteElements_DelAsNftSendsIt_DestroyIsType30()
    {
        NftFlowKey key = Key4("10.0.0.1", "10.0.0.2", 1234, 80);
        byte[] del = Written(b => NftablesCodec.WriteDeleteElements(b, 0, 1, Set4, [key], idempotent: false));
        byte[] destroy = Written(b => NftablesCodec.WriteDeleteElements(b, 0, 1, Set4, [key]));
        Assert.Equal(Dump(WithAck(Hex(NftDelElem4))), Dump(del));
        Assert.Equal(Dump(WithType(WithAck(Hex(NftDelElem4)), 0x0a1e)), Dump(destroy));
    }

    [Fact]
    public void WriteNewBaseChain_AsNftSendsIt_PlusAck()
    {
        byte[] ours = Written(b => NftablesCodec.WriteNewBaseChain(b, 0, 1, 1, "ctfw", "bypass", Nftables.Nftables.HookForward, -10));
        Assert.Equal(Dump(WithAck(Hex(NftNewChain))), Dump(ours));
    }

    [Fact]
    public void WriteDumpElements_AsNftSendsIt_PaddingZeroed()
    {
        byte[] nft = Hex(NftGetElems);
        nft[^3] = nft[^2] = nft[^1] = 0;
        byte[] ours = Written(b => NftablesCodec.WriteDumpElements(b, 0, Set4));
        Assert.Equal(Dump(nft), Dump(ours));
    }

    [Fact]
    public void Writers_DestinationTooSmall_MinusOne_NothingPastTheEnd()
    {
        NftElement[] many = [.. Enumerable.Range(0, 10).Select(i => new NftElement(Key4("10.0.0.1", "10.0.0.2", (ushort)i, 80), TimeSpan.FromSeconds(5)))];
        byte[] small = new byte[64];
        Assert.Equal(-1, NftablesCodec.WriteNewElements(small, 0, 1, Set4, many));
        Assert.Equal(-1, NftablesCodec.WriteNewSet(small, 0, 1, Set4, 1));
        Assert.Equal(-1, NftablesCodec.WriteDeleteElements(small, 0, 1, Set4, [.. many.Select(e => e.Key)]));
        Assert.Equal(-1, NftablesCodec.WriteNewTable(new byte[20], 0, 1, 1, "ctfw"));
        // The element list's nest length is 16 bits: 2 000 IPv4 elements with timeouts would pass it.
        NftElement[] tooMany = [.. Enumerable.Range(0, 2000).Select(i => new NftElement(Key4("10.0.0.1", "10.0.0.2", (ushort)i, 80), TimeSpan.FromSeconds(5)))];
        Assert.Equal(-1, NftablesCodec.WriteNewElements(new byte[1 << 20], 0, 1, Set4, tooMany));
    }

    // nft add rule inet ctfw bypass meta l4proto tcp tcp flags & (fin|syn|rst) == 0 ip saddr . ip daddr . th sport . th dport @flows4
    //   update @flows4 { ip saddr . ip daddr . th sport . th dport } meta mark set 0x40000000
    private const string NftRuleTcp4 = "d4030000060a010c0100000000000000010000000900010063746677000000000b0002006279706173730000a803048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000d08000400000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000010c00048005000100070000000c00058005000100000000002c00018008000100636d700020000280080001000000000108000200000000000c000380050001000000000024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010002000000340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004340001800c0001007061796c6f616400240002800800010000000009080002000000000108000300000000100800040000000004340001800c0001007061796c6f61640024000280080001000000000a080002000000000208000300000000000800040000000002340001800c0001007061796c6f61640024000280080001000000000b080002000000000208000300000000020800040000000002300001800b0001006c6f6f6b757000002000028008000200000000010b000100666c6f77733400000800040000000001340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004340001800c0001007061796c6f616400240002800800010000000009080002000000000108000300000000100800040000000004340001800c0001007061796c6f61640024000280080001000000000a080002000000000208000300000000000800040000000002340001800c0001007061796c6f61640024000280080001000000000b080002000000000208000300000000020800040000000002380001800b00010064796e736574000028000280080004000000000108000300000000010b000100666c6f777334000008000200000000012c0001800e000100696d6d6564696174650000001800028008000100000000010c000280080001000000004024000180090001006d657461000000001400028008000200000000030800030000000001";
    // nft add rule inet ctfw bypass meta l4proto udp ip6 saddr . ip6 daddr . th sport . th dport @flows6 meta mark set 0x40000000
    private const string NftRuleUdp6 = "20020000060a010c0100000000000000010000000900010063746677000000000b0002006279706173730000f401048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001001100000024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000080800040000000010340001800c0001007061796c6f616400240002800800010000000002080002000000000108000300000000180800040000000010340001800c0001007061796c6f616400240002800800010000000003080002000000000208000300000000000800040000000002340001800c0001007061796c6f616400240002800800010000000011080002000000000208000300000000020800040000000002300001800b0001006c6f6f6b757000002000028008000200000000010b000100666c6f777336000008000400000000022c0001800e000100696d6d6564696174650000001800028008000100000000010c000280080001000000004024000180090001006d657461000000001400028008000200000000030800030000000001";

    /// <summary>
    /// nft's rule with ctfw's differences: NLM_F_ACK, and no NFTA_LOOKUP_SET_ID / NFTA_DYNSET_SET_ID
    /// (nft's in-transaction set references; the kernel finds the set by name). Those are 8-byte
    /// attributes inside the lookup's and dynset's data nests, so the nests, the expression list and
    /// the message shrink by 8 for each.
    /// </summary>
    private static byte[] WithoutSetIds(string nftHex)
    {
        byte[] nft = Hex(nftHex);
        List<byte> m = [.. nft.AsSpan(0, 20)];
        m.AddRange(Rebuild(nft.AsSpan(20), expression: null));
        byte[] result = WithAck([.. m]);
        BinaryPrimitives.WriteUInt32LittleEndian(result, (uint)result.Length);
        return result;
    }

    /// <summary>Copies attributes, recursing into nests (NLA_F_NESTED, as nft marks them), leaving out the set ids of lookup and dynset data.</summary>
    private static List<byte> Rebuild(ReadOnlySpan<byte> attributes, string? expression)
    {
        List<byte> output = [];
        string? name = null;
        for (int offset = 0; offset + 4 <= attributes.Length;)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes[offset..]);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(attributes[(offset + 2)..]);
            ReadOnlySpan<byte> payload = attributes.Slice(offset + 4, length - 4);
            offset += (length + 3) & ~3;
            if (type == 1 && payload.Length > 1 && payload[^1] == 0)
                name = System.Text.Encoding.ASCII.GetString(payload[..^1]); // NFTA_EXPR_NAME, seen before NFTA_EXPR_DATA
            bool setId = (expression == "lookup" && type == 4) || (expression == "dynset" && type == 2);
            if (setId)
                continue;
            List<byte> body = (type & NlAttr.FlagNested) != 0
                ? Rebuild(payload, (type & NlAttr.TypeMask) == 2 ? name : null)
                : [.. payload];
            byte[] header = new byte[4];
            BinaryPrimitives.WriteUInt16LittleEndian(header, (ushort)(4 + body.Count));
            BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(2), type);
            output.AddRange(header);
            output.AddRange(body);
            while (output.Count % 4 != 0)
                output.Add(0);
        }
        return output;
    }

    [Fact]
    public void FlowRule_TcpV4WithRefresh_AndUdpV6WithoutIt_AsNftCompilesThem()
    {
        byte[] tcp4 = Written(b => NftFlowRule.Write(b, 0, 1, Set4, "bypass", protocol: 6, refresh: true, mark: 0x40000000));
        byte[] udp6 = Written(b => NftFlowRule.Write(b, 0, 1, Set6, "bypass", protocol: 17, refresh: false, mark: 0x40000000));
        Assert.Equal(Dump(WithoutSetIds(NftRuleTcp4)), Dump(tcp4));
        Assert.Equal(Dump(WithoutSetIds(NftRuleUdp6)), Dump(udp6));
        Assert.Equal(Hex(NftRuleTcp4).Length - 16, tcp4.Length);
        Assert.Equal(Hex(NftRuleUdp6).Length - 8, udp6.Length);
    }

    // nft add table inet ctfw2 '{ flags owner; }'
    private const string NftNewTableOwner = "28000000000a01000100000000000000010000000a00010063746677320000000800020000000002";

    [Fact]
    public void WriteNewTable_Owner_FlagsOwnerAsNftSendsIt_PlusAck()
    {
        byte[] ours = Written(b => NftablesCodec.WriteNewTable(b, 0, 1, Nftables.Nftables.FamilyInet, "ctfw2", owner: true));
        Assert.Equal(Dump(WithAck(Hex(NftNewTableOwner))), Dump(ours));
        var batch = new NftBatch(8192);
        Assert.True(batch.AddTable("ctfw", owner: true));
        Assert.Equal("AddTable inet ctfw (owner)", batch.Operations[0].ToString());
    }

    // The rules above with `meta mark set meta mark or 0x40000000` in place of `meta mark set 0x40000000`:
    //   [ meta load mark => reg 1 ] [ bitwise reg 1 = ( reg 1 & 0xbfffffff ) ^ 0x40000000 ] [ meta set mark with reg 1 ]
    private const string NftRuleTcp4MarkOr = "18040000060a010c0100000000000000010000000900010063746677000000000b0002006279706173730000ec03048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000d08000400000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000010c00048005000100070000000c00058005000100000000002c00018008000100636d700020000280080001000000000108000200000000000c000380050001000000000024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010002000000340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004340001800c0001007061796c6f616400240002800800010000000009080002000000000108000300000000100800040000000004340001800c0001007061796c6f61640024000280080001000000000a080002000000000208000300000000000800040000000002340001800c0001007061796c6f61640024000280080001000000000b080002000000000208000300000000020800040000000002300001800b0001006c6f6f6b757000002000028008000200000000010b000100666c6f77733400000800040000000001340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004340001800c0001007061796c6f616400240002800800010000000009080002000000000108000300000000100800040000000004340001800c0001007061796c6f61640024000280080001000000000a080002000000000208000300000000000800040000000002340001800c0001007061796c6f61640024000280080001000000000b080002000000000208000300000000020800040000000002380001800b00010064796e736574000028000280080004000000000108000300000000010b000100666c6f7773340000080002000000000124000180090001006d6574610000000014000280080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000040c00048008000100ffffffbf0c000580080001000000004024000180090001006d657461000000001400028008000200000000030800030000000001";
    private const string NftRuleUdp6MarkOr = "64020000060a010c0100000000000000010000000900010063746677000000000b00020062797061737300003802048024000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001001100000024000180090001006d6574610000000014000280080002000000000f08000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000a000000340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000080800040000000010340001800c0001007061796c6f616400240002800800010000000002080002000000000108000300000000180800040000000010340001800c0001007061796c6f616400240002800800010000000003080002000000000208000300000000000800040000000002340001800c0001007061796c6f616400240002800800010000000011080002000000000208000300000000020800040000000002300001800b0001006c6f6f6b757000002000028008000200000000010b000100666c6f7773360000080004000000000224000180090001006d6574610000000014000280080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000040c00048008000100ffffffbf0c000580080001000000004024000180090001006d657461000000001400028008000200000000030800030000000001";

    [Fact]
    public void FlowRule_MarkOr_TcpV4WithRefresh_AndUdpV6WithoutIt_AsNftCompilesThem()
    {
        byte[] tcp4 = Written(b => NftFlowRule.Write(b, 0, 1, Set4, "bypass", protocol: 6, refresh: true, mark: 0x40000000, NftMarkMode.Or));
        byte[] udp6 = Written(b => NftFlowRule.Write(b, 0, 1, Set6, "bypass", protocol: 17, refresh: false, mark: 0x40000000, NftMarkMode.Or));
        Assert.Equal(Dump(WithoutSetIds(NftRuleTcp4MarkOr)), Dump(tcp4));
        Assert.Equal(Dump(WithoutSetIds(NftRuleUdp6MarkOr)), Dump(udp6));
        // The batch passes the mode through; OR-ing nothing is refused.
        var batch = new NftBatch(8192);
        Assert.True(batch.AddFlowRule(Set4, "bypass", 6, refresh: true, 0x40000000, NftMarkMode.Or));
        Assert.Equal(Dump(WithoutSetIds(NftRuleTcp4MarkOr))[40..], Dump(batch.Datagram()[20..^20].ToArray())[40..]); // past nlmsghdr's seq
        Assert.Throws<ArgumentOutOfRangeException>(() => NftFlowRule.Write(new byte[4096], 0, 1, Set4, "bypass", 6, true, 0, NftMarkMode.Or));
    }

    // nft flush set inet ctfw flows4
    private const string NftFlushSet = "2c0000000e0a01000100000000000000010000000b000200666c6f7773340000090001006374667700000000";

    [Fact]
    public void WriteFlushSet_DelSetElemWithoutElements_AsNftSendsIt_PlusAck()
    {
        byte[] ours = Written(b => NftablesCodec.WriteFlushSet(b, 0, 1, Set4));
        Assert.Equal(Dump(WithAck(Hex(NftFlushSet))), Dump(ours));
        var batch = new NftBatch(8192);
        Assert.True(batch.FlushSet(Set4));
        Assert.Equal((NftOperationKind.FlushSet, "inet ctfw flows4"), (batch.Operations[0].Kind, batch.Operations[0].Subject));
        Assert.Equal(-1, NftablesCodec.WriteFlushSet(new byte[30], 0, 1, Set4));
    }

    // nft get element inet ctfw flows4 '{ 10.0.0.1 . 10.0.0.2 . 1234 . 80, 10.0.0.3 . 10.0.0.4 . 5 . 6 }': GETSETELEM
    // with NLM_F_REQUEST | NLM_F_ACK, no dump. nft numbers the list entries 1, 2 without NLA_F_NESTED and leaves
    // stale bytes in the table name's padding; ctfw writes NFTA_LIST_ELEM | NLA_F_NESTED each, as in its other element lists.
    private const string NftGetElems2 = "680000000d0a05000100000000000000010000000b000200666c6f7773340000090001006374667700cc8b2b3c0003801c00018018000180140001000a0000010a00000204d20000005000001c00028018000180140001000a0000030a0000040005000000060000";
    // ...the kernel's answer (6.18), three datagrams: a NEWSETELEM per element (flags 0), then the ACK (capped).
    private const string KernelGetAnswer = "900000000c0a00000100000078500000010000150900010063746677000000000b000200666c6f7773340000640003006000010018000100140001000a0000010a00000204d20000005000002c0007000c000100636f756e746572001c0002000c00010000000000000000000c00020000000000000000000c000400000000000000ea600c000500000000000000cc50" +
        "840000000c0a00000100000078500000010000150900010063746677000000000b000200666c6f7773340000580003005400010018000100140001000a0000030a00000400050000000600002c0007000c000100636f756e746572001c0002000c00010000000000000000000c00020000000000000000000c0005000000000000005720" +
        "2400000002000001010000007850000000000000680000000d0a05000100000000000000";
    // ...and to the same request with the first key's port 81 (not in the set): ENOENT at once, the second key not looked
    // up; nft's socket has NETLINK_EXT_ACK but not CAP_ACK, so the request is echoed, then NLMSGERR_ATTR_OFFS = 0x30: the first key.
    private const string KernelGetMissing = "8400000002000002010000007c500000feffffff680000000d0a05000100000000000000010000000b000200666c6f7773340000090001006374667700a6449f3c0003801c00018018000180140001000a0000010a00000204d20000005100001c00028018000180140001000a0000030a00000400050000000600000800020030000000";

    [Fact]
    public void WriteGetElements_AsNftSendsIt_ListEntriesNested_PaddingZeroed()
    {
        byte[] nft = Hex(NftGetElems2);
        nft[41] = nft[42] = nft[43] = 0;          // padding after "ctfw\0"
        nft[50] = 0x01; nft[51] = 0x80;           // first entry: NFTA_LIST_ELEM | NLA_F_NESTED
        nft[78] = 0x01; nft[79] = 0x80;           // second entry (was 2)
        NftFlowKey[] keys = [Key4("10.0.0.1", "10.0.0.2", 1234, 80), Key4("10.0.0.3", "10.0.0.4", 5, 6)];
        byte[] ours = Written(b => NftablesCodec.WriteGetElements(b, 1, Set4, keys));
        Assert.Equal(Dump(nft), Dump(ours));
        // The offset the kernel names for a key, back to its index; the table, the set or a place inside a key are none.
        Assert.Equal(0, NftablesCodec.GetElementIndexAt(Set4, 2, 0x30));
        Assert.Equal(1, NftablesCodec.GetElementIndexAt(Set4, 2, 0x30 + 0x1c));
        Assert.Equal(-1, NftablesCodec.GetElementIndexAt(Set4, 2, 0x30 + (2 * 0x1c)));
        Assert.Equal(-1, NftablesCodec.GetElementIndexAt(Set4, 2, 0x20));
        Assert.Equal(-1, NftablesCodec.GetElementIndexAt(Set4, 2, 0x34));
        Assert.Equal(-1, NftablesCodec.WriteGetElements(new byte[64], 1, Set4, keys));
        Assert.Throws<ArgumentException>(() => NftablesCodec.WriteGetElements(new byte[4096], 1, Set6, keys));
    }

    [Fact]
    public void GetReader_KernelAnswer_TwoElementsThenAck()
    {
        var found = new List<NftElementState>();
        var reader = new NftGetElementsReader(1, found);
        byte[] answer = Hex(KernelGetAnswer);
        reader.Read(answer.AsSpan(0, 0x90));
        Assert.False(reader.Done);
        reader.Read(answer.AsSpan(0x90));
        Assert.True(reader.Done);
        Assert.Equal((Errno.None, 2, (uint?)null, 0), (reader.Error, reader.Answers, reader.ErrorOffset, reader.Unparsed));
        Assert.Equal(Key4("10.0.0.1", "10.0.0.2", 1234, 80), found[0].Key);
        Assert.Equal((TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(0xcc50), true), (found[0].Timeout, found[0].Expiration, found[0].HasCounter));
        // An element on the set's default timeout: a get reports no timeout of its own.
        Assert.Equal((Key4("10.0.0.3", "10.0.0.4", 5, 6), TimeSpan.Zero, TimeSpan.FromMilliseconds(0x5720)), (found[1].Key, found[1].Timeout, found[1].Expiration));

        var other = new NftGetElementsReader(2, []);
        other.Read(answer);
        Assert.Equal((false, 0), (other.Done, other.Answers)); // another request's answer
    }

    [Fact]
    public void GetReader_MissingKey_EnoentWithTheKeysOffset_EchoedOrCapped()
    {
        var reader = new NftGetElementsReader(1, []);
        reader.Read(Hex(KernelGetMissing));
        Assert.Equal((true, Errno.ENOENT, (uint?)0x30, 0), (reader.Done, reader.Error, reader.ErrorOffset, reader.Answers));
        Assert.Equal(0, NftablesCodec.GetElementIndexAt(Set4, 2, reader.ErrorOffset!.Value));

        // ctfw's socket sets NETLINK_CAP_ACK: the request's header only, then the attributes.
        byte[] capped = CappedError(7, -2, offset: 0x30 + 0x1c);
        var second = new NftGetElementsReader(7, []);
        second.Read(capped);
        Assert.Equal((Errno.ENOENT, (uint?)0x4c), (second.Error, second.ErrorOffset));
        // Without NLM_F_ACK_TLVS there is no offset to read.
        capped[6] = 0x00; capped[7] = 0x01;
        Assert.False(NftablesCodec.TryReadErrorOffset(capped, out _));
        // Every prefix of either form: never a throw, an offset only when it is all there.
        foreach (byte[] m in (byte[][])[Hex(KernelGetMissing), CappedError(7, -2, 0x30)])
        {
            for (int n = 0; n <= m.Length; n++)
            {
                bool read = NftablesCodec.TryReadErrorOffset(m.AsSpan(0, n), out uint at);
                Assert.Equal(n == m.Length, read && at != 0);
                new NftGetElementsReader(7, []).Read(m.AsSpan(0, n), truncated: n < m.Length);
            }
        }
    }

    private static byte[] CappedError(uint sequence, int error, uint offset)
    {
        byte[] m = new byte[36 + 8];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), NlMsgHdr.TypeError);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(6), 0x300); // NLM_F_CAPPED | NLM_F_ACK_TLVS
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), sequence);
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(16), error);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(20), 0x68);  // the request's header
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(24), 0x0a0d);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(28), sequence);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(36), 8);     // NLMSGERR_ATTR_OFFS
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(38), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(40), offset);
        return m;
    }

    // ---- Batches ----

    [Fact]
    public void Batch_BeginOperationsEnd_FramedAsNft_SequencesInOrder()
    {
        var batch = new NftBatch(8192);
        Assert.True(batch.AddTable("ctfw"));
        Assert.True(batch.AddSet(Set4));
        Assert.Equal(1, batch.AddElements(Set4, [new NftElement(Key4("10.0.0.1", "10.0.0.2", 1234, 80), TimeSpan.FromSeconds(60))]));
        byte[] datagram = batch.Datagram().ToArray();

        // nft's BATCH_BEGIN and END: AF_UNSPEC, res_id NFNL_SUBSYS_NFTABLES big-endian, no ACK.
        Assert.Equal("14000000100001000000000000000000" + "0000000a", Dump(datagram[..20]));
        Assert.Equal("14000000110001000400000000000000" + "0000000a", Dump(datagram[^20..]));
        var reader = new NetlinkMessageReader(datagram, datagramTruncated: false);
        List<(ushort Type, uint Sequence)> seen = [];
        while (reader.TryRead(out NlMsgHdr header, out _, out _, out _))
            seen.Add((header.Type, header.Sequence));
        Assert.False(reader.Malformed);
        Assert.Equal([(0x10, 0u), (0x0a00, 1u), (0x0a09, 2u), (0x0a0c, 3u), (0x11, 4u)], seen);
        Assert.Equal(datagram.Length, batch.Length);

        batch.Renumber(100);
        datagram = batch.Datagram().ToArray();
        reader = new NetlinkMessageReader(datagram, datagramTruncated: false);
        seen.Clear();
        while (reader.TryRead(out NlMsgHdr header, out _, out _, out _))
            seen.Add((header.Type, header.Sequence));
        Assert.Equal([(0x10, 100u), (0x0a00, 101u), (0x0a09, 102u), (0x0a0c, 103u), (0x11, 104u)], seen);
        Assert.Equal(103u, batch.SequenceOf(2));
    }

    [Fact]
    public void Batch_AddElements_SplitIntoMessagesOfPerMessage_StopsWhereTheBufferIsFull()
    {
        NftElement[] elements = [.. Enumerable.Range(0, 1000).Select(i => new NftElement(Key4("10.0.0.1", "10.0.0.2", (ushort)i, 80), TimeSpan.FromSeconds(5)))];
        var batch = new NftBatch(256 << 10);
        Assert.Equal(1000, batch.AddElements(Set4, elements, perMessage: 256));
        Assert.Equal([(0, 256), (256, 256), (512, 256), (768, 232)], batch.Operations.Select(o => (o.FirstItem, o.Items)));

        var small = new NftBatch(8192);
        int fitted = small.AddElements(Set4, elements, perMessage: 64);
        int perElement = NftablesCodec.ElementSize(false, withTimeout: true);
        Assert.InRange(fitted, 1, 8192 / perElement);
        Assert.True(small.Length <= small.Capacity);
        Assert.Equal(fitted, small.Operations.Sum(o => o.Items));
        // The rest goes into the next batch, from where this one stopped.
        small.Clear();
        Assert.True(small.AddElements(Set4, elements.AsSpan(fitted), perMessage: 64) > 0);
        Assert.Equal(0, small.Operations[0].FirstItem);

        var one = new NftBatch(8192);
        Assert.Equal(10, one.AddElements(Set4, elements.AsSpan(0, 10), perMessage: 1));
        Assert.Equal(10, one.Operations.Count);
        Assert.Throws<ArgumentException>(() => one.AddTable("bad name"));
    }

    // ---- Acknowledgements ----

    private static byte[] Ack(uint sequence, int error, uint port = 0)
    {
        // NLMSG_ERROR with NETLINK_CAP_ACK: nlmsgerr with the request's header only (36 bytes).
        byte[] m = new byte[36];
        BinaryPrimitives.WriteUInt32LittleEndian(m, 36);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), NlMsgHdr.TypeError);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(6), (ushort)(error == 0 ? 0x100 : 0)); // NLM_F_CAPPED
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(12), port);
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(16), error);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(20), 20);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(28), sequence);
        return m;
    }

    [Fact]
    public void AckReader_OneRefusedOperation_MappedToItsIndex_OthersAcked_ForeignAndRepeatsIgnored()
    {
        var acks = new NftBatchAckReader(beginSequence: 50, operations: 4);
        acks.Read(Ack(51, 0));
        acks.Read([.. Ack(52, 0), .. Ack(53, -17)]); // EEXIST on the third operation
        acks.Read(Ack(53, 0));                        // a repeat: the first answer stands
        acks.Read(Ack(49, -2));                       // an earlier batch's
        acks.Read(Ack(60, -2));                       // beyond this batch
        Assert.False(acks.Done);
        Assert.Equal(1, acks.Pending);
        acks.Read(Ack(54, 0));
        Assert.True(acks.Done);
        Assert.Equal([Errno.None, Errno.None, Errno.EEXIST, Errno.None], Enumerable.Range(0, 4).Select(acks.ErrorOf));
        Assert.Equal(Errno.None, acks.BatchError);
        Assert.Equal(0, acks.Malformed);
    }

    [Fact]
    public void AckReader_ErrorOnBatchBegin_WholeBatchRefused()
    {
        var acks = new NftBatchAckReader(7, 3);
        acks.Read(Ack(7, -1));
        Assert.True(acks.Done);
        Assert.Equal(Errno.EPERM, acks.BatchError);
        Assert.Equal(3, acks.Pending);
    }

    [Fact]
    public void AckReader_EveryPrefixAndMutation_NeverThrows()
    {
        byte[] datagram = [.. Ack(11, 0), .. Ack(12, -22), .. Ack(13, 0)];
        for (int n = 0; n <= datagram.Length; n++)
        {
            foreach (bool truncated in (bool[])[false, true])
            {
                var acks = new NftBatchAckReader(10, 3);
                acks.Read(datagram.AsSpan(0, n), truncated);
                // A message cut by the receive buffer still counts when its error code is whole (20 bytes).
                int answered = (n / 36) + (truncated && n % 36 >= 20 ? 1 : 0);
                Assert.Equal(3 - answered, acks.Pending);
            }
        }
        var rng = new Random(15);
        for (int i = 0; i < 5000; i++)
        {
            byte[] m = [.. datagram];
            m[rng.Next(m.Length)] = (byte)rng.Next(256);
            var acks = new NftBatchAckReader(10, 3);
            acks.Read(m);
            Assert.InRange(acks.Pending, 0, 3);
        }
    }

    [Fact]
    public void BatchResult_Message_NamesTheFirstRefusedOperation()
    {
        var op = new NftOperation(NftOperationKind.AddElements, "inet ctfw flows4", 256, 256);
        var result = new NftBatchResult { Operations = 4, Errors = [new NftOperationError(1, op, Errno.ENOENT)] };
        Assert.False(result.Committed);
        Assert.Contains("AddElements inet ctfw flows4 (elements 256..511)", result.Message, StringComparison.Ordinal);
        Assert.Contains("ENOENT", result.Message, StringComparison.Ordinal);
        Assert.True(new NftBatchResult { Operations = 4 }.Committed);
    }

    // ---- Element dumps ----

    [Fact]
    public void DumpReader_KernelsAnswerToNftList_KeyTimeoutExpirationCounter()
    {
        var reader = new NftSetDumpReader(0);
        reader.Read(Hex(KernelElemDump));
        Assert.True(reader.Done);
        Assert.Equal(Errno.None, reader.Error);
        Assert.Equal(0, reader.Unparsed);
        NftElementState e = Assert.Single(reader.Elements);
        Assert.Equal(Key4("10.0.0.1", "10.0.0.2", 1234, 80), e.Key);
        Assert.Equal(TimeSpan.FromSeconds(60), e.Timeout);
        Assert.Equal(TimeSpan.FromMilliseconds(59992), e.Expiration); // 0xea58 in the capture
        Assert.True(e.HasCounter);
        Assert.Equal((0ul, 0ul), (e.Packets, e.Bytes));
    }

    /// <summary>A NEWSETELEM dump message built from the attribute table, for what nft's capture did not show (v6, counts, EXPRESSIONS).</summary>
    private static byte[] ElementMessage(uint sequence, NftFlowKey key, ulong timeoutMs, ulong expirationMs, ulong packets, ulong bytes, bool expressionsList)
    {
        var w = new List<byte>();
        void Attr(ushort type, ReadOnlySpan<byte> payload, List<byte> into)
        {
            Span<byte> h = stackalloc byte[4];
            BinaryPrimitives.WriteUInt16LittleEndian(h, (ushort)(4 + payload.Length));
            BinaryPrimitives.WriteUInt16LittleEndian(h[2..], type);
            into.AddRange(h);
            into.AddRange(payload);
            while (into.Count % 4 != 0)
                into.Add(0);
        }
        byte[] U64(ulong v)
        {
            byte[] b = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(b, v);
            return b;
        }
        byte[] keyBytes = new byte[key.Length];
        key.Write(keyBytes);
        List<byte> data = [], keyNest = [], counter = [], expr = [], elem = [], list = [];
        Attr(1, keyBytes, data);
        Attr(1, U64(bytes), counter);
        Attr(2, U64(packets), counter);
        Attr(1, "counter\0"u8, expr);
        Attr(2, [.. counter], expr);
        Attr(1, [.. data], elem);
        if (expressionsList)
        {
            List<byte> exprs = [];
            Attr(1, [.. expr], exprs);
            Attr(11, [.. exprs], elem);
        }
        else
        {
            Attr(7, [.. expr], elem);
        }
        Attr(4, U64(timeoutMs), elem);
        Attr(5, U64(expirationMs), elem);
        Attr(1, [.. elem], list);
        byte[] header = new byte[20];
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 0x0a0c);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), NlMsgHdr.FlagMulti);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), sequence);
        header[16] = 1;
        w.AddRange(header);
        Attr(1, "ctfw\0"u8, w);
        Attr(2, "flows6\0"u8, w);
        Attr(3, [.. list], w);
        byte[] m = [.. w];
        BinaryPrimitives.WriteUInt32LittleEndian(m, (uint)m.Length);
        return m;
    }

    private static byte[] Done(uint sequence, int code = 0)
    {
        byte[] m = new byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(m, 20);
        BinaryPrimitives.WriteUInt16LittleEndian(m.AsSpan(4), NlMsgHdr.TypeDone);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), sequence);
        BinaryPrimitives.WriteInt32LittleEndian(m.AsSpan(16), code);
        return m;
    }

    [Fact]
    public void DumpReader_V6ElementsWithCounts_EitherExpressionForm_ForeignSequenceIgnored()
    {
        NftFlowKey k1 = Key4("fd00::1", "fd00::2", 40000, 443), k2 = Key4("fd00::2", "fd00::1", 443, 40000);
        var reader = new NftSetDumpReader(9);
        reader.Read([.. ElementMessage(9, k1, 120_000, 119_500, 12, 3400, expressionsList: false), .. ElementMessage(8, k2, 1, 1, 1, 1, false)]);
        Assert.False(reader.Done);
        reader.Read([.. ElementMessage(9, k2, 60_000, 500, 7, 900, expressionsList: true), .. Done(9)]);
        Assert.True(reader.Done);
        Assert.Equal(
            [new NftElementState(k1, TimeSpan.FromSeconds(120), TimeSpan.FromMilliseconds(119_500), true, 12, 3400),
             new NftElementState(k2, TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(500), true, 7, 900)],
            reader.Elements);
    }

    [Fact]
    public void DumpReader_ErrorAndNegativeDoneAndInterrupted_Reported()
    {
        var missing = new NftSetDumpReader(3);
        missing.Read(Ack(3, -2));
        Assert.True(missing.Done);
        Assert.Equal(Errno.ENOENT, missing.Error);

        var failed = new NftSetDumpReader(3);
        failed.Read(Done(3, -105));
        Assert.Equal(Errno.ENOBUFS, failed.Error);

        byte[] interrupted = Hex(KernelElemDump);
        BinaryPrimitives.WriteUInt16LittleEndian(interrupted.AsSpan(6), NlMsgHdr.FlagMulti | 0x10);
        var reader = new NftSetDumpReader(0);
        reader.Read(interrupted);
        Assert.True(reader.Interrupted);
    }

    [Fact]
    public void DumpReader_EveryPrefix_AndRandomMutations_NeverThrow()
    {
        byte[] datagram = Hex(KernelElemDump);
        int first = BinaryPrimitives.ReadInt32LittleEndian(datagram);
        for (int n = 0; n <= datagram.Length; n++)
        {
            var reader = new NftSetDumpReader(0);
            reader.Read(datagram.AsSpan(0, n));
            Assert.Equal(n >= first ? 1 : 0, reader.Elements.Count);
            Assert.Equal(n == datagram.Length, reader.Done);
            var cut = new NftSetDumpReader(0);
            cut.Read(datagram.AsSpan(0, n), truncated: true);
            Assert.InRange(cut.Elements.Count, 0, 1);
            if (n < first && n >= 20)
                Assert.True(cut.Unparsed > 0); // a message cut by the buffer is counted, not read
        }
        byte[] seed = ElementMessage(4, Key4("fd00::1", "fd00::2", 1, 2), 5, 5, 5, 5, expressionsList: true);
        var rng = new Random(1515);
        int parsed = 0;
        for (int i = 0; i < 20_000; i++)
        {
            byte[] m = [.. (i % 2 == 0 ? seed : datagram)];
            for (int f = 1 + rng.Next(4); f > 0; f--)
                m[rng.Next(m.Length)] = (byte)rng.Next(256);
            var reader = new NftSetDumpReader(i % 2 == 0 ? 4u : 0u);
            reader.Read(m);
            parsed += reader.Elements.Count;
        }
        Assert.InRange(parsed, 1, 19_999);
    }

    [Theory]
    [InlineData("0a0000010a00000204d2000000500001", "port padding")]
    [InlineData("0a0000010a00000204d20000005000", "15 bytes")]
    public void FlowKey_TryRead_RefusesWhatIsNoFlowKey(string hex, string what)
    {
        Assert.False(NftFlowKey.TryRead(Hex(hex), out _), what);
        Assert.True(NftFlowKey.TryRead(Hex("0a0000010a00000204d2000000500000"), out NftFlowKey key));
        Assert.Equal("10.0.0.1 . 10.0.0.2 . 1234 . 80", key.ToString());
    }

    // ---- Constants against the installed headers ----

    [Fact]
    public void Constants_MatchKernelHeaders()
    {
        Dictionary<string, long> h = Probe();
        List<(string Name, long Value)> checks =
        [
            ("NFNL_SUBSYS_NFTABLES", Nftables.Nftables.Subsystem), ("NFNL_MSG_BATCH_BEGIN", Nftables.Nftables.MsgBatchBegin),
            ("NFNL_MSG_BATCH_END", Nftables.Nftables.MsgBatchEnd),
            ("NFT_MSG_NEWTABLE", Nftables.Nftables.MsgNewTable & 0xFF), ("NFT_MSG_DELTABLE", Nftables.Nftables.MsgDelTable & 0xFF),
            ("NFT_MSG_NEWCHAIN", Nftables.Nftables.MsgNewChain & 0xFF), ("NFT_MSG_NEWSET", Nftables.Nftables.MsgNewSet & 0xFF),
            ("NFT_MSG_NEWSETELEM", Nftables.Nftables.MsgNewSetElem & 0xFF), ("NFT_MSG_GETSETELEM", Nftables.Nftables.MsgGetSetElem & 0xFF),
            ("NFT_MSG_DELSETELEM", Nftables.Nftables.MsgDelSetElem & 0xFF),
            ("NFT_MSG_DELFLOWTABLE+2", Nftables.Nftables.MsgDestroyTable & 0xFF), // GETRULE_RESET, then DESTROYTABLE (6.3)
            ("NFT_MSG_DELFLOWTABLE+6", Nftables.Nftables.MsgDestroySetElem & 0xFF),
            ("NLM_F_REPLACE", Nftables.Nftables.FlagReplace), ("NLM_F_EXCL", Nftables.Nftables.FlagExclusive), ("NLM_F_CREATE", Nftables.Nftables.FlagCreate),
            ("NLM_F_DUMP", Nftables.Nftables.FlagDump), ("NLM_F_DUMP_INTR", Nftables.Nftables.FlagDumpInterrupted),
            ("NFPROTO_UNSPEC", Nftables.Nftables.FamilyUnspec), ("NFPROTO_INET", Nftables.Nftables.FamilyInet),
            ("NFPROTO_IPV4", Nftables.Nftables.FamilyIpv4), ("NFPROTO_IPV6", Nftables.Nftables.FamilyIpv6),
            ("NFTA_TABLE_NAME", Nftables.Nftables.TableName), ("NFTA_TABLE_FLAGS", Nftables.Nftables.TableFlags), ("NFT_TABLE_F_OWNER", Nftables.Nftables.TableFlagOwner),
            ("NLM_F_CAPPED", Nftables.Nftables.FlagCapped), ("NLM_F_ACK_TLVS", Nftables.Nftables.FlagAckTlvs),
            ("NETLINK_EXT_ACK", Nftables.Nftables.NetlinkExtAck), ("NLMSGERR_ATTR_OFFS", Nftables.Nftables.ErrorAttrOffset),
            ("NFTA_CHAIN_TABLE", Nftables.Nftables.ChainTable), ("NFTA_CHAIN_NAME", Nftables.Nftables.ChainName), ("NFTA_CHAIN_HOOK", Nftables.Nftables.ChainHook),
            ("NFTA_CHAIN_POLICY", Nftables.Nftables.ChainPolicy), ("NFTA_CHAIN_TYPE", Nftables.Nftables.ChainType),
            ("NFTA_HOOK_HOOKNUM", Nftables.Nftables.HookNumber), ("NFTA_HOOK_PRIORITY", Nftables.Nftables.HookPriority),
            ("NFTA_SET_TABLE", Nftables.Nftables.SetTable), ("NFTA_SET_NAME", Nftables.Nftables.SetName), ("NFTA_SET_FLAGS", Nftables.Nftables.SetFlags),
            ("NFTA_SET_KEY_TYPE", Nftables.Nftables.SetKeyType), ("NFTA_SET_KEY_LEN", Nftables.Nftables.SetKeyLength), ("NFTA_SET_ID", Nftables.Nftables.SetId),
            ("NFTA_SET_TIMEOUT", Nftables.Nftables.SetTimeout), ("NFTA_SET_DESC", Nftables.Nftables.SetDesc), ("NFTA_SET_DESC_SIZE", Nftables.Nftables.SetDescSize), ("NFTA_SET_EXPR", Nftables.Nftables.SetExpr),
            ("NFT_SET_TIMEOUT", Nftables.Nftables.SetFlagTimeout), ("NFT_SET_EVAL", Nftables.Nftables.SetFlagEval),
            ("NFTA_SET_ELEM_LIST_TABLE", Nftables.Nftables.ElemListTable), ("NFTA_SET_ELEM_LIST_SET", Nftables.Nftables.ElemListSet),
            ("NFTA_SET_ELEM_LIST_ELEMENTS", Nftables.Nftables.ElemListElements), ("NFTA_LIST_ELEM", Nftables.Nftables.ListElem),
            ("NFTA_SET_ELEM_KEY", Nftables.Nftables.ElemKey), ("NFTA_SET_ELEM_FLAGS", Nftables.Nftables.ElemFlags),
            ("NFTA_SET_ELEM_TIMEOUT", Nftables.Nftables.ElemTimeout), ("NFTA_SET_ELEM_EXPIRATION", Nftables.Nftables.ElemExpiration),
            ("NFTA_SET_ELEM_EXPR", Nftables.Nftables.ElemExpr), ("NFTA_SET_ELEM_EXPRESSIONS", Nftables.Nftables.ElemExpressions),
            ("NFTA_DATA_VALUE", Nftables.Nftables.DataValue), ("NFTA_EXPR_NAME", Nftables.Nftables.ExprName), ("NFTA_EXPR_DATA", Nftables.Nftables.ExprData),
            ("NFTA_COUNTER_BYTES", Nftables.Nftables.CounterBytes), ("NFTA_COUNTER_PACKETS", Nftables.Nftables.CounterPackets),
            ("NF_INET_PRE_ROUTING", Nftables.Nftables.HookPrerouting), ("NF_INET_LOCAL_IN", Nftables.Nftables.HookInput),
            ("NF_INET_FORWARD", Nftables.Nftables.HookForward), ("NF_INET_LOCAL_OUT", Nftables.Nftables.HookOutput), ("NF_ACCEPT", Nftables.Nftables.VerdictAccept),
            ("NFT_NAME_MAXLEN-1", Nftables.Nftables.MaxNameLength),
            ("NFT_MSG_NEWRULE", Nftables.Nftables.MsgNewRule & 0xFF), ("NLM_F_APPEND", Nftables.Nftables.FlagAppend),
            ("NFTA_RULE_TABLE", Nftables.Nftables.RuleTable), ("NFTA_RULE_CHAIN", Nftables.Nftables.RuleChain), ("NFTA_RULE_EXPRESSIONS", Nftables.Nftables.RuleExpressions),
            ("NFT_REG_1", Nftables.Nftables.Reg1), ("NFT_REG32_00", Nftables.Nftables.Reg32First),
            ("NFTA_META_DREG", Nftables.Nftables.MetaDreg), ("NFTA_META_KEY", Nftables.Nftables.MetaKey), ("NFTA_META_SREG", Nftables.Nftables.MetaSreg),
            ("NFT_META_MARK", Nftables.Nftables.MetaMark), ("NFT_META_NFPROTO", Nftables.Nftables.MetaNfproto), ("NFT_META_L4PROTO", Nftables.Nftables.MetaL4proto),
            ("NFTA_CMP_SREG", Nftables.Nftables.CmpSreg), ("NFTA_CMP_OP", Nftables.Nftables.CmpOp), ("NFTA_CMP_DATA", Nftables.Nftables.CmpData), ("NFT_CMP_EQ", Nftables.Nftables.CmpEq),
            ("NFTA_PAYLOAD_DREG", Nftables.Nftables.PayloadDreg), ("NFTA_PAYLOAD_BASE", Nftables.Nftables.PayloadBase),
            ("NFTA_PAYLOAD_OFFSET", Nftables.Nftables.PayloadOffset), ("NFTA_PAYLOAD_LEN", Nftables.Nftables.PayloadLength),
            ("NFT_PAYLOAD_NETWORK_HEADER", Nftables.Nftables.PayloadNetworkHeader), ("NFT_PAYLOAD_TRANSPORT_HEADER", Nftables.Nftables.PayloadTransportHeader),
            ("NFTA_BITWISE_SREG", Nftables.Nftables.BitwiseSreg), ("NFTA_BITWISE_DREG", Nftables.Nftables.BitwiseDreg), ("NFTA_BITWISE_LEN", Nftables.Nftables.BitwiseLength),
            ("NFTA_BITWISE_MASK", Nftables.Nftables.BitwiseMask), ("NFTA_BITWISE_XOR", Nftables.Nftables.BitwiseXor), ("NFTA_BITWISE_OP", Nftables.Nftables.BitwiseOp),
            ("NFT_BITWISE_MASK_XOR", Nftables.Nftables.BitwiseMaskXor),
            ("NFTA_LOOKUP_SET", Nftables.Nftables.LookupSet), ("NFTA_LOOKUP_SREG", Nftables.Nftables.LookupSreg),
            ("NFTA_DYNSET_SET_NAME", Nftables.Nftables.DynsetSetName), ("NFTA_DYNSET_OP", Nftables.Nftables.DynsetOp),
            ("NFTA_DYNSET_SREG_KEY", Nftables.Nftables.DynsetSregKey), ("NFT_DYNSET_OP_UPDATE", Nftables.Nftables.DynsetOpUpdate),
            ("NFTA_IMMEDIATE_DREG", Nftables.Nftables.ImmediateDreg), ("NFTA_IMMEDIATE_DATA", Nftables.Nftables.ImmediateData),
        ];
        List<string> failures = [];
        foreach ((string name, long value) in checks)
        {
            if (!h.TryGetValue(name, out long actual))
                failures.Add($"{name}: not printed by the probe");
            else if (actual != value)
                failures.Add($"{name}: headers say {actual}, C# has {value}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static Dictionary<string, long> Probe()
    {
        string dir = Directory.CreateTempSubdirectory("ctfw-nft-").FullName;
        try
        {
            string source = Path.Combine(dir, "probe.c"), binary = Path.Combine(dir, "probe");
            File.WriteAllText(source, ProbeSource);
            Tool.Run(checkExit: true, TimeSpan.FromMinutes(5), "cc", "-std=c11", "-Wall", "-Werror", "-o", binary, source);
            var values = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (string line in Tool.Run(binary).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                int space = line.LastIndexOf(' ');
                values[line[..space]] = long.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            }
            return values;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private const string ProbeSource = """
        #define _GNU_SOURCE
        #include <stdio.h>
        #include <sys/socket.h>
        #include <linux/netlink.h>
        #include <linux/netfilter.h>
        #include <linux/netfilter/nfnetlink.h>
        #include <linux/netfilter/nf_tables.h>

        #define V(c) printf("%s %lld\n", #c, (long long)(c));

        int main(void)
        {
            V(NFNL_SUBSYS_NFTABLES) V(NFNL_MSG_BATCH_BEGIN) V(NFNL_MSG_BATCH_END)
            V(NFT_MSG_NEWTABLE) V(NFT_MSG_DELTABLE) V(NFT_MSG_NEWCHAIN) V(NFT_MSG_NEWSET) V(NFT_MSG_NEWSETELEM)
            V(NFT_MSG_GETSETELEM) V(NFT_MSG_DELSETELEM)
            printf("NFT_MSG_DELFLOWTABLE+2 %d\n", NFT_MSG_DELFLOWTABLE + 2);
            printf("NFT_MSG_DELFLOWTABLE+6 %d\n", NFT_MSG_DELFLOWTABLE + 6);
            V(NLM_F_REPLACE) V(NLM_F_EXCL) V(NLM_F_CREATE) V(NLM_F_DUMP) V(NLM_F_DUMP_INTR)
            V(NFPROTO_UNSPEC) V(NFPROTO_INET) V(NFPROTO_IPV4) V(NFPROTO_IPV6)
            V(NFTA_TABLE_NAME) V(NFTA_TABLE_FLAGS) V(NFT_TABLE_F_OWNER)
            V(NLM_F_CAPPED) V(NLM_F_ACK_TLVS) V(NETLINK_EXT_ACK) V(NLMSGERR_ATTR_OFFS)
            V(NFTA_CHAIN_TABLE) V(NFTA_CHAIN_NAME) V(NFTA_CHAIN_HOOK) V(NFTA_CHAIN_POLICY) V(NFTA_CHAIN_TYPE)
            V(NFTA_HOOK_HOOKNUM) V(NFTA_HOOK_PRIORITY)
            V(NFTA_SET_TABLE) V(NFTA_SET_NAME) V(NFTA_SET_FLAGS) V(NFTA_SET_KEY_TYPE) V(NFTA_SET_KEY_LEN) V(NFTA_SET_ID)
            V(NFTA_SET_TIMEOUT) V(NFTA_SET_EXPR) V(NFTA_SET_DESC) V(NFTA_SET_DESC_SIZE) V(NFT_SET_TIMEOUT) V(NFT_SET_EVAL)
            V(NFTA_SET_ELEM_LIST_TABLE) V(NFTA_SET_ELEM_LIST_SET) V(NFTA_SET_ELEM_LIST_ELEMENTS) V(NFTA_LIST_ELEM)
            V(NFTA_SET_ELEM_KEY) V(NFTA_SET_ELEM_FLAGS) V(NFTA_SET_ELEM_TIMEOUT) V(NFTA_SET_ELEM_EXPIRATION)
            V(NFTA_SET_ELEM_EXPR) V(NFTA_SET_ELEM_EXPRESSIONS)
            V(NFTA_DATA_VALUE) V(NFTA_EXPR_NAME) V(NFTA_EXPR_DATA) V(NFTA_COUNTER_BYTES) V(NFTA_COUNTER_PACKETS)
            V(NF_INET_PRE_ROUTING) V(NF_INET_LOCAL_IN) V(NF_INET_FORWARD) V(NF_INET_LOCAL_OUT) V(NF_ACCEPT)
            printf("NFT_NAME_MAXLEN-1 %d\n", NFT_NAME_MAXLEN - 1);
            V(NFT_MSG_NEWRULE) V(NLM_F_APPEND) V(NFTA_RULE_TABLE) V(NFTA_RULE_CHAIN) V(NFTA_RULE_EXPRESSIONS) V(NFT_REG_1) V(NFT_REG32_00)
            V(NFTA_META_DREG) V(NFTA_META_KEY) V(NFTA_META_SREG) V(NFT_META_MARK) V(NFT_META_NFPROTO) V(NFT_META_L4PROTO)
            V(NFTA_CMP_SREG) V(NFTA_CMP_OP) V(NFTA_CMP_DATA) V(NFT_CMP_EQ)
            V(NFTA_PAYLOAD_DREG) V(NFTA_PAYLOAD_BASE) V(NFTA_PAYLOAD_OFFSET) V(NFTA_PAYLOAD_LEN) V(NFT_PAYLOAD_NETWORK_HEADER) V(NFT_PAYLOAD_TRANSPORT_HEADER)
            V(NFTA_BITWISE_SREG) V(NFTA_BITWISE_DREG) V(NFTA_BITWISE_LEN) V(NFTA_BITWISE_MASK) V(NFTA_BITWISE_XOR) V(NFTA_BITWISE_OP) V(NFT_BITWISE_MASK_XOR)
            V(NFTA_LOOKUP_SET) V(NFTA_LOOKUP_SREG) V(NFTA_DYNSET_SET_NAME) V(NFTA_DYNSET_OP) V(NFTA_DYNSET_SREG_KEY) V(NFT_DYNSET_OP_UPDATE)
            V(NFTA_IMMEDIATE_DREG) V(NFTA_IMMEDIATE_DATA)
            return 0;
        }
        """;
}
