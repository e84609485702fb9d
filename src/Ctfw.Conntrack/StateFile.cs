using System.Buffers.Binary;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>
/// The state file: the whole table and the rescue tombstones, written by
/// <see cref="ConntrackEngine.WriteState"/> and read back by <see cref="ConntrackEngine.RestoreState"/>.
/// Format version 2 (version 1, without the helper fields, is still read). Every integer is little-endian (BinaryPrimitives), every layout fixed; no
/// reflection. Times on the engine's clock are never stored as such (that clock restarts with the
/// process): deadlines are stored as the time left and ages as the time elapsed, both relative to
/// the write, plus the wall-clock time of the write, so a restore subtracts the time it was down.
/// <code>
/// File    = Header Block* End
///
/// Header (64 bytes)
///    0  magic "CTFWSTAT" (8)
///    8  u16 format version (2)    a reader refuses a newer one (StateRestoreStatus.NewerVersion)
///   10  u16 header size (64)
///   12  u16 entry record size (184; 136 in version 1)
///   14  u16 tombstone record size (104)
///   16  i64 wall clock at the write, UTC Unix ms
///   24  i64 engine clock at the write, ms (informational)
///   32  i32 the writer's nf_conntrack_max (informational)
///   36  24 bytes zero (reserved)
///   60  u32 CRC32C of bytes 0..59
///
/// Block (16-byte block header, then payload)
///    0  u32 kind: 1 entries, 2 tombstones, 3 end
///    4  u32 record count
///    8  u32 payload length (= count × record size; for End 16; at most 1 MiB)
///   12  u32 CRC32C of block-header bytes 0..11 followed by the payload
/// End payload (16): u64 entries in the file, u64 tombstones in the file (must equal the blocks' sums);
/// nothing may follow it.
///
/// Entry record (184)                       Tombstone record (104)
///    0  tuple (40, below)                      0  tuple (40)
///   40  i64 timeout left at the write, ms     40  i64 expired this long before the write, ms
///   48  u32 status (kernel bits 0–15 and      48  TCP state (56, below)
///       the private Rescued, LooseRescue,
///       ZeroWindow and FinSeen bits)
///   52  u32 zero
///   56  TCP state (56, below); SCTP: u32 vtag ORIGINAL, u32 vtag REPLY, u8 state, flags, last dir, init bits, zeros;
///       other protocols: i64 stream_ts − write time (UDP/GRE) and zeros
///  112  i64 ms since the state changed (FlowAge.StateSinceMs)
///  120  i64 ms since ORIGINAL's zero window began (valid while its status bit is set)
///  128  i64 ms since REPLY's zero window began
///  136  u8 conntrack helper (CtHelper: 0 none, 1 ftp, 2 tftp), u8 an expected entry's master's
///       helper (the same numbers), 6 zero bytes                                (version 2 on)
///  144  tuple (40): an expected entry's master's ORIGINAL tuple; all zero when none (version 2 on)
///
/// Tuple (40): u64 src hi, u64 src lo, u64 dst hi, u64 dst lo, u16 src id, u16 dst id, u8 protocol,
///             u8 ip version (4 or 6), u16 zone
/// TCP state (56), `struct ip_ct_tcp`: per direction (ORIGINAL, then REPLY) u32 td_end, td_maxend,
///             td_maxwin, td_maxack; then u32 last_seq, last_ack, last_end, u16 last_win, u8 state,
///             retrans, last_dir, last_index, last_wscale, last_flags, td_scale[0], flags[0],
///             td_scale[1], flags[1]
/// </code>
/// A block holds whole records only, so a reader checks each block's checksum before it decodes a
/// record of it. The counts are in the End block because the writer streams a moving table: it knows
/// them only at the end.
/// </summary>
internal static class StateFile
{
    public const ushort Version = 2;
    public const int HeaderSize = 64;
    public const int BlockHeaderSize = 16;
    public const int EntrySize = 184;
    /// <summary>Version 1's entry record: the same fields up to the helper.</summary>
    public const int EntrySizeV1 = 136;
    public const int TombstoneSize = 104;
    public const int EndPayloadSize = 16;
    public const uint KindEntries = 1, KindTombstones = 2, KindEnd = 3;
    /// <summary>A reader allocates no more than this for one block, whatever a damaged length says.</summary>
    public const int MaxPayload = 1 << 20;
    /// <summary>Records per block the writer aims at (a block is written when it holds at least this many).</summary>
    public const int RecordsPerBlock = 512;

    public static ReadOnlySpan<byte> Magic => "CTFWSTAT"u8;

    /// <summary>
    /// The status bits a state file carries; the others (lock, Armed, Dying) belong to the running
    /// table, and so does Offload: the offload sets belong to the process (the kernel deletes its owned
    /// table when it exits), so a restored flow is not offloaded — but keeps Bypassed, since the kernel
    /// may have forwarded data of it that ctfw never saw.
    /// </summary>
    public const uint KeptStatus = (PrivateStatus.Reported & ~(uint)CtStatus.Offload) | (uint)CtStatus.Rescued | PrivateStatus.LooseRescue
        | PrivateStatus.ZeroWindow0 | (PrivateStatus.ZeroWindow0 << 1) | PrivateStatus.FinSeen0 | (PrivateStatus.FinSeen0 << 1)
        | PrivateStatus.Bypassed;

    public static void WriteHeader(Span<byte> b, long wallClockUnixMs, long nowMs, int max)
    {
        b[..HeaderSize].Clear();
        Magic.CopyTo(b);
        BinaryPrimitives.WriteUInt16LittleEndian(b[8..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], HeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(b[12..], EntrySize);
        BinaryPrimitives.WriteUInt16LittleEndian(b[14..], TombstoneSize);
        BinaryPrimitives.WriteInt64LittleEndian(b[16..], wallClockUnixMs);
        BinaryPrimitives.WriteInt64LittleEndian(b[24..], nowMs);
        BinaryPrimitives.WriteInt32LittleEndian(b[32..], max);
        BinaryPrimitives.WriteUInt32LittleEndian(b[60..], Crc32C.Compute(0, b[..60]));
    }

    /// <summary>Fills the block header in front of a payload already in <paramref name="block"/>[16..].</summary>
    public static void SealBlock(Span<byte> block, uint kind, int count, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(block, kind);
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], (uint)count);
        BinaryPrimitives.WriteUInt32LittleEndian(block[8..], (uint)payloadLength);
        uint crc = Crc32C.Compute(0, block[..12]);
        crc = Crc32C.Compute(crc, block.Slice(BlockHeaderSize, payloadLength));
        BinaryPrimitives.WriteUInt32LittleEndian(block[12..], crc);
    }

    public static void WriteTuple(Span<byte> b, in ConnTuple t)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(b, t.Src.Hi);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], t.Src.Lo);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], t.Dst.Hi);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], t.Dst.Lo);
        BinaryPrimitives.WriteUInt16LittleEndian(b[32..], t.SrcId);
        BinaryPrimitives.WriteUInt16LittleEndian(b[34..], t.DstId);
        b[36] = t.Protocol;
        b[37] = t.IpVersion;
        BinaryPrimitives.WriteUInt16LittleEndian(b[38..], t.Zone);
    }

    public static ConnTuple ReadTuple(ReadOnlySpan<byte> b)
    {
        ConnTuple t = default;
        t.Src = new IpAddress(BinaryPrimitives.ReadUInt64LittleEndian(b), BinaryPrimitives.ReadUInt64LittleEndian(b[8..]));
        t.Dst = new IpAddress(BinaryPrimitives.ReadUInt64LittleEndian(b[16..]), BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));
        t.SrcId = BinaryPrimitives.ReadUInt16LittleEndian(b[32..]);
        t.DstId = BinaryPrimitives.ReadUInt16LittleEndian(b[34..]);
        t.Protocol = b[36];
        t.IpVersion = b[37];
        t.Zone = BinaryPrimitives.ReadUInt16LittleEndian(b[38..]);
        return t;
    }

    public static void WriteTcp(Span<byte> b, in TcpConn c)
    {
        WriteSide(b, c.Seen0);
        WriteSide(b[16..], c.Seen1);
        BinaryPrimitives.WriteUInt32LittleEndian(b[32..], c.LastSeq);
        BinaryPrimitives.WriteUInt32LittleEndian(b[36..], c.LastAck);
        BinaryPrimitives.WriteUInt32LittleEndian(b[40..], c.LastEnd);
        BinaryPrimitives.WriteUInt16LittleEndian(b[44..], c.LastWin);
        b[46] = (byte)c.State;
        b[47] = c.Retrans;
        b[48] = c.LastDir;
        b[49] = c.LastIndex;
        b[50] = c.LastWscale;
        b[51] = c.LastFlags;
        b[52] = c.Scale0;
        b[53] = c.Flags0;
        b[54] = c.Scale1;
        b[55] = c.Flags1;
    }

    /// <summary>
    /// SCTP entries (in the 56 bytes a TCP entry's ip_ct_tcp takes): vtag ORIGINAL, vtag REPLY, then
    /// state, flags, last direction and init bits one byte each; the rest zero.
    /// </summary>
    public static void WriteSctp(Span<byte> b, in SctpConn c)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, c.Vtag0);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], c.Vtag1);
        b[8] = (byte)c.State;
        b[9] = c.Flags;
        b[10] = c.LastDir;
        b[11] = c.Init;
    }

    public static SctpConn ReadSctp(ReadOnlySpan<byte> b) => new()
    {
        Vtag0 = BinaryPrimitives.ReadUInt32LittleEndian(b),
        Vtag1 = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]),
        State = (SctpState)b[8],
        Flags = b[9],
        LastDir = b[10],
        Init = b[11],
    };

    public static TcpConn ReadTcp(ReadOnlySpan<byte> b)
    {
        TcpConn c = default;
        c.Seen0 = ReadSide(b);
        c.Seen1 = ReadSide(b[16..]);
        c.LastSeq = BinaryPrimitives.ReadUInt32LittleEndian(b[32..]);
        c.LastAck = BinaryPrimitives.ReadUInt32LittleEndian(b[36..]);
        c.LastEnd = BinaryPrimitives.ReadUInt32LittleEndian(b[40..]);
        c.LastWin = BinaryPrimitives.ReadUInt16LittleEndian(b[44..]);
        c.State = (TcpState)b[46];
        c.Retrans = b[47];
        c.LastDir = b[48];
        c.LastIndex = b[49];
        c.LastWscale = b[50];
        c.LastFlags = b[51];
        c.Scale0 = b[52];
        c.Flags0 = b[53];
        c.Scale1 = b[54];
        c.Flags1 = b[55];
        return c;
    }

    private static void WriteSide(Span<byte> b, in TcpSide s)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, s.TdEnd);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], s.TdMaxEnd);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], s.TdMaxWin);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], s.TdMaxAck);
    }

    private static TcpSide ReadSide(ReadOnlySpan<byte> b) => new()
    {
        TdEnd = BinaryPrimitives.ReadUInt32LittleEndian(b),
        TdMaxEnd = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]),
        TdMaxWin = BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        TdMaxAck = BinaryPrimitives.ReadUInt32LittleEndian(b[12..]),
    };

    /// <summary>
    /// Encodes an entry copied under its lock. <paramref name="e"/>'s deadline and times are on the
    /// engine clock; they are stored relative to <paramref name="now"/>.
    /// </summary>
    public static void WriteEntry(Span<byte> b, in ConnEntry e, in FlowAge age, in HelperSlot helper, long now)
    {
        b[..EntrySize].Clear();
        WriteTuple(b, e.Orig);
        BinaryPrimitives.WriteInt64LittleEndian(b[40..], e.Deadline - now);
        BinaryPrimitives.WriteUInt32LittleEndian(b[48..], e.Status & KeptStatus);
        if (e.Orig.Protocol == IpProto.Tcp)
            WriteTcp(b[56..], e.Tcp);
        else if (e.Orig.Protocol == IpProto.Sctp)
            WriteSctp(b[56..], e.Sctp);
        else
            BinaryPrimitives.WriteInt64LittleEndian(b[56..], e.StreamTs - now);
        BinaryPrimitives.WriteInt64LittleEndian(b[112..], now - age.StateSinceMs);
        BinaryPrimitives.WriteInt64LittleEndian(b[120..], now - age.ZeroWindowSince0);
        BinaryPrimitives.WriteInt64LittleEndian(b[128..], now - age.ZeroWindowSince1);
        b[136] = (byte)helper.Helper;
        b[137] = (byte)helper.MasterHelper;
        if (helper.MasterOrig.IpVersion != 0)
            WriteTuple(b[144..], helper.MasterOrig);
    }

    public static void WriteTombstone(Span<byte> b, in Tombstone t, long now)
    {
        WriteTuple(b, t.Orig);
        BinaryPrimitives.WriteInt64LittleEndian(b[40..], now - t.ExpiredAtMs);
        WriteTcp(b[48..], t.Tcp);
    }

    /// <summary>Checks what a record (<see cref="EntrySize"/> or <see cref="EntrySizeV1"/> bytes) must satisfy to be inserted; null when it does, else what is wrong.</summary>
    public static string? CheckEntry(ReadOnlySpan<byte> b)
    {
        string? tuple = CheckTuple(b);
        if (tuple != null)
            return tuple;
        if (b.Length >= EntrySize)
        {
            if (b[136] > (byte)CtHelper.Tftp || b[137] > (byte)CtHelper.Tftp || b.Slice(138, 6).ContainsAnyExcept((byte)0))
                return $"helper {b[136]}/{b[137]} unknown";
            if (b[144 + 37] != 0 && CheckTuple(b[144..]) is { } master)
                return "master: " + master;
            if (b[144 + 37] == 0 && b.Slice(144, 40).ContainsAnyExcept((byte)0))
                return "master tuple without an IP version";
        }
        uint status = BinaryPrimitives.ReadUInt32LittleEndian(b[48..]);
        if ((status & ~KeptStatus) != 0)
            return $"status 0x{status:x} has bits a state file does not carry";
        if (BinaryPrimitives.ReadUInt32LittleEndian(b[52..]) != 0)
            return "reserved entry field is not zero";
        if (b[36] == IpProto.Tcp)
            return CheckTcp(b[56..]);
        if (b[36] == IpProto.Sctp)
        {
            if (b[64] >= (byte)SctpState.Max || b[67] > 3 || b.Slice(68, 44).ContainsAnyExcept((byte)0))
                return "SCTP state out of range";
            return null;
        }
        return b.Slice(64, 48).ContainsAnyExcept((byte)0) ? "non-TCP entry has TCP state" : null;
    }

    public static string? CheckTombstone(ReadOnlySpan<byte> b)
    {
        string? tuple = CheckTuple(b);
        if (tuple != null)
            return tuple;
        if (b[36] != IpProto.Tcp)
            return "tombstone of a non-TCP flow";
        if (BinaryPrimitives.ReadInt64LittleEndian(b[40..]) < 0)
            return "tombstone expired after the write";
        return CheckTcp(b[48..]);
    }

    private static string? CheckTuple(ReadOnlySpan<byte> b)
    {
        byte version = b[37];
        if (version is not (4 or 6))
            return $"IP version {version}";
        if (b[36] is IpProto.Icmp or IpProto.Icmpv6 && !new ConnTuple { Protocol = b[36], DstId = BinaryPrimitives.ReadUInt16LittleEndian(b[34..]) }.TryInvert(out _))
            return "ICMP type without an inverse";
        return null;
    }

    private static string? CheckTcp(ReadOnlySpan<byte> b)
    {
        byte state = b[46];
        if (state is 0 or > (byte)TcpState.SynSent2)
            return $"TCP state {state}";
        if (b[48] > 1 || b[49] > TcpTracker.IdxNone || b[52] > 14 || b[54] > 14)
            return "TCP last direction, index or window scale out of range";
        return null;
    }
}

/// <summary>Why a state file was or was not restored.</summary>
public enum StateRestoreStatus
{
    /// <summary>The file was whole; its live entries were restored.</summary>
    Restored,
    /// <summary>Not a ctfw state file (wrong magic).</summary>
    ForeignFormat,
    /// <summary>Written by a newer ctfw (format version above the one this build reads).</summary>
    NewerVersion,
    /// <summary>Ends before its End block.</summary>
    Truncated,
    /// <summary>A checksum, length, count or record field is wrong.</summary>
    Damaged,
    /// <summary>The engine already holds entries; a restore goes into a fresh engine only.</summary>
    EngineNotEmpty,
    /// <summary>Reading the stream failed.</summary>
    ReadError,
}

/// <summary>
/// What <see cref="ConntrackEngine.RestoreState"/> did. With any status but
/// <see cref="StateRestoreStatus.Restored"/> nothing was restored and <see cref="Message"/> says why.
/// </summary>
public readonly record struct StateRestoreResult(StateRestoreStatus Status, string Message)
{
    /// <summary>Entries inserted with their remaining timeouts.</summary>
    public int Restored { get; init; }
    /// <summary>Entries whose time ran out while ctfw was down.</summary>
    public int Expired { get; init; }
    /// <summary>Entries left out because the table reached nf_conntrack_max.</summary>
    public int OverLimit { get; init; }
    /// <summary>Entries left out because an entry of the same tuple was restored already (a moving cut may hold both).</summary>
    public int Duplicates { get; init; }
    public int TombstonesRestored { get; init; }
    /// <summary>Tombstones left out: past the rescue window, or rescue is off in this engine.</summary>
    public int TombstonesSkipped { get; init; }
    /// <summary>Wall-clock time between the write and the restore (0 when the clock went back).</summary>
    public long DowntimeMs { get; init; }
}
