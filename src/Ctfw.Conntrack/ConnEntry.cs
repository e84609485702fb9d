using System.Runtime.InteropServices;

namespace Ctfw.Conntrack;

/// <summary>
/// One tracked connection, stored by value in the table's preallocated array (no per-flow objects).
/// Exactly 128 bytes, two cache lines:
/// <code>
///   0  Orig tuple (40)            the REPLY tuple is derived (ConnTuple.TryInvert), not stored
///  40  Deadline (8)               ms on the injected clock; expired ⇔ Deadline − now ≤ 0
///  48  Status (4)                 CtStatus bits; bit 31 is the entry's spin lock
///  52  NextOrig, NextReply (4+4)  hash-chain links of the two directions (ConnTable.Link encoding)
///  60  TimerNext, TimerPrev (4+4) timer-wheel list links (housekeeper-owned)
///  68  AuxNext (4)                free stack / kill stack / arm stack link (one at a time)
///  72  Tcp (56)                   TCP window-tracking state, or UDP stream_ts overlaid at 72
/// </code>
/// Fields other than Status and Deadline are written only while the entry is locked, or before it is
/// published (unconfirmed), or by the housekeeper after it is unlinked.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct ConnEntry
{
    [FieldOffset(0)] public ConnTuple Orig;
    [FieldOffset(40)] public long Deadline;
    [FieldOffset(48)] public uint Status;
    [FieldOffset(52)] public int NextOrig;
    [FieldOffset(56)] public int NextReply;
    [FieldOffset(60)] public int TimerNext;
    [FieldOffset(64)] public int TimerPrev;
    [FieldOffset(68)] public int AuxNext;
    [FieldOffset(72)] public TcpConn Tcp;
    /// <summary>UDP/GRE: the time (ms) after which a replied flow counts as a stream (§7).</summary>
    [FieldOffset(72)] public long StreamTs;
}

/// <summary>Per-direction TCP window state (`struct ip_ct_tcp_state`).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct TcpSide
{
    public uint TdEnd;
    public uint TdMaxEnd;
    public uint TdMaxWin;
    public uint TdMaxAck;
}

/// <summary>`struct ip_ct_tcp`, 56 bytes.</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct TcpConn
{
    public TcpSide Seen0;
    public TcpSide Seen1;
    public uint LastSeq;
    public uint LastAck;
    public uint LastEnd;
    public ushort LastWin;
    public TcpState State;
    public byte Retrans;
    public byte LastDir;
    public byte LastIndex;
    public byte LastWscale;
    public byte LastFlags;
    public byte Scale0;
    public byte Flags0;
    public byte Scale1;
    public byte Flags1;
}

/// <summary>Per-direction flags (`IP_CT_TCP_FLAG_*`, §1.8).</summary>
internal static class TcpSideFlags
{
    public const byte WindowScale = 0x01;
    public const byte SackPerm = 0x02;
    public const byte CloseInit = 0x04;
    public const byte BeLiberal = 0x08;
    public const byte DataUnacknowledged = 0x10;
    public const byte MaxAckSet = 0x20;
    public const byte ExpChallengeAck = 0x40;
    public const byte SimultaneousOpen = 0x80;
}
