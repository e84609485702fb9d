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
///  72  Tcp (56)                   TCP window-tracking state; or UDP stream_ts, or SCTP state (12), overlaid at 72
/// </code>
/// Fields other than Status and Deadline are written only while the entry is locked, or before it is
/// published (unconfirmed), or by the housekeeper after it is unlinked.
///
/// Status bits: 0–15 the kernel's (<see cref="CtStatus"/>), reported as they are; 20–31 ctfw-private
/// (<see cref="CtStatus.Armed"/>, <see cref="CtStatus.Rescued"/>, <see cref="PrivateStatus"/>, and
/// the lock), masked off in every report. Private bits other than the lock are changed by atomic
/// OR/AND by the thread holding the entry lock (others OR Dying concurrently).
///
/// Flow ages live outside the entry, in <see cref="ConnTable.Ages"/> (same index), so the entry
/// stays two cache lines; the packet path touches them only when something changes. Accounting
/// (packets and bytes per direction) lives in <see cref="ConnTable.Acct"/>, same index.
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
    /// <summary>SCTP: `struct ip_ct_sctp` (state, vtags, init flags).</summary>
    [FieldOffset(72)] public SctpConn Sctp;
}

/// <summary>ctfw-private <see cref="ConnEntry.Status"/> bits below the lock (see <see cref="ConnEntry"/>).</summary>
internal static class PrivateStatus
{
    /// <summary>Opened by loose rescue: its timeout stays capped at the loose timeout.</summary>
    public const uint LooseRescue = 1u << 22;
    /// <summary>The ORIGINAL sender advertises a zero window now (since <see cref="FlowAge.ZeroWindowSince0"/>); REPLY is the next bit.</summary>
    public const uint ZeroWindow0 = 1u << 23;
    /// <summary>The ORIGINAL sender has sent a FIN; REPLY is the next bit.</summary>
    public const uint FinSeen0 = 1u << 25;
    /// <summary>
    /// The flow was offloaded at some point: the kernel may have forwarded data ctfw never saw, so a
    /// segment ahead of ctfw's window re-learns the windows (ConntrackWorker.Existing). Never cleared.
    /// </summary>
    public const uint Bypassed = 1u << 27;
    /// <summary>The kernel refused the flow's elements (a full set, say): not nominated again until the offload manager clears it.</summary>
    public const uint OffloadRefused = 1u << 28;
    /// <summary>
    /// The entry's helper slot matters on the packet path: it has a helper, or a master whose helper
    /// `-m helper` reads. Set before the entry is published, never cleared; packets of other entries
    /// then never touch the helper array (one cold cache line each on a big table).
    /// </summary>
    public const uint Helped = 1u << 29;

    public const uint Reported = 0xFFFF;
}

/// <summary>
/// Ages of one entry (ctfw-private, indexed like the entry): written by the worker holding the entry
/// lock, read without it by listings (each field is one whole 64-bit value; a listing may pair a
/// field with a status bit one packet older, which is harmless for a display).
/// </summary>
internal struct FlowAge
{
    /// <summary>When the TCP state last changed (for other protocols: when the entry was created).</summary>
    public long StateSinceMs;
    /// <summary>When the entry was created (engine clock, ms); for a restored entry when its state last changed,
    /// for one adopted from the kernel or brought back by a rescue when that happened.</summary>
    public long CreatedMs;
    /// <summary>Valid while <see cref="PrivateStatus.ZeroWindow0"/> (ORIGINAL) / the next bit (REPLY) is set.</summary>
    public long ZeroWindowSince0;
    public long ZeroWindowSince1;
}

/// <summary>
/// Per-flow accounting (the kernel's `nf_conn_acct`, §13.3 CTA_COUNTERS), indexed like the entry:
/// packets and bytes (IP total length, the kernel's skb-&gt;len at the conntrack hook) per direction,
/// counted for every packet the tracker accepted (not for INVALID or TCP-ignored ones, as
/// nf_ct_refresh_acct). 32 bytes, so two share a cache line. The array exists only once
/// nf_conntrack_acct has been on (<see cref="ConnTable.EnableAccounting"/>), as the kernel adds
/// its acct extension only while the sysctl is on.
/// <para>Every writer holds the entry lock (or owns the entry before it is published), so plain
/// adds lose nothing — unlike the kernel, which uses atomic64_add because it counts outside
/// ct-&gt;lock. A flow's packets may arrive on several workers (ARCHITECTURE: threading model), and
/// the lock is what serialises them. Listings read each field without the lock as one whole aligned
/// 64-bit value (a benign race: the four may be a packet apart).</para>
/// </summary>
internal struct FlowAcct
{
    public long Packets0;
    public long Bytes0;
    public long Packets1;
    public long Bytes1;
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

/// <summary>
/// `struct ip_ct_sctp`: the state, each direction's verification tag as the packets carry it (the
/// tag a packet of that direction must show), whether each side has sent an INIT, and the
/// HEARTBEAT vtag-failure flag with the direction that raised it. 12 bytes, overlaid on <see cref="TcpConn"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
internal struct SctpConn
{
    public uint Vtag0;
    public uint Vtag1;
    public SctpState State;
    public byte Flags;
    public byte LastDir;
    /// <summary>Bit 0: ORIGINAL sent an INIT; bit 1: REPLY did (the kernel's init[2]).</summary>
    public byte Init;
}
