using System.Runtime.InteropServices;
using Ctfw.Linux.Netlink;

namespace Ctfw.Linux.Nftables;

/// <summary>What one message of a batch asks for.</summary>
public enum NftOperationKind
{
    AddTable,
    DeleteTable,
    AddSet,
    AddChain,
    AddElements,
    DeleteElements,
    AddRule,
    FlushSet,
}

/// <summary>
/// One message of a batch: what it does, to what (e.g. <c>inet ctfw flows4</c>), and for element
/// messages which of the caller's elements it carries (<see cref="FirstItem"/>, <see cref="Items"/>).
/// </summary>
public readonly record struct NftOperation(NftOperationKind Kind, string Subject, int FirstItem = 0, int Items = 0)
{
    public override string ToString() => Items > 0 ? $"{Kind} {Subject} (elements {FirstItem}..{FirstItem + Items - 1})" : $"{Kind} {Subject}";
}

/// <summary>
/// Builds one nf_tables transaction in a buffer allocated once: NFNL_MSG_BATCH_BEGIN, the messages
/// (each with NLM_F_ACK and the next sequence number), NFNL_MSG_BATCH_END — sent by
/// <see cref="NftablesSocket.Commit"/> in one sendto and applied by the kernel all or nothing. Each
/// Add/Delete returns false (or how many elements went in) when the buffer is full; <see cref="Clear"/>
/// starts over. The buffer's size bounds the datagram; the socket's send buffer is sized to match.
/// </summary>
public sealed class NftBatch
{
    /// <summary>Elements per NEWSETELEM/DESTROYSETELEM message by default: an error then names a group of this size; the kernel's 64 KiB nest limit allows ~1 300 IPv4 elements.</summary>
    public const int DefaultElementsPerMessage = 256;

    private readonly byte[] _buffer;
    private readonly List<NftOperation> _operations = [];
    private int _used;
    private uint _setIds;

    public NftBatch(int capacityBytes = 256 << 10, uint firstSequence = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 4 << 10);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacityBytes, 16 << 20);
        _buffer = GC.AllocateUninitializedArray<byte>(capacityBytes);
        Clear(firstSequence);
    }

    public int Capacity => _buffer.Length;

    /// <summary>Sequence number of NFNL_MSG_BATCH_BEGIN; operation i has BeginSequence + 1 + i.</summary>
    public uint BeginSequence { get; private set; }

    public IReadOnlyList<NftOperation> Operations => _operations;

    /// <summary>Bytes of the datagram as it would be sent (BATCH_END included).</summary>
    public int Length => _used + NftablesCodec.BatchDelimiterSize;

    public uint SequenceOf(int operation) => BeginSequence + 1 + (uint)operation;

    /// <summary>Empties the batch; its messages will be numbered from <paramref name="firstSequence"/> (the socket renumbers on commit).</summary>
    public void Clear(uint firstSequence = 0)
    {
        _operations.Clear();
        _setIds = 0;
        BeginSequence = firstSequence;
        _used = NftablesCodec.WriteBatchDelimiter(_buffer, 0, begin: true, firstSequence);
    }

    /// <summary>
    /// Creates the table (an existing one is left as it is). With <paramref name="owner"/>
    /// (NFT_TABLE_F_OWNER) the table belongs to the socket that commits this batch: the kernel deletes it
    /// with everything in it when that socket closes (a crash included), and refuses changes to it from
    /// any other socket (EPERM) while reads (dumps, gets) stay open to all.
    /// </summary>
    public bool AddTable(string table, byte family = Nftables.FamilyInet, bool owner = false)
    {
        NftFlowSet.CheckName(table, nameof(table));
        return Append(NftablesCodec.WriteNewTable(Room, _used, NextSequence, family, table, owner),
            new(NftOperationKind.AddTable, $"{FamilyName(family)} {table}{(owner ? " (owner)" : "")}"));
    }

    /// <summary>Deletes the table with everything in it; <paramref name="idempotent"/> (DESTROY): a missing table is no error.</summary>
    public bool DeleteTable(string table, byte family = Nftables.FamilyInet, bool idempotent = true)
    {
        NftFlowSet.CheckName(table, nameof(table));
        return Append(NftablesCodec.WriteDeleteTable(Room, _used, NextSequence, family, table, idempotent),
            new(NftOperationKind.DeleteTable, $"{FamilyName(family)} {table}"));
    }

    /// <summary>Creates the set (an existing set of the same definition is no error).</summary>
    public bool AddSet(NftFlowSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        bool added = Append(NftablesCodec.WriteNewSet(Room, _used, NextSequence, set, _setIds + 1), new(NftOperationKind.AddSet, Subject(set)));
        if (added)
            _setIds++;
        return added;
    }

    /// <summary>A base chain of type filter on <paramref name="hook"/> (Nftables.Hook*) at <paramref name="priority"/>, policy accept.</summary>
    public bool AddBaseChain(string table, string chain, uint hook, int priority, byte family = Nftables.FamilyInet)
    {
        NftFlowSet.CheckName(table, nameof(table));
        NftFlowSet.CheckName(chain, nameof(chain));
        return Append(NftablesCodec.WriteNewBaseChain(Room, _used, NextSequence, family, table, chain, hook, priority),
            new(NftOperationKind.AddChain, $"{FamilyName(family)} {table} {chain}"));
    }

    /// <summary>The bypass rule of <see cref="NftFlowRule.Write"/>, appended to <paramref name="chain"/> of the set's table.</summary>
    public bool AddFlowRule(NftFlowSet set, string chain, byte protocol, bool refresh, uint mark, NftMarkMode markMode = NftMarkMode.Set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return Append(NftFlowRule.Write(Room, _used, NextSequence, set, chain, protocol, refresh, mark, markMode),
            new(NftOperationKind.AddRule, $"{FamilyName(set.Family)} {set.Table} {chain} ({(protocol == 6 ? "tcp" : $"protocol {protocol}")} @{set.Name})"));
    }

    /// <summary>
    /// Adds <paramref name="elements"/> in messages of up to <paramref name="perMessage"/>; returns how
    /// many fit the batch (the rest go in the next one). Without <paramref name="exclusive"/> an element
    /// that exists already is no error.
    /// </summary>
    public int AddElements(NftFlowSet set, ReadOnlySpan<NftElement> elements, int perMessage = DefaultElementsPerMessage, bool exclusive = false)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentOutOfRangeException.ThrowIfLessThan(perMessage, 1);
        int done = 0;
        while (done < elements.Length)
        {
            int count = Math.Min(perMessage, elements.Length - done);
            int end;
            // A full batch (or a 64 KiB nest) takes fewer: halve until it fits.
            while ((end = NftablesCodec.WriteNewElements(Room, _used, NextSequence, set, elements.Slice(done, count), exclusive)) < 0 && count > 1)
                count /= 2;
            if (!Append(end, new(NftOperationKind.AddElements, Subject(set), done, count)))
                break;
            done += count;
        }
        return done;
    }

    /// <summary>Deletes the elements of <paramref name="keys"/>; with <paramref name="idempotent"/> (DESTROY) one already gone is no error. Returns how many fit.</summary>
    public int DeleteElements(NftFlowSet set, ReadOnlySpan<NftFlowKey> keys, int perMessage = DefaultElementsPerMessage, bool idempotent = true)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentOutOfRangeException.ThrowIfLessThan(perMessage, 1);
        int done = 0;
        while (done < keys.Length)
        {
            int count = Math.Min(perMessage, keys.Length - done);
            int end;
            while ((end = NftablesCodec.WriteDeleteElements(Room, _used, NextSequence, set, keys.Slice(done, count), idempotent)) < 0 && count > 1)
                count /= 2;
            if (!Append(end, new(NftOperationKind.DeleteElements, Subject(set), done, count)))
                break;
            done += count;
        }
        return done;
    }

    /// <summary>Removes every element of the set in one message (DELSETELEM without elements); ENOENT when the set does not exist.</summary>
    public bool FlushSet(NftFlowSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        return Append(NftablesCodec.WriteFlushSet(Room, _used, NextSequence, set), new(NftOperationKind.FlushSet, Subject(set)));
    }

    /// <summary>The datagram: the messages and BATCH_END (written here, so the batch can still grow afterwards).</summary>
    public ReadOnlySpan<byte> Datagram()
    {
        int end = NftablesCodec.WriteBatchDelimiter(_buffer, _used, begin: false, NextSequence);
        return _buffer.AsSpan(0, end);
    }

    /// <summary>Renumbers every message from <paramref name="firstSequence"/> (BATCH_BEGIN), in place.</summary>
    internal void Renumber(uint firstSequence)
    {
        BeginSequence = firstSequence;
        var reader = new NetlinkMessageReader(_buffer.AsSpan(0, _used), datagramTruncated: false);
        uint sequence = firstSequence;
        while (reader.TryRead(out _, out int offset, out _, out _))
        {
            MemoryMarshal.Write(_buffer.AsSpan(offset + NlMsgHdr.SequenceOffset), in sequence);
            sequence++;
        }
    }

    // Room for the messages: BATCH_END is always kept free.
    private Span<byte> Room => _buffer.AsSpan(0, _buffer.Length - NftablesCodec.BatchDelimiterSize);

    private uint NextSequence => SequenceOf(_operations.Count);

    private bool Append(int end, NftOperation operation)
    {
        if (end < 0)
            return false;
        _used = end;
        _operations.Add(operation);
        return true;
    }

    private static string Subject(NftFlowSet set) => $"{FamilyName(set.Family)} {set.Table} {set.Name}";

    private static string FamilyName(byte family) => family switch
    {
        Nftables.FamilyInet => "inet",
        Nftables.FamilyIpv4 => "ip",
        Nftables.FamilyIpv6 => "ip6",
        _ => $"family {family}",
    };
}
