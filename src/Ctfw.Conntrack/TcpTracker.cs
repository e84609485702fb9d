using System.Runtime.CompilerServices;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>What the TCP tracker decided for one packet (the kernel's NF_ACCEPT / -NF_ACCEPT / -NF_REPEAT).</summary>
internal enum L4Result : byte
{
    /// <summary>Tracked; state and timeout updated.</summary>
    Accept,
    /// <summary>Accepted without changing state or timeout (sIG, window IGNORE, challenge ACK).</summary>
    Ignore,
    /// <summary>ctstate INVALID; the entry keeps whatever was already mutated (§4.8).</summary>
    Invalid,
    /// <summary>Accepted, then the entry is deleted (RST while no reply was seen).</summary>
    AcceptAndKill,
    /// <summary>Reopen: kill the entry and classify the packet again as the first of a new flow.</summary>
    Repeat,
}

/// <summary>
/// The kernel's TCP connection tracker (net/netfilter/nf_conntrack_proto_tcp.c, 6.x), rule for
/// rule as described in kernel-conntrack.md §4. Works on an entry the caller has locked.
/// </summary>
internal static class TcpTracker
{
    // Packet "index" (get_conntrack_index), precedence RST > SYN > FIN > ACK > none.
    public const int IdxSyn = 0, IdxSynAck = 1, IdxFin = 2, IdxAck = 3, IdxRst = 4, IdxNone = 5;

    private const uint MaxAckWinConst = 66000;

    private const byte SNO = (byte)TcpState.None, SSS = (byte)TcpState.SynSent, SSR = (byte)TcpState.SynRecv,
        SES = (byte)TcpState.Established, SFW = (byte)TcpState.FinWait, SCW = (byte)TcpState.CloseWait,
        SLA = (byte)TcpState.LastAck, STW = (byte)TcpState.TimeWait, SCL = (byte)TcpState.Close,
        SS2 = (byte)TcpState.SynSent2, SIV = (byte)TcpState.Max, SIG = (byte)TcpState.Ignore;

    // tcp_conntracks[dir][index][state] (§4.4); columns sNO sSS sSR sES sFW sCW sLA sTW sCL sS2.
    private static ReadOnlySpan<byte> Transitions =>
    [
        // ORIGINAL
        /* syn    */ SSS, SSS, SIG, SIG, SIG, SIG, SIG, SSS, SSS, SS2,
        /* synack */ SIV, SIV, SSR, SIV, SIV, SIV, SIV, SIV, SIV, SSR,
        /* fin    */ SIV, SIV, SFW, SFW, SLA, SLA, SLA, STW, SCL, SIV,
        /* ack    */ SES, SIV, SES, SES, SCW, SCW, STW, STW, SCL, SIV,
        /* rst    */ SIV, SCL, SCL, SCL, SCL, SCL, SCL, SCL, SCL, SCL,
        /* none   */ SIV, SIV, SIV, SIV, SIV, SIV, SIV, SIV, SIV, SIV,
        // REPLY
        /* syn    */ SIV, SS2, SIV, SIV, SIV, SIV, SIV, SSS, SIV, SS2,
        /* synack */ SIV, SSR, SIG, SIG, SIG, SIG, SIG, SIG, SIG, SSR,
        /* fin    */ SIV, SIV, SFW, SFW, SLA, SLA, SLA, STW, SCL, SIV,
        /* ack    */ SIV, SIG, SSR, SES, SCW, SCW, STW, STW, SCL, SIG,
        /* rst    */ SIV, SCL, SCL, SCL, SCL, SCL, SCL, SCL, SCL, SCL,
        /* none   */ SIV, SIV, SIV, SIV, SIV, SIV, SIV, SIV, SIV, SIV,
    ];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TcpState Transition(int dir, int index, TcpState state) =>
        (TcpState)Transitions[(dir * 60) + (index * 10) + (int)state];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Index(TcpFlags f) =>
        (f & TcpFlags.Rst) != 0 ? IdxRst
        : (f & TcpFlags.Syn) != 0 ? ((f & TcpFlags.Ack) != 0 ? IdxSynAck : IdxSyn)
        : (f & TcpFlags.Fin) != 0 ? IdxFin
        : (f & TcpFlags.Ack) != 0 ? IdxAck
        : IdxNone;

    /// <summary>tcp_valid_flags after masking ECE, CWR and PSH (§4.2 step 4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ValidFlags(TcpFlags f)
    {
        int v = (int)f & ~0xC8;
        return v is 0x02 or 0x22 or 0x12 or 0x04 or 0x14 or 0x11 or 0x31 or 0x10 or 0x30;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Before(uint a, uint b) => (int)(a - b) < 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool After(uint a, uint b) => (int)(b - a) < 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint SegmentEnd(in ParsedPacket p) =>
        p.Seq + (uint)p.TcpPayloadLength + ((p.TcpFlags & TcpFlags.Syn) != 0 ? 1u : 0u) + ((p.TcpFlags & TcpFlags.Fin) != 0 ? 1u : 0u);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref TcpSide Side(ref TcpConn c, int dir) => ref dir == 0 ? ref c.Seen0 : ref c.Seen1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref byte Flags(ref TcpConn c, int dir) => ref dir == 0 ? ref c.Flags0 : ref c.Flags1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref byte Scale(ref TcpConn c, int dir) => ref dir == 0 ? ref c.Scale0 : ref c.Scale1;

    /// <summary>tcp_options: reset scale and all flags but BE_LIBERAL, then take WSCALE / SACK_PERM from a SYN.</summary>
    private static void ReadOptions(in ParsedPacket p, ref byte flags, ref byte scale)
    {
        scale = 0;
        flags &= TcpSideFlags.BeLiberal;
        if (p.TcpOptions.SackPermitted)
            flags |= TcpSideFlags.SackPerm;
        if (p.TcpOptions.HasWindowScale)
        {
            scale = Math.Min(p.TcpOptions.WindowScale, (byte)14);
            flags |= TcpSideFlags.WindowScale;
        }
    }

    /// <summary>
    /// tcp_new (§4.5): initialise an unconfirmed entry from its first packet. Returns the INVALID
    /// reason, or None when the entry may be created.
    /// </summary>
    public static InvalidReason New(ref ConnEntry e, in ParsedPacket p, ConntrackSettings s)
    {
        TcpState first = Transition(0, Index(p.TcpFlags), TcpState.None);
        if (first == TcpState.Max)
            return InvalidReason.TcpInvalidNew;
        if (first != TcpState.SynSent && !s.TcpLoose)
            return InvalidReason.TcpLooseDisabled;

        e.Tcp = default;
        ref TcpConn c = ref e.Tcp;
        uint end = SegmentEnd(p);
        c.Seen0.TdEnd = end;
        c.Seen0.TdMaxWin = p.Window == 0 ? 1u : p.Window;
        if (first == TcpState.SynSent)
        {
            c.Seen0.TdMaxEnd = end;
            ReadOptions(p, ref c.Flags0, ref c.Scale0);
        }
        else
        {
            // Mid-stream pickup: history is lost, so assume SACK and be liberal in both directions.
            c.Seen0.TdMaxEnd = end + c.Seen0.TdMaxWin;
            c.Flags0 = c.Flags1 = TcpSideFlags.SackPerm | TcpSideFlags.BeLiberal;
        }
        c.LastIndex = IdxNone;
        return InvalidReason.None;
    }

    /// <summary>
    /// ctfw loose rescue (not the kernel): a closing-only entry for a FIN or RST with no history at
    /// all. Initialised as tcp_new's mid-stream pickup (liberal both ways, SACK assumed), in
    /// ESTABLISHED, so that <see cref="Packet"/> then moves it to FIN_WAIT (FIN) or CLOSE (RST).
    /// </summary>
    public static void NewClosing(ref ConnEntry e, in ParsedPacket p)
    {
        e.Tcp = default;
        ref TcpConn c = ref e.Tcp;
        uint end = SegmentEnd(p);
        c.Seen0.TdEnd = end;
        c.Seen0.TdMaxWin = p.Window == 0 ? 1u : p.Window;
        c.Seen0.TdMaxEnd = end + c.Seen0.TdMaxWin;
        c.Flags0 = c.Flags1 = TcpSideFlags.SackPerm | TcpSideFlags.BeLiberal;
        c.LastIndex = IdxNone;
        c.State = TcpState.Established;
    }

    /// <summary>
    /// nf_conntrack_tcp_packet (§4.6) on a locked entry. <paramref name="dir"/> is 0 (ORIGINAL) or
    /// 1 (REPLY). Refreshes <see cref="ConnEntry.Deadline"/> itself when the packet counts.
    /// </summary>
    public static L4Result Packet(ref ConnEntry e, in ParsedPacket p, int dir, long now, ConntrackSettings s, out InvalidReason reason)
    {
        reason = InvalidReason.None;
        ref TcpConn c = ref e.Tcp;
        TcpState oldState = c.State;
        int index = Index(p.TcpFlags);
        TcpState newState = Transition(dir, index, oldState);
        // Under the entry lock, but Dying is set without it: one fresh read of the whole word.
        uint status = Volatile.Read(ref e.Status);
        bool skipWindow = false;

        switch (newState)
        {
            case TcpState.SynSent:
                if (oldState < TcpState.TimeWait)
                    break;
                // SYN in TIME_WAIT/CLOSE: reopen when the old connection was closed or aborted.
                if (((c.Flags0 | c.Flags1) & TcpSideFlags.CloseInit) != 0
                    || (c.LastDir == dir && c.LastIndex == IdxRst))
                    return L4Result.Repeat;
                return Ignored(ref c, p, dir, index, oldState);
            case TcpState.Ignore:
                if (index == IdxSynAck && c.LastIndex == IdxSyn && c.LastDir != dir && p.AckSeq == c.LastEnd)
                {
                    // The peer answered a SYN we ignored: resynchronise from the annotations.
                    oldState = TcpState.SynSent;
                    newState = TcpState.SynRecv;
                    int ld = c.LastDir;
                    ref TcpSide last = ref Side(ref c, ld);
                    last.TdEnd = c.LastEnd;
                    last.TdMaxEnd = c.LastEnd;
                    last.TdMaxWin = c.LastWin == 0 ? 1u : c.LastWin;
                    Scale(ref c, ld) = c.LastWscale;
                    c.LastFlags &= unchecked((byte)~TcpSideFlags.ExpChallengeAck);
                    Flags(ref c, ld) = c.LastFlags;
                    ref TcpSide me = ref Side(ref c, dir);
                    me = default;
                    Scale(ref c, dir) = 0;
                    Flags(ref c, dir) &= TcpSideFlags.BeLiberal;
                    break;
                }
                return Ignored(ref c, p, dir, index, oldState);
            case TcpState.Max:
                reason = InvalidReason.TcpInvalidTransition;
                return L4Result.Invalid;
            case TcpState.TimeWait:
                if (oldState == TcpState.LastAck && index == IdxAck && c.LastDir != dir
                    && c.LastIndex == IdxSyn && (c.LastFlags & TcpSideFlags.ExpChallengeAck) != 0)
                {
                    // RFC 5961 challenge ACK to a SYN: must not be taken as the last ACK.
                    c.LastFlags &= unchecked((byte)~TcpSideFlags.ExpChallengeAck);
                    return L4Result.Ignore;
                }
                break;
            case TcpState.SynSent2:
                c.LastFlags |= TcpSideFlags.SimultaneousOpen;
                break;
            case TcpState.SynRecv:
                if (dir == 1 && index == IdxAck && (c.LastFlags & TcpSideFlags.SimultaneousOpen) != 0)
                    newState = TcpState.Established;
                break;
            case TcpState.Close:
                if (index != IdxRst)
                    break;
                if (CanEarlyDrop(oldState))
                {
                    // Closing: the tuple may be reused already, the window data is stale.
                    skipWindow = true;
                    break;
                }
                int peer = dir ^ 1;
                if ((Flags(ref c, peer) & TcpSideFlags.MaxAckSet) != 0 && c.LastIndex != IdxSyn)
                {
                    ref TcpSide other = ref Side(ref c, peer);
                    bool established = oldState == TcpState.Established && (status & (uint)CtStatus.Assured) != 0;
                    if (p.Seq == 0 && !established)
                        goto RstChecksDone;
                    if (Before(p.Seq, other.TdMaxAck) && !s.TcpIgnoreInvalidRst)
                    {
                        reason = InvalidReason.TcpInvalidRst;
                        return L4Result.Invalid;
                    }
                    if (!established || p.Seq == other.TdMaxAck)
                        goto RstChecksDone;
                    if (c.LastIndex == IdxAck && c.LastDir == dir && p.Seq == c.LastEnd)
                        goto RstChecksDone;
                    // Inexact RST on an established connection: keep the state for a challenge ACK.
                    newState = oldState;
                }
                if ((((status & (uint)CtStatus.SeenReply) != 0 && c.LastIndex == IdxSyn)
                        || ((status & (uint)CtStatus.Assured) == 0 && c.LastIndex == IdxAck))
                    && p.AckSeq == c.LastEnd)
                {
                    // RST answering a SYN or ACK we let through: it may ack segments we ignored.
                    skipWindow = true;
                    break;
                }
                if (oldState == TcpState.SynSent && c.LastIndex == IdxAck && c.LastDir == 1 && p.Seq == c.LastAck)
                {
                    // RST answering a challenge ACK we let through.
                    skipWindow = true;
                }
                break;
            RstChecksDone:
                break;
        }

        if (!skipWindow)
        {
            L4Result w = InWindow(ref c, p, dir, index, s, out reason);
            if (w == L4Result.Ignore)
                return L4Result.Ignore;
            if (w == L4Result.Invalid)
            {
                HandleInvalid(ref e, dir, index, now, s, status);
                return L4Result.Invalid;
            }
        }

        // In window: commit.
        c.LastIndex = (byte)index;
        c.LastDir = (byte)dir;
        c.State = newState;
        if (oldState != newState && newState == TcpState.FinWait)
            Flags(ref c, dir) |= TcpSideFlags.CloseInit;

        int[] t = s.TcpTimeouts;
        int timeout;
        if (c.Retrans >= s.TcpMaxRetrans && t[(int)newState] > t[(int)TcpState.Retrans])
            timeout = t[(int)TcpState.Retrans];
        else if (index == IdxRst)
            timeout = t[(int)TcpState.Close];
        else if (((c.Flags0 | c.Flags1) & TcpSideFlags.DataUnacknowledged) != 0 && t[(int)newState] > t[(int)TcpState.Unack])
            timeout = t[(int)TcpState.Unack];
        else if (c.LastWin == 0 && t[(int)newState] > t[(int)TcpState.Retrans])
            timeout = t[(int)TcpState.Retrans];
        else
            timeout = t[(int)newState];

        if ((status & (uint)CtStatus.SeenReply) == 0)
        {
            if ((p.TcpFlags & TcpFlags.Rst) != 0)
                return L4Result.AcceptAndKill;
            // A SYN retransmission does not renew the timeout (≥ 5.14).
            if (index == IdxSyn && oldState == TcpState.SynSent)
                return L4Result.Accept;
            // Picked-up connection without a reply: avoid the long ESTABLISHED timeout.
            if (newState == TcpState.Established && timeout > t[(int)TcpState.Unack])
                timeout = t[(int)TcpState.Unack];
        }
        else if ((status & (uint)CtStatus.Assured) == 0
            && (oldState == TcpState.SynRecv || oldState == TcpState.Established)
            && newState == TcpState.Established)
        {
            // Atomic although we hold the lock: the word also carries the lock bit and the lock-free
            // Dying bit, which a plain read-modify-write could erase.
            Interlocked.Or(ref e.Status, (uint)CtStatus.Assured);
        }
        // Read without the lock by lookups, the wheel and listings: one whole 64-bit store (also on
        // 32-bit). The lock, not this store, orders it with the TCP state (lookups then lock).
        Volatile.Write(ref e.Deadline, now + (timeout * 1000L));
        return L4Result.Accept;
    }

    /// <summary>tcp_can_early_drop: the closing states, where RST checks are skipped.</summary>
    public static bool CanEarlyDrop(TcpState s) =>
        s is TcpState.FinWait or TcpState.LastAck or TcpState.TimeWait or TcpState.Close or TcpState.CloseWait;

    /// <summary>The sIG path: annotate the packet for a later resync and accept it unchanged.</summary>
    private static L4Result Ignored(ref TcpConn c, in ParsedPacket p, int dir, int index, TcpState oldState)
    {
        c.LastIndex = (byte)index;
        c.LastDir = (byte)dir;
        c.LastSeq = p.Seq;
        c.LastEnd = SegmentEnd(p);
        c.LastWin = p.Window;
        if (index == IdxSyn && dir == 0)
        {
            c.LastFlags = 0;
            c.LastWscale = 0;
            if (p.TcpOptions.HasWindowScale)
            {
                c.LastFlags |= TcpSideFlags.WindowScale;
                c.LastWscale = Math.Min(p.TcpOptions.WindowScale, (byte)14);
            }
            if (p.TcpOptions.SackPermitted)
                c.LastFlags |= TcpSideFlags.SackPerm;
            if (oldState == TcpState.LastAck)
                c.LastFlags |= TcpSideFlags.ExpChallengeAck;
        }
        // A REPLY ACK while in SYN_SENT may be a challenge ACK to our SYN.
        if (oldState == TcpState.SynSent && index == IdxAck && dir == 1)
            c.LastAck = p.AckSeq;
        return L4Result.Ignore;
    }

    /// <summary>tcp_init_sender: (re)initialise a direction from a SYN or SYN/ACK.</summary>
    private static void InitSender(ref TcpConn c, in ParsedPacket p, int dir, uint end)
    {
        ref TcpSide sender = ref Side(ref c, dir);
        sender.TdEnd = end;
        sender.TdMaxEnd = end;
        sender.TdMaxWin = p.Window == 0 ? 1u : p.Window;
        ReadOptions(p, ref Flags(ref c, dir), ref Scale(ref c, dir));
        // RFC 7323: scaling only when both SYN and SYN/ACK carried the option.
        if (dir == 1 && !((Flags(ref c, 1) & TcpSideFlags.WindowScale) != 0 && (Flags(ref c, 0) & TcpSideFlags.WindowScale) != 0))
        {
            c.Scale0 = 0;
            c.Scale1 = 0;
        }
    }

    /// <summary>tcp_in_window (§4.7): Accept, Ignore or Invalid.</summary>
    private static L4Result InWindow(ref TcpConn c, in ParsedPacket p, int dir, int index, ConntrackSettings s, out InvalidReason reason)
    {
        reason = InvalidReason.None;
        int rdir = dir ^ 1;
        ref TcpSide sender = ref Side(ref c, dir);
        ref TcpSide receiver = ref Side(ref c, rdir);
        TcpFlags f = p.TcpFlags;
        bool syn = (f & TcpFlags.Syn) != 0;
        bool ack = (f & TcpFlags.Ack) != 0;
        uint seq = p.Seq;
        uint ackSeq = p.AckSeq;
        uint sack = ackSeq;
        uint win = p.Window;
        uint end = SegmentEnd(p);

        if ((Flags(ref c, rdir) & TcpSideFlags.SackPerm) != 0)
            sack = p.TcpOptions.SackLatest;

        if (sender.TdMaxWin == 0)
        {
            if (syn)
            {
                InitSender(ref c, p, dir, end);
                if (!ack)
                    return L4Result.Accept; // simultaneous open
            }
            else
            {
                // Mid-stream: take what the packet tells us.
                sender.TdEnd = end;
                uint swin = win << Scale(ref c, dir);
                sender.TdMaxWin = swin == 0 ? 1u : swin;
                sender.TdMaxEnd = end + sender.TdMaxWin;
                if (receiver.TdMaxWin == 0)
                {
                    receiver.TdEnd = sack;
                    receiver.TdMaxEnd = sack;
                }
                else if (sack == receiver.TdEnd + 1)
                {
                    receiver.TdEnd++; // reply to a keep-alive
                }
            }
        }
        else if (syn && After(end, sender.TdEnd) && (c.State == TcpState.SynSent || c.State == TcpState.SynRecv))
        {
            // RFC 793: a reinitialised TCP uses higher sequence numbers.
            InitSender(ref c, p, dir, end);
            if (dir == 1 && !ack)
                return L4Result.Accept;
        }

        if (!ack)
        {
            ackSeq = sack = receiver.TdEnd;
        }
        else if ((f & TcpFlags.Rst) != 0 && ackSeq == 0)
        {
            ackSeq = sack = receiver.TdEnd; // broken stacks: RST+ACK with ack 0
        }

        if ((f & TcpFlags.Rst) != 0 && seq == 0 && c.State == TcpState.SynSent)
            seq = end = sender.TdEnd; // RST answering our SYN

        bool liberal = (Flags(ref c, dir) & TcpSideFlags.BeLiberal) != 0 || s.TcpBeLiberal;
        uint maxAckWin = Math.Max(sender.TdMaxWin, MaxAckWinConst);

        if (!Before(seq, sender.TdMaxEnd + 1))
        {
            uint overshot = end - sender.TdMaxEnd + 1;
            bool ackOk = After(sack, receiver.TdEnd - maxAckWin - 1);
            bool inRecvWin = receiver.TdMaxWin != 0 && After(end, sender.TdEnd - receiver.TdMaxWin - 1);
            if (inRecvWin && ackOk && overshot <= receiver.TdMaxWin && Before(sack, receiver.TdEnd + 1))
            {
                // Peers that overrun the advertised window: remember the data so its ACK passes.
                sender.TdEnd = end;
                Flags(ref c, dir) |= TcpSideFlags.DataUnacknowledged;
                return liberal ? L4Result.Accept : L4Result.Ignore;
            }
            if (liberal)
                return L4Result.Accept;
            reason = InvalidReason.TcpSeqOverUpperBound;
            return L4Result.Invalid;
        }

        if (!Before(sack, receiver.TdEnd + 1))
        {
            if (liberal)
                return L4Result.Accept;
            reason = InvalidReason.TcpAckOverUpperBound;
            return L4Result.Invalid;
        }

        bool inWin = receiver.TdMaxWin == 0 || After(end, sender.TdEnd - receiver.TdMaxWin - 1);
        if (!inWin)
            return liberal ? L4Result.Accept : L4Result.Ignore; // already-acked data retransmitted
        if (!After(sack, receiver.TdEnd - maxAckWin - 1))
            return liberal ? L4Result.Accept : L4Result.Ignore; // overly delayed ACK

        if (!syn)
            win <<= Scale(ref c, dir);

        uint sw = win + (sack - ackSeq);
        if (sender.TdMaxWin < sw)
            sender.TdMaxWin = sw;
        if (After(end, sender.TdEnd))
        {
            sender.TdEnd = end;
            Flags(ref c, dir) |= TcpSideFlags.DataUnacknowledged;
        }
        if (ack)
        {
            if ((Flags(ref c, dir) & TcpSideFlags.MaxAckSet) == 0)
            {
                sender.TdMaxAck = ackSeq;
                Flags(ref c, dir) |= TcpSideFlags.MaxAckSet;
            }
            else if (After(ackSeq, sender.TdMaxAck))
            {
                sender.TdMaxAck = ackSeq;
            }
        }

        if (receiver.TdMaxWin != 0 && After(end, sender.TdMaxEnd))
            receiver.TdMaxWin += end - sender.TdMaxEnd;
        if (After(sack + win, receiver.TdMaxEnd - 1))
        {
            receiver.TdMaxEnd = sack + win;
            if (win == 0)
                receiver.TdMaxEnd++;
        }
        if (ackSeq == receiver.TdEnd)
            Flags(ref c, rdir) &= unchecked((byte)~TcpSideFlags.DataUnacknowledged);

        if (index == IdxAck)
        {
            if (c.LastDir == dir && c.LastSeq == seq && c.LastAck == ackSeq && c.LastEnd == end && c.LastWin == p.Window)
            {
                c.Retrans++;
            }
            else
            {
                c.LastDir = (byte)dir;
                c.LastSeq = seq;
                c.LastAck = ackSeq;
                c.LastEnd = end;
                c.LastWin = p.Window;
                c.Retrans = 0;
            }
        }
        return L4Result.Accept;
    }

    /// <summary>nf_tcp_handle_invalid (§4.11): an out-of-window FIN/RST on an assured entry.</summary>
    private static void HandleInvalid(ref ConnEntry e, int dir, int index, long now, ConntrackSettings s, uint status)
    {
        if ((status & (uint)CtStatus.Assured) == 0 || (status & (uint)CtStatus.FixedTimeout) != 0)
            return;
        if (index != IdxRst && index != IdxFin)
            return;
        ref TcpConn c = ref e.Tcp;
        if (c.LastDir != dir && (c.LastIndex == IdxFin || c.LastIndex == IdxRst))
        {
            long remaining = e.Deadline - now;
            if (remaining < 120_000)
                return;
            long unack = s.TcpTimeouts[(int)TcpState.Unack] * 1000L;
            if (remaining > unack)
                Volatile.Write(ref e.Deadline, now + unack); // whole store for lock-free readers, as in Packet
        }
        else
        {
            c.LastIndex = (byte)index;
            c.LastDir = (byte)dir;
        }
    }
}
