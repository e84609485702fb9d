using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Ctfw.Packets;
using static Ctfw.Packets.SctpChunkTypes;

namespace Ctfw.Conntrack;

/// <summary>
/// SCTP as the kernel tracks it (nf_conntrack_proto_sctp.c, 6.18): a walk over the chunks with
/// the basic checks, the out-of-the-blue rules for a first packet, the verification-tag checks of
/// RFC 9260 §8.5 per direction, one state-table step per chunk, ASSURED on reaching ESTABLISHED,
/// and the timeout of the state the last chunk left. Runs under the entry lock (or on an entry not
/// yet published); reads the packet bytes in place, allocates nothing, never throws.
/// </summary>
/// <remarks>
/// Chunk header (RFC 9260 §3.2), after the 12-byte common header; chunks are padded to 4 bytes:
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Chunk Type  | Chunk  Flags  |        Chunk Length           |
/// |                          Chunk Value …                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// INIT and INIT ACK start their value with the Initiate Tag (4 bytes) of a 16-byte fixed part.
/// </remarks>
internal static class SctpTracker
{
    public const int CommonHeaderLength = 12;
    private const int InitFixedLength = 16;

    /// <summary>The T bit of ABORT and SHUTDOWN COMPLETE: the sender reflected the peer's tag.</summary>
    private const byte FlagT = 0x01;

    /// <summary>SCTP_FLAG_HEARTBEAT_VTAG_FAILED in <see cref="SctpConn.Flags"/>.</summary>
    private const byte HeartbeatVtagFailed = 1;

    private const byte NO = (byte)SctpState.None, CL = (byte)SctpState.Closed, CW = (byte)SctpState.CookieWait,
        CE = (byte)SctpState.CookieEchoed, ES = (byte)SctpState.Established, SS = (byte)SctpState.ShutdownSent,
        SR = (byte)SctpState.ShutdownRecd, SA = (byte)SctpState.ShutdownAckSent, HS = (byte)SctpState.HeartbeatSent,
        IV = (byte)SctpState.Max;

    /// <summary>
    /// `sctp_conntracks[dir][chunk][state]`: 2 directions × 11 chunk rows × 9 states. Rows in the
    /// order of <see cref="Row"/>; columns NONE, CLOSED, COOKIE_WAIT, COOKIE_ECHOED, ESTABLISHED,
    /// SHUTDOWN_SENT, SHUTDOWN_RECD, SHUTDOWN_ACK_SENT, HEARTBEAT_SENT.
    /// </summary>
    private static ReadOnlySpan<byte> Table =>
    [
        // ORIGINAL
        CL, CL, CW, CE, ES, CL, CL, SA, CW, // INIT
        CL, CL, CW, CE, ES, SS, SR, SA, CL, // INIT ACK
        CL, CL, CL, CL, CL, CL, CL, CL, CL, // ABORT
        CL, CL, CW, CE, SS, SS, SR, SA, CL, // SHUTDOWN
        SA, CL, CW, CE, ES, SA, SA, SA, SA, // SHUTDOWN ACK
        CL, CL, CW, CE, ES, SS, SR, SA, CL, // ERROR
        CL, CL, CE, CE, ES, SS, SR, SA, CL, // COOKIE ECHO
        CL, CL, CW, ES, ES, SS, SR, SA, CL, // COOKIE ACK
        CL, CL, CW, CE, ES, SS, SR, CL, CL, // SHUTDOWN COMPLETE
        HS, CL, CW, CE, ES, SS, SR, SA, HS, // HEARTBEAT
        CL, CL, CW, CE, ES, SS, SR, SA, HS, // HEARTBEAT ACK
        // REPLY
        IV, CL, CW, CE, ES, SS, SR, SA, IV, // INIT
        IV, CW, CW, CE, ES, SS, SR, SA, IV, // INIT ACK
        IV, CL, CL, CL, CL, CL, CL, CL, IV, // ABORT
        IV, CL, CW, CE, SR, SS, SR, SA, IV, // SHUTDOWN
        IV, CL, CW, CE, ES, SA, SA, SA, IV, // SHUTDOWN ACK
        IV, CL, CW, CL, ES, SS, SR, SA, IV, // ERROR
        IV, CL, CE, CE, ES, SS, SR, SA, IV, // COOKIE ECHO
        IV, CL, CW, ES, ES, SS, SR, SA, IV, // COOKIE ACK
        IV, CL, CW, CE, ES, SS, SR, CL, IV, // SHUTDOWN COMPLETE
        IV, CL, CW, CE, ES, SS, SR, SA, HS, // HEARTBEAT
        IV, CL, CW, CE, ES, SS, SR, SA, ES, // HEARTBEAT ACK
    ];

    /// <summary>The table row of a chunk type, or -1 for chunks that do not change the state (DATA, SACK, …).</summary>
    private static int Row(byte type) => type switch
    {
        Init => 0,
        InitAck => 1,
        Abort => 2,
        Shutdown => 3,
        ShutdownAck => 4,
        Error => 5,
        CookieEcho => 6,
        CookieAck => 7,
        ShutdownComplete => 8,
        Heartbeat => 9,
        HeartbeatAck => 10,
        _ => -1,
    };

    /// <summary>sctp_new_state: the state after one chunk of direction <paramref name="dir"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SctpState Transition(int dir, byte type, SctpState current)
    {
        int row = Row(type);
        if (row < 0)
            return current;
        return (SctpState)Table[(((dir * 11) + row) * 9) + (int)current];
    }

    /// <summary>
    /// The SCTP header and chunks of a packet: bounded by the IP length as the kernel's walk is by
    /// skb->len, and by the bytes captured.
    /// </summary>
    public static ReadOnlySpan<byte> Transport(ReadOnlySpan<byte> packet, in ParsedPacket p)
    {
        int start = p.L3HeaderLength;
        if ((uint)start > (uint)packet.Length)
            return default;
        return packet.Slice(start, Math.Min(packet.Length - start, Math.Max(0, p.L4Length)));
    }

    /// <summary>
    /// do_basic_checks: walks the chunks, fills <paramref name="map"/> with the types seen (bit n for
    /// type n &lt; 32; no type above that matters here). False when there is no chunk, a chunk has
    /// length 0, INIT / INIT ACK / SHUTDOWN COMPLETE is not the only chunk, or COOKIE ECHO / ACK is
    /// not the first.
    /// </summary>
    private static bool BasicChecks(ReadOnlySpan<byte> sctp, out uint map)
    {
        map = 0;
        int count = 0;
        bool alone = false;
        for (int offset = CommonHeaderLength; offset < sctp.Length && sctp.Length - offset >= 4; count++)
        {
            byte type = sctp[offset];
            int length = BinaryPrimitives.ReadUInt16BigEndian(sctp[(offset + 2)..]);
            if (type is Init or InitAck or ShutdownComplete)
                alone = true;
            if (((type is CookieAck or CookieEcho || alone) && count != 0) || length == 0)
                return false;
            if (type < 32)
                map |= 1u << type;
            offset += (length + 3) & ~3;
        }
        return count != 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Has(uint map, byte type) => (map & (1u << type)) != 0;

    /// <summary>The Initiate Tag of the INIT / INIT ACK chunk at <paramref name="offset"/>; false when its fixed part is cut off.</summary>
    private static bool TryInitTag(ReadOnlySpan<byte> sctp, int offset, out uint tag)
    {
        tag = 0;
        if (sctp.Length - offset - 4 < InitFixedLength)
            return false;
        tag = BinaryPrimitives.ReadUInt32BigEndian(sctp[(offset + 4)..]);
        return true;
    }

    /// <summary>
    /// nf_conntrack_sctp_packet for one packet of direction <paramref name="dir"/>.
    /// <paramref name="isNew"/>: the entry was just allocated for this packet (not confirmed), so
    /// the out-of-the-blue rules and sctp_new run first. On <see cref="L4Result.Invalid"/> the entry
    /// keeps what earlier chunks of the packet changed, as in the kernel. <see cref="L4Result.Ignore"/>
    /// is an INIT retransmitted in CLOSED: accepted, timeout not renewed.
    /// </summary>
    public static L4Result Packet(ref ConnEntry e, ReadOnlySpan<byte> sctp, int dir, bool isNew, long now,
        ConntrackSettings s, out InvalidReason reason)
    {
        reason = InvalidReason.None;
        if (sctp.Length < CommonHeaderLength)
        {
            reason = InvalidReason.SctpShortPacket;
            return L4Result.Invalid;
        }
        uint vtag = BinaryPrimitives.ReadUInt32BigEndian(sctp[4..]);
        if (!BasicChecks(sctp, out uint map))
        {
            reason = InvalidReason.SctpBadChunks;
            return L4Result.Invalid;
        }
        ref SctpConn c = ref e.Sctp;
        if (isNew)
        {
            if (Has(map, Abort) || Has(map, ShutdownComplete) || Has(map, CookieAck))
            {
                reason = InvalidReason.SctpOotbNew;
                return L4Result.Invalid;
            }
            if (!New(ref c, sctp, vtag))
            {
                reason = InvalidReason.SctpInvalidNew;
                return L4Result.Invalid;
            }
        }

        // §8.5: packets without one of the chunks that have their own rules carry this direction's tag.
        const uint ownRules = (1u << Init) | (1u << ShutdownComplete) | (1u << CookieEcho) | (1u << Abort)
            | (1u << ShutdownAck) | (1u << Heartbeat) | (1u << HeartbeatAck);
        if ((map & ownRules) == 0 && vtag != Vtag(ref c, dir))
        {
            reason = InvalidReason.SctpVtagMismatch;
            return L4Result.Invalid;
        }

        bool ignore = false;
        SctpState newState = SctpState.None;
        int count = 0;
        for (int offset = CommonHeaderLength; offset < sctp.Length && sctp.Length - offset >= 4; count++)
        {
            byte type = sctp[offset];
            byte flags = sctp[offset + 1];
            int length = BinaryPrimitives.ReadUInt16BigEndian(sctp[(offset + 2)..]);
            int here = offset;
            offset += (length + 3) & ~3;

            switch (type)
            {
                case Init:
                    if (vtag != 0) // §8.5.1 (A)
                    {
                        reason = InvalidReason.SctpInitVtagNotZero;
                        return L4Result.Invalid;
                    }
                    break;
                case Abort:
                case ShutdownComplete:
                    // §8.5.1 (B), (C): own tag, or with T set the peer's.
                    if (vtag != Vtag(ref c, (flags & FlagT) == 0 ? dir : 1 - dir))
                    {
                        reason = InvalidReason.SctpVtagMismatch;
                        return L4Result.Invalid;
                    }
                    break;
                case CookieEcho:
                    if (vtag != Vtag(ref c, dir)) // §8.5.1 (D)
                    {
                        reason = InvalidReason.SctpVtagMismatch;
                        return L4Result.Invalid;
                    }
                    break;
                case CookieAck:
                    c.Init = 0;
                    break;
                case Heartbeat:
                    if (Vtag(ref c, dir) == 0)
                    {
                        SetVtag(ref c, dir, vtag);
                    }
                    else if (vtag != Vtag(ref c, dir))
                    {
                        // Maybe a new path of a restarted association: let it through once, unrefreshed.
                        if (Has(map, Data) || ignore)
                        {
                            reason = InvalidReason.SctpHeartbeatVtag;
                            return L4Result.Invalid;
                        }
                        c.Flags |= HeartbeatVtagFailed;
                        c.LastDir = (byte)dir;
                        ignore = true;
                        continue;
                    }
                    else
                    {
                        c.Flags &= unchecked((byte)~HeartbeatVtagFailed);
                    }
                    break;
                case HeartbeatAck:
                    if (Vtag(ref c, dir) == 0)
                    {
                        SetVtag(ref c, dir, vtag);
                    }
                    else if (vtag != Vtag(ref c, dir))
                    {
                        // Only as the answer to such a HEARTBEAT from the other side: adopt the new tags.
                        if (Has(map, Data) || ignore || (c.Flags & HeartbeatVtagFailed) == 0 || c.LastDir == dir)
                        {
                            reason = InvalidReason.SctpHeartbeatVtag;
                            return L4Result.Invalid;
                        }
                        c.Flags &= unchecked((byte)~HeartbeatVtagFailed);
                        SetVtag(ref c, dir, vtag);
                        SetVtag(ref c, 1 - dir, 0);
                    }
                    else
                    {
                        c.Flags &= unchecked((byte)~HeartbeatVtagFailed);
                    }
                    break;
            }

            SctpState oldState = c.State;
            newState = Transition(dir, type, oldState);
            if (newState == SctpState.Max)
            {
                reason = InvalidReason.SctpInvalidTransition;
                return L4Result.Invalid;
            }

            if (type == Init)
            {
                if (!TryInitTag(sctp, here, out uint tag))
                {
                    reason = InvalidReason.SctpInvalidNew;
                    return L4Result.Invalid;
                }
                byte mine = (byte)(1 << dir), peers = (byte)(1 << (1 - dir));
                if ((c.Init & mine) != 0 && (c.Init & peers) != 0)
                    c.Init &= (byte)~peers;
                c.Init |= mine;
                SetVtag(ref c, 1 - dir, tag);
                // An INIT retransmitted in CLOSED does not renew the timeout, so port reuse cannot keep it alive.
                if (newState == SctpState.Closed && oldState == SctpState.Closed && !isNew)
                    ignore = true;
            }
            else if (type == InitAck)
            {
                if (!TryInitTag(sctp, here, out uint tag))
                {
                    reason = InvalidReason.SctpInitAckTag;
                    return L4Result.Invalid;
                }
                uint expected = Vtag(ref c, 1 - dir);
                bool peerInit = (c.Init & (1 << (1 - dir))) != 0;
                bool ownInit = (c.Init & (1 << dir)) != 0;
                if ((!peerInit && expected != 0 && expected != tag) || (ownInit && peerInit && expected != tag))
                {
                    reason = InvalidReason.SctpInitAckTag;
                    return L4Result.Invalid;
                }
                SetVtag(ref c, 1 - dir, tag);
            }

            c.State = newState;
            if (oldState != newState && newState == SctpState.Established
                && (Volatile.Read(ref e.Status) & (uint)CtStatus.Assured) == 0)
                Interlocked.Or(ref e.Status, (uint)CtStatus.Assured); // atomic: shares the word with Dying and the lock
        }

        if (ignore)
            return L4Result.Ignore;
        // One whole store for the lock-free readers of Deadline (Lookup, wheel, listings).
        Volatile.Write(ref e.Deadline, now + (s.SctpTimeout(newState) * 1000L));
        return L4Result.Accept;
    }

    /// <summary>
    /// sctp_new: every chunk must be one that may start an entry in the ORIGINAL direction; the tag
    /// the REPLY direction will carry comes from the INIT's Initiate Tag (whose own vtag must be 0),
    /// a HEARTBEAT's vtag is the ORIGINAL direction's (a secondary path), any other chunk's is the REPLY's.
    /// </summary>
    private static bool New(ref SctpConn c, ReadOnlySpan<byte> sctp, uint vtag)
    {
        c = default;
        for (int offset = CommonHeaderLength; offset < sctp.Length && sctp.Length - offset >= 4;)
        {
            byte type = sctp[offset];
            int length = BinaryPrimitives.ReadUInt16BigEndian(sctp[(offset + 2)..]);
            SctpState state = Transition(0, type, SctpState.None);
            if (state is SctpState.None or SctpState.Max)
                return false;
            if (type == Init)
            {
                if (vtag != 0 || !TryInitTag(sctp, offset, out uint tag))
                    return false;
                c.Vtag1 = tag;
            }
            else if (type == Heartbeat)
            {
                c.Vtag0 = vtag;
            }
            else
            {
                // Out of the blue (a SHUTDOWN ACK, say): the answer, SHUTDOWN COMPLETE or ABORT, reflects this tag.
                c.Vtag1 = vtag;
            }
            offset += (length + 3) & ~3;
        }
        c.State = SctpState.None;
        return true;
    }

    /// <summary>
    /// sctp_can_early_drop: an ASSURED association that is shutting down may still be killed by the
    /// GC's early-drop pass when the table is full (<see cref="ConnTable.GcEarlyDrop"/>).
    /// </summary>
    public static bool CanEarlyDrop(SctpState s) =>
        s is SctpState.ShutdownSent or SctpState.ShutdownRecd or SctpState.ShutdownAckSent;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Vtag(ref SctpConn c, int dir) => dir == 0 ? c.Vtag0 : c.Vtag1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetVtag(ref SctpConn c, int dir, uint tag)
    {
        if (dir == 0)
            c.Vtag0 = tag;
        else
            c.Vtag1 = tag;
    }
}
