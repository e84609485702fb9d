using System.Runtime.CompilerServices;
using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>
/// Classifies packets for one thread (nf_conntrack_in, kernel-conntrack.md §2). Create one per
/// worker thread with <see cref="ConntrackEngine.CreateWorker"/>; call <see cref="Enter"/> before a
/// batch and <see cref="Exit"/> after it (the epoch that keeps entries from being reused under us).
/// Nothing here allocates, throws on bad input, or blocks.
/// </summary>
public sealed partial class ConntrackWorker : IDisposable
{
    private readonly ConntrackEngine _engine;
    private readonly ConnTable _table;
    private readonly ConntrackSettings _s;
    private readonly int _epochSlot;
    private readonly RescueMode _rescue;
    private readonly long _rescueWindowMs;
    private readonly long _looseTimeoutMs;
    private readonly TombstoneStore? _tombstones;
    private readonly RescueTally _tally;
    private readonly ConntrackEvents _events;
    private readonly EventRing _ring;
    private readonly WorkerStats _stats;
    private readonly EngineOffload? _offload;
    private readonly OffloadRing? _offloadRing;
    private readonly long _offloadDelayMs;

    internal ConntrackWorker(ConntrackEngine engine, int epochSlot, WorkerStats stats, EventRing ring)
    {
        _events = engine.Events;
        _ring = ring;
        _stats = stats;
        _engine = engine;
        _table = engine.Table;
        _s = engine.Settings;
        _epochSlot = epochSlot;
        _rescue = engine.Rescue.Mode;
        _rescueWindowMs = engine.Rescue.WindowSeconds * 1000L;
        _looseTimeoutMs = engine.Rescue.LooseTimeoutSeconds * 1000L;
        _tombstones = engine.Table.Tombstones;
        _tally = engine.RescueTally;
        _offload = engine.Offload;
        _offloadRing = _offload?.NewRing();
        _offloadDelayMs = _offload?.Policy.DelayMs ?? 0;
    }

    public void Enter() => _table.Epochs.Enter(_epochSlot);

    /// <summary>
    /// <see cref="ConntrackEngine.EnableHelpers"/> of this worker's engine, for a caller that holds
    /// only the worker (the firewall pipeline, given a ruleset that assigns helpers). Not on the packet path.
    /// </summary>
    public void EnableHelpers() => _engine.EnableHelpers();

    /// <summary>
    /// Leaves the batch. Entries this batch killed (early drops, RSTs) are unlinked and, with no other
    /// worker inside, reusable at once: this worker holds no index any more. Never waits: when the
    /// housekeeper is removing at the moment, it takes them instead.
    /// </summary>
    public void Exit()
    {
        _table.Epochs.Exit(_epochSlot);
        _table.ReclaimAfterBatch();
    }

    private int _disposed;

    public void Dispose()
    {
        // Idempotent: a second Unregister could free a slot that another worker holds by then.
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _engine.ReleaseWorker(_epochSlot);
    }

    /// <summary>Classifies one IP packet (from the network header on) at time <paramref name="now"/> (ms).</summary>
    public void Process(ReadOnlySpan<byte> packet, long now, in PacketContext ctx, out Classification r)
    {
        InvalidReason parseResult = PacketParser.Parse(packet, out ParsedPacket p);
        ProcessParsed(packet, p, parseResult, now, ctx, out r);
    }

    /// <summary>
    /// As <see cref="Process"/> for a packet the caller already parsed (the daemon parses once and
    /// hands the same <see cref="ParsedPacket"/> to the ruleset). <paramref name="parseResult"/> is
    /// what <see cref="PacketParser.Parse"/> returned for <paramref name="packet"/>.
    /// </summary>
    public void ProcessParsed(ReadOnlySpan<byte> packet, in ParsedPacket p, InvalidReason parseResult, long now, in PacketContext ctx, out Classification r)
    {
        if (Prepare(packet, p, parseResult, now, ctx, out r, out ConnTuple t))
            Track(packet, t, _table.Hash(t), p, now, ctx, ref r);
    }

    /// <summary>Most packets one <see cref="ProcessBatch"/> pass handles; larger batches go in chunks.</summary>
    public const int MaxBatch = 64;

    private readonly ParsedPacket[] _batchParsed = new ParsedPacket[MaxBatch];
    private readonly ConnTuple[] _batchTuples = new ConnTuple[MaxBatch];
    private readonly ulong[] _batchHashes = new ulong[MaxBatch];
    private readonly bool[] _batchTrack = new bool[MaxBatch];

    /// <summary>
    /// Classifies a batch of packets stored in <paramref name="buffer"/> (as a receive batch is),
    /// with the same results as calling <see cref="Process"/> on each in order. It works in passes
    /// so that the memory accesses of different packets overlap: parse and hash all, prefetch their
    /// buckets, prefetch the entries the buckets point to, then track each. On a table larger than
    /// the caches the lookups are DRAM misses, and this turns a chain of dependent misses per packet
    /// into misses in flight side by side.
    /// </summary>
    public void ProcessBatch(ReadOnlySpan<byte> buffer, ReadOnlySpan<PacketSlice> packets, long now, in PacketContext ctx, Span<Classification> results)
    {
        if (results.Length < packets.Length)
            throw new ArgumentException("results must have room for every packet", nameof(results));
        for (int start = 0; start < packets.Length; start += MaxBatch)
        {
            int n = Math.Min(MaxBatch, packets.Length - start);
            for (int i = 0; i < n; i++)
            {
                ReadOnlySpan<byte> pkt = Slice(buffer, packets[start + i]);
                InvalidReason parseResult = PacketParser.Parse(pkt, out _batchParsed[i]);
                bool track = Prepare(pkt, _batchParsed[i], parseResult, now, ctx, out results[start + i], out _batchTuples[i]);
                _batchTrack[i] = track;
                if (track)
                {
                    ulong h = _table.Hash(_batchTuples[i]);
                    _batchHashes[i] = h;
                    _table.PrefetchBucket(h);
                }
            }
            for (int i = 0; i < n; i++)
            {
                if (_batchTrack[i])
                    _table.PrefetchChainHead(_batchHashes[i]);
            }
            for (int i = 0; i < n; i++)
            {
                if (_batchTrack[i])
                    Track(Slice(buffer, packets[start + i]), _batchTuples[i], _batchHashes[i], _batchParsed[i], now, ctx, ref results[start + i]);
            }
        }
    }

    private static ReadOnlySpan<byte> Slice(ReadOnlySpan<byte> buffer, PacketSlice ps) =>
        (uint)ps.Offset <= (uint)buffer.Length && (uint)ps.Length <= (uint)(buffer.Length - ps.Offset)
            ? buffer.Slice(ps.Offset, ps.Length)
            : default;

    /// <summary>
    /// Everything before the table lookup on a parsed packet: parse result, checksum, ICMP errors
    /// (RELATED/UNTRACKED), TCP flag check. Returns true when the packet goes on to normal tracking
    /// with tuple <paramref name="t"/>.
    /// </summary>
    private bool Prepare(ReadOnlySpan<byte> packet, in ParsedPacket p, InvalidReason parseResult, long now, in PacketContext ctx, out Classification r, out ConnTuple t)
    {
        r = default;
        r.PendingEntry = -1;
        r.Timestamp = now;
        r.Direction = CtDirection.None;
        t = default;
        r.Protocol = p.Protocol;
        if (parseResult != InvalidReason.None)
        {
            Invalid(ref r, parseResult);
            return Decided(ref r);
        }
        if (ctx.VerifyChecksums && _s.Checksum && !ChecksumOk(packet, p, ref r))
        {
            ReportTcpState(p, now, ctx, ref r);
            return Decided(ref r);
        }

        byte proto = p.Protocol;
        if (proto == IpProto.Icmp || proto == IpProto.Icmpv6)
        {
            if ((proto == IpProto.Icmp) == p.IsV6)
            {
                Invalid(ref r, InvalidReason.IcmpWrongFamily);
                return Decided(ref r);
            }
            if (HandleIcmpSpecial(p, now, ctx, ref r))
                return Decided(ref r);
        }
        else if (proto == IpProto.Tcp && !TcpTracker.ValidFlags(p.TcpFlags))
        {
            Invalid(ref r, InvalidReason.TcpInvalidFlags);
            ReportTcpState(p, now, ctx, ref r);
            return Decided(ref r);
        }
        else if (proto == IpProto.UdpLite)
        {
            InvalidReason bad = UdpLiteError(packet, p, ctx);
            if (bad != InvalidReason.None)
            {
                Invalid(ref r, bad);
                return Decided(ref r);
            }
        }
        t = ConnTuple.From(p, ctx.Zone);
        return true;
    }

    /// <summary>The end of <see cref="Prepare"/> for a packet it decided: an INVALID one there is the kernel's `error`.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Decided(ref Classification r)
    {
        if (r.State == CtState.Invalid)
            _stats.Error++;
        return false;
    }

    /// <summary>Lookup, then the existing-entry or new-entry path (nf_conntrack_in steps 5–9).</summary>
    private void Track(ReadOnlySpan<byte> packet, in ConnTuple t, ulong hash, in ParsedPacket p, long now, in PacketContext ctx, ref Classification r)
    {
        for (int attempt = 0; attempt < 4; attempt++)
        {
            int idx = _table.Lookup(t, hash, now, out int dir);
            if (idx < 0)
            {
                if (New(packet, t, hash, p, now, ctx, ref r))
                    return;
                continue; // a rescue lost a race with another worker: look again
            }
            if (attempt > 0)
                _stats.SearchRestart++;
            _table.Lock(idx);
            ref ConnEntry e = ref _table.Entries[idx];
            // Re-check under the lock what Lookup read lock-free. Dying is set without the lock, so
            // it needs a fresh read; Deadline writers hold the lock, so a plain read is current.
            if ((Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) != 0 || e.Deadline - now <= 0)
            {
                _table.Unlock(idx);
                continue; // died or expired between lookup and lock: look again
            }
            _stats.Found++;
            if (Existing(packet, idx, ref e, dir, p, now, ref r))
                return;
            // Repeat: a SYN reopened a closed connection; the old entry is gone, classify afresh.
            if (!_table.Kill(idx, _ring, now))
            {
                r.State = CtState.Dropped;
                r.Reason = InvalidReason.ReopenRace;
                return;
            }
        }
        r.State = CtState.Dropped;
        r.Reason = InvalidReason.ReopenRace;
    }

    /// <summary>
    /// For a TCP or SCTP packet rejected before lookup (checksum, flags): report the state of the flow it
    /// belongs to, unchanged, as `conntrack -L` would show it. Reads one byte without the lock.
    /// </summary>
    private void ReportTcpState(in ParsedPacket p, long now, in PacketContext ctx, ref Classification r)
    {
        if (p.Protocol is not (IpProto.Tcp or IpProto.Sctp))
            return;
        ConnTuple t = ConnTuple.From(p, ctx.Zone);
        int idx = _table.Lookup(t, _table.Hash(t), now, out _);
        if (idx < 0)
            return;
        if (p.Protocol == IpProto.Tcp)
            r.TcpState = r.PreviousTcpState = _table.Entries[idx].Tcp.State;
        else
            r.SctpState = r.PreviousSctpState = _table.Entries[idx].Sctp.State;
    }

    /// <summary>
    /// Inserts the new entry of a packet that was accepted (call inside <see cref="Enter"/>/<see cref="Exit"/>).
    /// Returns false when the packet must be dropped after all: another packet of the same new flow
    /// was confirmed first and this is TCP or ICMP (the kernel's insert_failed). For UDP, GRE and
    /// generic protocols the packet simply belongs to the entry already there (clash resolution).
    /// </summary>
    public bool Confirm(ref Classification r)
    {
        int idx = r.PendingEntry;
        if (idx < 0)
            return true;
        r.PendingEntry = -1;
        if (_table.TryInsert(idx, r.Timestamp))
        {
            r.Status |= CtStatus.Confirmed;
            Inserted(idx, r.Timestamp);
            return true;
        }
        _table.Free(idx);
        return !InsertLost(r.Protocol);
    }

    private static bool ClashDrops(byte protocol) => protocol is IpProto.Tcp or IpProto.Icmp or IpProto.Icmpv6;

    /// <summary>A lost insert race: counted as the kernel's insert_failed (packet dropped) or clash_resolve. True when the packet drops.</summary>
    private bool InsertLost(byte protocol)
    {
        bool drops = ClashDrops(protocol);
        if (drops)
            _stats.InsertFailed++;
        else
            _stats.ClashResolve++;
        return drops;
    }

    /// <summary>An entry this worker confirmed: counted, and its NEW event while someone listens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Inserted(int idx, long now)
    {
        _stats.Insert++;
        if (_events.Active)
            _events.Emit(_ring, _table, idx, ConntrackEventKind.New, now);
    }

    /// <summary>Discards a new entry whose packet was dropped: the kernel never inserts it.</summary>
    public void Abort(ref Classification r)
    {
        if (r.PendingEntry >= 0)
        {
            _table.Free(r.PendingEntry);
            r.PendingEntry = -1;
        }
    }

    private void Invalid(ref Classification r, InvalidReason reason)
    {
        _stats.Invalid++;
        r.State = CtState.Invalid;
        r.Direction = CtDirection.None;
        r.Reason = reason;
    }

    private bool ChecksumOk(ReadOnlySpan<byte> packet, in ParsedPacket p, ref Classification r)
    {
        InvalidReason bad = p.Protocol switch
        {
            IpProto.Tcp => InvalidReason.TcpBadChecksum,
            IpProto.Udp => InvalidReason.UdpBadChecksum,
            IpProto.Icmp or IpProto.Icmpv6 => InvalidReason.IcmpBadChecksum,
            IpProto.Sctp => InvalidReason.SctpBadChecksum,
            _ => InvalidReason.None,
        };
        if (bad == InvalidReason.None || Checksums.VerifyTransport(packet, p) != ChecksumResult.Invalid)
            return true;
        Invalid(ref r, bad);
        return false;
    }

    /// <summary>
    /// udplite_error: an 8-byte header, a checksum coverage of 0 (all) or 8..length, a non-zero
    /// checksum, and (where checksums are verified) a correct one over the covered bytes. The kernel
    /// runs it in the tracker, but it looks at nothing of the entry, so it can run before the lookup.
    /// </summary>
    private InvalidReason UdpLiteError(ReadOnlySpan<byte> packet, in ParsedPacket p, in PacketContext ctx)
    {
        int length = p.L4Length;
        int start = p.L3HeaderLength;
        if (length < 8 || packet.Length - start < 8)
            return InvalidReason.UdpLiteShortPacket;
        ReadOnlySpan<byte> udp = packet.Slice(start, 8);
        int coverage = (udp[4] << 8) | udp[5];
        if (coverage == 0)
            coverage = length;
        else if (coverage < 8 || coverage > length)
            return InvalidReason.UdpLiteBadCoverage;
        if (udp[6] == 0 && udp[7] == 0)
            return InvalidReason.UdpLiteNoChecksum;
        if (ctx.VerifyChecksums && _s.Checksum && Checksums.VerifyUdpLite(packet, p, coverage) == ChecksumResult.Invalid)
            return InvalidReason.UdpLiteBadChecksum;
        return InvalidReason.None;
    }

    /// <summary>
    /// ICMP/ICMPv6 error handling (§8.1, §8.2), run before normal tracking. Returns true when it
    /// decided the packet (RELATED, INVALID or UNTRACKED); false for echo-like messages.
    /// </summary>
    private bool HandleIcmpSpecial(in ParsedPacket p, long now, in PacketContext ctx, ref Classification r)
    {
        byte type = p.IcmpType;
        if (!p.IsV6)
        {
            if (type > 18)
            {
                Invalid(ref r, InvalidReason.IcmpUnknownType);
                return true;
            }
            if (type is not (3 or 4 or 5 or 11 or 12))
                return false;
        }
        else
        {
            if (type is 130 or 131 or 132 or 133 or 134 or 135 or 136 or 143 or 151 or 152)
            {
                r.State = CtState.Untracked;
                return true;
            }
            if (type == 137)
            {
                // Redirect: only a well-formed one (code 0, hop limit 255, link-local source, with a
                // Redirected Header) is checked like an error; anything else has no inverse.
                bool linkLocal = (p.Src.Hi >> 54) == (0xFE80UL >> 6);
                if (p.IcmpCode != 0)
                    return false;
                if (p.Ttl != 255 || !linkLocal)
                {
                    Invalid(ref r, InvalidReason.Icmpv6RedirectInvalid);
                    return true;
                }
                if (!p.Inner.Present)
                    return false;
            }
            else if (type >= 128)
            {
                return false;
            }
        }

        if (!p.Inner.Present)
        {
            Invalid(ref r, InvalidReason.IcmpErrorBadInner);
            return true;
        }
        ConnTuple inner = ConnTuple.FromInner(p, ctx.Zone);
        // The embedded packet travelled the other way: look up its inverse.
        if (!inner.TryInvert(out ConnTuple target))
        {
            Invalid(ref r, InvalidReason.IcmpErrorNoEntry);
            return true;
        }
        int idx = _table.Lookup(target, _table.Hash(target), now, out int dir);
        if (idx < 0)
        {
            Invalid(ref r, InvalidReason.IcmpErrorNoEntry);
            return true;
        }
        // The matched tuple's destination (the embedded source) must be where the error goes.
        if (p.Dst != target.Dst)
        {
            Invalid(ref r, InvalidReason.IcmpErrorOuterMismatch);
            return true;
        }
        ref ConnEntry e = ref _table.Entries[idx];
        r.State = CtState.Related;
        r.Direction = (CtDirection)dir;
        // Benign race: read without the entry lock for the report only (the kernel reads ct->status
        // unlocked too); may be a packet behind another worker's update. One whole, fresh read.
        r.Status = (CtStatus)(Volatile.Read(ref e.Status) & 0xFFFF);
        return true;
    }

    /// <summary>A packet of an existing, locked entry. Unlocks. Returns false for "repeat as new".</summary>
    private bool Existing(ReadOnlySpan<byte> packet, int idx, ref ConnEntry e, int dir, in ParsedPacket p, long now, ref Classification r)
    {
        // Locked, but Status also takes lock-free ORs (Kill's Dying): each read of it here is a fresh
        // read of the whole word, and each change is an atomic OR/AND, never a store of a saved word.
        uint status = Volatile.Read(ref e.Status);
        L4Result res;
        InvalidReason reason = InvalidReason.None;
        switch (p.Protocol)
        {
            case IpProto.Tcp:
                r.PreviousTcpState = e.Tcp.State;
                res = TcpTracker.Packet(ref e, p, dir, now, _s, out reason);
                if ((status & PrivateStatus.Bypassed) != 0 && Relearns(res, reason, p.TcpFlags))
                {
                    // Offloaded once: the kernel forwarded data ctfw never saw, so a segment ahead of
                    // ctfw's window is what the flow looks like now. Re-learn the windows from it, as
                    // after a restart (ForgetWindows), as the kernel's flowtable does on teardown.
                    ConntrackEngine.ForgetWindows(ref e.Tcp);
                    _offload?.CountRelearned();
                    res = TcpTracker.Packet(ref e, p, dir, now, _s, out reason);
                }
                if (res is L4Result.Accept or L4Result.Ignore)
                {
                    TrackAges(idx, ref e, dir, p, r.PreviousTcpState, now);
                    if ((status & PrivateStatus.LooseRescue) != 0)
                        CapDeadline(ref e, now + _looseTimeoutMs);
                }
                break;
            case IpProto.Udp:
                UdpPacket(ref e, status, now);
                res = L4Result.Accept;
                break;
            case IpProto.UdpLite:
                UdpLitePacket(ref e, status, now);
                res = L4Result.Accept;
                break;
            case IpProto.Gre:
                GrePacket(ref e, status, now);
                res = L4Result.Accept;
                break;
            case IpProto.Sctp:
                r.PreviousSctpState = e.Sctp.State;
                res = SctpTracker.Packet(ref e, SctpTracker.Transport(packet, p), dir, isNew: false, now, _s, out reason);
                r.SctpState = e.Sctp.State;
                break;
            default:
                Refresh(ref e, now, PlainTimeout(p.Protocol));
                res = L4Result.Accept;
                break;
        }

        if (res == L4Result.Repeat)
        {
            _table.Unlock(idx);
            return false;
        }
        if (res != L4Result.Invalid && res != L4Result.Ignore)
            Account(idx, dir, p.IpTotalLength);
        if (res == L4Result.Invalid)
        {
            if (p.Protocol == IpProto.Tcp)
                r.TcpState = e.Tcp.State;
            r.Status = (CtStatus)(Volatile.Read(ref e.Status) & 0xFFFF); // fresh read, as above
            _table.Unlock(idx);
            Invalid(ref r, reason);
            return true;
        }

        if (dir == 1)
        {
            r.State = CtState.Established;
            // The bit is never cleared: test first and skip the locked instruction on later replies.
            if ((status & (uint)CtStatus.SeenReply) == 0)
                Interlocked.Or(ref e.Status, (uint)CtStatus.SeenReply); // atomic: shares the word with Dying and the lock
        }
        else
        {
            r.State = (status & (uint)CtStatus.SeenReply) != 0 ? CtState.Established
                : (status & (uint)CtStatus.Expected) != 0 ? CtState.Related
                : CtState.New;
        }
        r.Direction = (CtDirection)dir;
        r.Ignored = res == L4Result.Ignore;
        r.TcpState = p.Protocol == IpProto.Tcp ? e.Tcp.State : TcpState.None;
        uint after = Volatile.Read(ref e.Status); // after the tracker's ORs: fresh read
        r.Status = (CtStatus)(after & 0xFFFF);
        bool helped = false;
        if ((after & PrivateStatus.Helped) != 0 && _table.Helpers is { } helpers) // set before publication, with the slot
        {
            ref HelperSlot slot = ref helpers[idx];
            r.MasterHelper = slot.MasterHelper; // written before the entry was published
            helped = slot.Helper != CtHelper.None;
            if (helped)
                RunHelper(packet, idx, ref e, ref slot, dir, p, now, ref r);
        }
        // A flow with a helper is never offloaded (the kernel's flowtable refuses them): the helper must see its packets.
        if (_offloadRing != null && !helped)
            OffloadCheck(idx, ref e, p, res, after, now, ref r);
        // UPDATE (IPCT_PROTOINFO, IPCT_REPLY, IPCT_ASSURED): one per packet that changed any of them,
        // never for an entry this packet kills (the kernel delivers nothing for a dying entry).
        if (res != L4Result.AcceptAndKill && _events.Active
            && ((((uint)r.Status ^ status) & (uint)(CtStatus.SeenReply | CtStatus.Assured)) != 0 || r.TcpState != r.PreviousTcpState
                || r.SctpState != r.PreviousSctpState))
            _events.Emit(_ring, _table, idx, ConntrackEventKind.Update, now);
        _table.Unlock(idx);

        if (res == L4Result.AcceptAndKill)
        {
            // Only a RST was seen in reply (or no reply at all): not a connection worth keeping. The
            // kernel kills inside the tracker, before it marks the reply seen: its DESTROY says [UNREPLIED].
            _table.Kill(idx, _ring, now, hideStatus: (status & (uint)CtStatus.SeenReply) ^ (uint)CtStatus.SeenReply);
            r.TcpState = TcpState.None;
        }
        return true;
    }

    /// <summary>
    /// Whether a segment of a once-offloaded flow that the window check refused is explained by data
    /// the kernel forwarded unseen: ahead of the window (sequence or acknowledgement over the upper
    /// bound); or a FIN or RST the window check refused or ignored at all — past 2 GiB of unseen data
    /// the sequence space wraps and "ahead" may look "behind", and a FIN or RST that ctfw ignores
    /// would leave a closed connection ESTABLISHED (and offloaded) for the whole timeout.
    /// </summary>
    private static bool Relearns(L4Result res, InvalidReason reason, TcpFlags flags)
    {
        if (res == L4Result.Invalid && reason is InvalidReason.TcpSeqOverUpperBound or InvalidReason.TcpAckOverUpperBound)
            return true;
        return res is L4Result.Invalid or L4Result.Ignore
            && (flags & (TcpFlags.Fin | TcpFlags.Rst)) != 0 && (flags & TcpFlags.Syn) == 0;
    }

    /// <summary>
    /// Offload, under the entry lock: an offloaded flow that left ESTABLISHED (or dies with this
    /// packet) is reported for removal at once; a flow that may be offloaded is marked a candidate,
    /// and <see cref="Nominate"/> puts it forward if the packet is accepted.
    /// </summary>
    private void OffloadCheck(int idx, ref ConnEntry e, in ParsedPacket p, L4Result res, uint status, long now, ref Classification r)
    {
        if ((status & (uint)CtStatus.Offload) != 0)
        {
            bool ended = res == L4Result.AcceptAndKill || (p.Protocol == IpProto.Tcp && e.Tcp.State != TcpState.Established);
            if (ended)
                _offloadRing!.Add(new OffloadRequest(OffloadRequestKind.Remove, idx, e.Orig, 0));
            return;
        }
        if (res != L4Result.Accept || (status & ((uint)CtStatus.Assured | PrivateStatus.OffloadRefused)) != (uint)CtStatus.Assured
            || e.Orig.Zone != 0)
            return;
        if (p.Protocol == IpProto.Tcp)
        {
            if (e.Tcp.State != TcpState.Established || (p.TcpFlags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst)) != 0
                || now - _table.Ages[idx].StateSinceMs < _offloadDelayMs)
                return;
        }
        else if (p.Protocol != IpProto.Udp)
        {
            return;
        }
        r.OffloadCandidate = true;
        r.Entry = idx;
    }

    /// <summary>
    /// The packet of <paramref name="r"/> was accepted by ruleset generation <paramref name="generation"/>:
    /// if its flow is a candidate (<see cref="Classification.OffloadCandidate"/>) and not offloaded yet,
    /// mark it (Offload and Bypassed) and queue it for the offload manager. Inside the batch's epoch;
    /// never waits (a full ring drops the request, and a later packet nominates the flow again).
    /// </summary>
    public void Nominate(ref Classification r, int generation)
    {
        if (!r.OffloadCandidate || _offloadRing == null)
            return;
        r.OffloadCandidate = false;
        int idx = r.Entry;
        ref ConnEntry e = ref _table.Entries[idx];
        // The OR elects one nominator when packets of the flow are on two workers at once.
        uint old = Interlocked.Or(ref e.Status, (uint)CtStatus.Offload | PrivateStatus.Bypassed);
        if ((old & ((uint)CtStatus.Offload | (uint)CtStatus.Dying)) != 0)
        {
            if ((old & (uint)CtStatus.Offload) == 0)
                Interlocked.And(ref e.Status, ~(uint)CtStatus.Offload); // dying: nothing to offload
            return;
        }
        if (!_offloadRing.Add(new OffloadRequest(OffloadRequestKind.Add, idx, e.Orig, generation)))
            Interlocked.And(ref e.Status, ~(uint)CtStatus.Offload); // not queued: a later packet tries again
    }

    /// <summary>The packet found no entry. Returns false when the lookup must be repeated (a rescue lost a race).</summary>
    private bool New(ReadOnlySpan<byte> packet, in ConnTuple t, ulong hash, in ParsedPacket p, long now, in PacketContext ctx, ref Classification r)
    {
        if (p.Protocol == IpProto.Tcp)
        {
            TcpState first = TcpTracker.Transition(0, TcpTracker.Index(p.TcpFlags), TcpState.None);
            if (first == TcpState.Max)
            {
                // FIN or RST (no SYN) without an entry: the only packets rescue looks at.
                if (_rescue != RescueMode.Off && (p.TcpFlags & (TcpFlags.Fin | TcpFlags.Rst)) != 0 && (p.TcpFlags & TcpFlags.Syn) == 0)
                {
                    RescueOutcome outcome = TryRescue(t, hash, p, now, ctx, ref r);
                    if (outcome != RescueOutcome.NotFound)
                        return outcome == RescueOutcome.Done;
                }
                Invalid(ref r, InvalidReason.TcpInvalidNew);
                return true;
            }
            if (first != TcpState.SynSent && !_s.TcpLoose)
            {
                Invalid(ref r, InvalidReason.TcpLooseDisabled);
                return true;
            }
        }
        else if (p.Protocol is IpProto.Icmp or IpProto.Icmpv6
            && (IcmpInverse.Of(p.Protocol, p.IcmpType) < 0 || !IcmpInverse.IsQuery(p.Protocol, p.IcmpType)))
        {
            Invalid(ref r, InvalidReason.IcmpNoInverse);
            return true;
        }

        int idx = _table.Allocate(hash, now, _ring, _stats);
        if (idx < 0)
        {
            r.State = CtState.Dropped;
            r.Reason = InvalidReason.TableFull;
            return true;
        }
        _table.PrefetchSide(idx);
        ref ConnEntry e = ref _table.Entries[idx];
        e.Orig = t;
        e.Status = _table.Helpers is { } helpers ? StartHelper(t, idx, ref helpers[idx], p, ctx, now) : 0; // benign race, as in Existing
        e.Deadline = now;
        e.Tcp = default;
        e.NextOrig = 0;
        e.NextReply = 0;
        e.TimerNext = -1;
        e.TimerPrev = -1;

        switch (p.Protocol)
        {
            case IpProto.Tcp:
                // Validity was checked above, so New cannot fail here; Packet may still say INVALID.
                TcpTracker.New(ref e, p, _s);
                if (TcpTracker.Packet(ref e, p, 0, now, _s, out InvalidReason reason) == L4Result.Invalid)
                {
                    _table.Free(idx);
                    Invalid(ref r, reason);
                    return true;
                }
                r.TcpState = e.Tcp.State;
                TrackAges(idx, ref e, 0, p, TcpState.None, now);
                break;
            case IpProto.Udp:
                UdpPacket(ref e, 0, now);
                _table.Ages[idx].StateSinceMs = now;
                break;
            case IpProto.UdpLite:
                UdpLitePacket(ref e, 0, now);
                _table.Ages[idx].StateSinceMs = now;
                break;
            case IpProto.Gre:
                GrePacket(ref e, 0, now);
                _table.Ages[idx].StateSinceMs = now;
                break;
            case IpProto.Sctp:
                if (SctpTracker.Packet(ref e, SctpTracker.Transport(packet, p), 0, isNew: true, now, _s, out InvalidReason sctpReason) == L4Result.Invalid)
                {
                    _table.Free(idx);
                    Invalid(ref r, sctpReason);
                    return true;
                }
                r.SctpState = e.Sctp.State;
                _table.Ages[idx].StateSinceMs = now;
                break;
            default:
                Refresh(ref e, now, PlainTimeout(p.Protocol));
                _table.Ages[idx].StateSinceMs = now;
                break;
        }

        _table.Ages[idx].CreatedMs = now; // the line the switch above wrote StateSinceMs on
        StartAccounting(idx, 0, p.IpTotalLength);
        r.State = (e.Status & (uint)CtStatus.Expected) != 0 ? CtState.Related : CtState.New;
        r.Direction = CtDirection.Original;
        r.Status = (CtStatus)(e.Status & 0xFFFF);
        if ((e.Status & PrivateStatus.Helped) != 0 && _table.Helpers is { } h)
        {
            r.MasterHelper = h[idx].MasterHelper;
            if (h[idx].Helper == CtHelper.Tftp && !TftpNew(packet, idx, ref e, p, now, ref r))
            {
                _table.Free(idx);
                return true;
            }
        }
        if (ctx.DeferConfirm)
        {
            r.PendingEntry = idx;
        }
        else if (_table.TryInsert(idx, now))
        {
            r.Status |= CtStatus.Confirmed;
            Inserted(idx, now);
        }
        else
        {
            // Lost an insert race with another worker creating the same flow.
            _table.Free(idx);
            if (InsertLost(p.Protocol))
            {
                r.State = CtState.Dropped;
                r.Direction = CtDirection.None;
                r.Reason = InvalidReason.InsertClash;
            }
        }
        return true;
    }

    /// <summary>
    /// Ages of a TCP entry after a packet it accepted (entry locked, or not yet published): when the
    /// state changed, whether each endpoint advertises a zero window and since when, whether it
    /// sent a FIN. The side array is written only when something changes, so a steady flow's
    /// packets touch nothing beyond the entry.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void TrackAges(int idx, ref ConnEntry e, int dir, in ParsedPacket p, TcpState before, long now)
    {
        if (e.Tcp.State != before)
            _table.Ages[idx].StateSinceMs = now;
        TcpFlags f = p.TcpFlags;
        // Under the entry lock (or before publication); the bits below share the word with the
        // lock-free Dying bit, hence a fresh read and atomic OR/AND, never a plain store.
        uint status = Volatile.Read(ref e.Status);
        uint fin = PrivateStatus.FinSeen0 << dir;
        if ((f & TcpFlags.Fin) != 0 && (status & fin) == 0)
            Interlocked.Or(ref e.Status, fin);
        if ((f & (TcpFlags.Syn | TcpFlags.Rst)) != 0)
            return; // their window field says nothing about the receive buffer
        uint zero = PrivateStatus.ZeroWindow0 << dir;
        if (p.Window == 0)
        {
            if ((status & zero) == 0)
            {
                ref FlowAge age = ref _table.Ages[idx];
                // Whole 64-bit store, read by listings without the lock (FlowInfo.From).
                Volatile.Write(ref dir == 0 ? ref age.ZeroWindowSince0 : ref age.ZeroWindowSince1, now);
                // Full fence: a listing that sees the bit sees the time written above. Reordered, it
                // could report a zero window since an old (or zero) time.
                Interlocked.Or(ref e.Status, zero);
            }
        }
        else if ((status & zero) != 0)
        {
            // Benign race with listings: one that read the bit just before still reports the old time.
            Interlocked.And(ref e.Status, ~zero);
        }
    }

    /// <summary>
    /// Adds one packet of <paramref name="bytes"/> to direction <paramref name="dir"/> (entry locked:
    /// plain adds, see <see cref="FlowAcct"/>), when accounting is on. The slot was prefetched with
    /// the entry in batches.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Account(int idx, int dir, int bytes)
    {
        // Benign race: a plain read of a reference set once, off the packet path, and never cleared
        // (ConnTable.EnableAccounting; .NET publishes the zeroed array with its reference). A worker
        // that still reads null as accounting is turned on misses that moment's packets, which were
        // not counted before either. A reused slot cannot be missed this way: reuse follows a grace
        // period whose epoch fences make the array visible to the reusing worker.
        FlowAcct[]? acct = _table.Acct;
        if (acct != null)
            Add(ref acct[idx], dir, bytes);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Add(ref FlowAcct a, int dir, int bytes)
    {
        // Packets1/Bytes1 are two longs after Packets0/Bytes0.
        ref long packets = ref Unsafe.Add(ref a.Packets0, dir << 1);
        packets++;
        Unsafe.Add(ref packets, 1) += bytes;
    }

    /// <summary>A new entry's counters (still private to this thread): the first packet, or none when it was not counted.</summary>
    private void StartAccounting(int idx, int dir, int bytes)
    {
        FlowAcct[]? acct = _table.Acct; // benign race, as in Account
        if (acct == null)
            return;
        ref FlowAcct a = ref acct[idx];
        a = default;
        if (bytes > 0)
            Add(ref a, dir, bytes);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CapDeadline(ref ConnEntry e, long cap)
    {
        if (e.Deadline - cap > 0)
            Volatile.Write(ref e.Deadline, cap); // whole store for lock-free readers (Lookup, wheel, listings)
    }

    // ---- Rescue of late FIN/RST (ctfw, opt-in; docs/RESCUE.md). Never reached with rescue off. ----

    private enum RescueOutcome : byte
    {
        /// <summary>Nothing to rescue from: the kernel's answer applies.</summary>
        NotFound,
        /// <summary><c>r</c> is the answer.</summary>
        Done,
        /// <summary>Another worker changed the flow meanwhile: look the tuple up again.</summary>
        Retry,
    }

    /// <summary>
    /// A FIN or RST (no SYN) that found no live entry. In order: the entry expired but is not reaped
    /// yet (revived in place); a tombstone in the store (a new entry made from it); in loose mode,
    /// a closing-only entry. Lock-free apart from the one entry lock the first case takes.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private RescueOutcome TryRescue(in ConnTuple t, ulong hash, in ParsedPacket p, long now, in PacketContext ctx, ref Classification r)
    {
        int idx = _table.LookupExpired(t, hash, now, out int dir);
        if (idx >= 0)
        {
            RescueOutcome revived = ReviveExpired(idx, dir, p, now, ref r);
            if (revived != RescueOutcome.NotFound)
                return revived;
        }

        // Tombstones are keyed by the ORIGINAL tuple: the packet's own tuple, or its inverse for a reply.
        TombstoneStore store = _tombstones!;
        ulong origHash = hash;
        dir = 0;
        if (!store.TryFind(t, hash, now, out int slot, out long tag, out Tombstone ts))
        {
            dir = 1;
            if (!t.TryInvert(out ConnTuple inv))
                return _rescue == RescueMode.Loose ? OpenClosing(t, hash, p, now, ctx, ref r) : RescueOutcome.NotFound;
            origHash = _table.Hash(inv);
            if (!store.TryFind(inv, origHash, now, out slot, out tag, out ts))
                return _rescue == RescueMode.Loose ? OpenClosing(t, hash, p, now, ctx, ref r) : RescueOutcome.NotFound;
        }

        ConnEntry trial = default;
        trial.Orig = ts.Orig;
        trial.Tcp = ts.Tcp;
        trial.Status = (uint)(CtStatus.SeenReply | CtStatus.Assured | CtStatus.Rescued);
        TcpState before = trial.Tcp.State;
        if (!ApplyRescued(ref trial, p, dir, now, out bool ignored))
        {
            OutOfWindow(before, ref r);
            return RescueOutcome.Done; // the tombstone stays for a FIN or RST that fits
        }

        idx = _table.Allocate(origHash, now, _ring, _stats);
        if (idx < 0)
        {
            r.State = CtState.Dropped;
            r.Reason = InvalidReason.TableFull;
            return RescueOutcome.Done;
        }
        if (!store.TryTake(slot, tag))
        {
            _table.Free(idx);
            return RescueOutcome.Retry; // taken by another worker, or evicted: look again
        }
        ref ConnEntry e = ref _table.Entries[idx];
        e.Orig = trial.Orig;
        e.Status = trial.Status;
        e.Deadline = trial.Deadline;
        e.Tcp = trial.Tcp;
        e.NextOrig = 0;
        e.NextReply = 0;
        e.TimerNext = -1;
        e.TimerPrev = -1;
        TrackAges(idx, ref e, dir, p, TcpState.None, now);
        _table.Ages[idx].CreatedMs = now;
        StartAccounting(idx, dir, ignored ? 0 : p.IpTotalLength);
        // Read before it is published; other workers may update it from then on. (Still private to
        // this thread here: Volatile is not needed for ordering, TryInsert's CAS comes after it.)
        TcpState state = e.Tcp.State;
        uint status = Volatile.Read(ref e.Status) | (uint)CtStatus.Confirmed;
        // Inserted at once even with DeferConfirm: as for a packet of an existing entry, the
        // tracker's update stands whatever the verdict (and the tombstone is used up).
        if (!_table.TryInsert(idx, now))
        {
            _table.Free(idx);
            return RescueOutcome.Retry; // a packet of the same tuple created an entry meanwhile
        }
        Inserted(idx, now);
        Rescued(dir, state, status, before, ignored, ref r);
        _tally.CountRescued((p.TcpFlags & TcpFlags.Rst) != 0);
        return RescueOutcome.Done;
    }

    /// <summary>The entry expired but the housekeeper has not retired it: if the packet fits, it lives on.</summary>
    private RescueOutcome ReviveExpired(int idx, int dir, in ParsedPacket p, long now, ref Classification r)
    {
        _table.Lock(idx);
        ref ConnEntry e = ref _table.Entries[idx];
        // Dying is set without the lock (Kill, or Maintain's OR once it found the entry expired under
        // this same lock): fresh read. Deadline writers hold the lock: plain read.
        uint status = Volatile.Read(ref e.Status);
        long deadline = e.Deadline;
        if ((status & (uint)CtStatus.Dying) != 0)
        {
            // Retired meanwhile; the housekeeper stored its tombstone before marking it dying.
            _table.Unlock(idx);
            return RescueOutcome.NotFound;
        }
        if (deadline - now > 0)
        {
            _table.Unlock(idx);
            return RescueOutcome.Retry; // revived by another worker's FIN or RST
        }
        if (now - deadline > _rescueWindowMs || !TombstoneStore.Keeps(e.Tcp.State))
        {
            _table.Unlock(idx);
            return RescueOutcome.NotFound;
        }

        ConnEntry trial = e;
        trial.Status = (status & PrivateStatus.Reported)
            | (uint)(CtStatus.SeenReply | CtStatus.Assured | CtStatus.Rescued);
        TcpState before = trial.Tcp.State;
        if (!ApplyRescued(ref trial, p, dir, now, out bool ignored))
        {
            _table.Unlock(idx);
            OutOfWindow(before, ref r);
            return RescueOutcome.Done;
        }
        e.Tcp = trial.Tcp;
        Interlocked.Or(ref e.Status, (uint)(CtStatus.SeenReply | CtStatus.Assured | CtStatus.Rescued)); // atomic: shares the word with Dying
        TrackAges(idx, ref e, dir, p, before, now);
        if (!ignored)
            Account(idx, dir, p.IpTotalLength);
        // Last: the deadline makes the entry visible to lookups again (they then wait for our lock).
        // Release: lock-free readers (listings, RELATED reports) that see the new deadline also see the
        // new TCP state and bits; the housekeeper, which expires under the lock, sees it refreshed.
        Volatile.Write(ref e.Deadline, trial.Deadline);
        if (_events.Active)
            _events.Emit(_ring, _table, idx, ConntrackEventKind.Update, now); // back from expiry: its state changed
        Rescued(dir, e.Tcp.State, Volatile.Read(ref e.Status), before, ignored, ref r);
        _table.Unlock(idx);
        _tally.CountRescued((p.TcpFlags & TcpFlags.Rst) != 0);
        return RescueOutcome.Done;
    }

    /// <summary>
    /// Runs the TCP tracker (transition, RST checks, tcp_in_window) on a copy of the dead entry.
    /// False when the kernel would have found the packet INVALID against that state.
    /// </summary>
    private bool ApplyRescued(ref ConnEntry trial, in ParsedPacket p, int dir, long now, out bool ignored)
    {
        L4Result res = TcpTracker.Packet(ref trial, p, dir, now, _s, out _);
        ignored = res == L4Result.Ignore;
        if (ignored)
            trial.Deadline = now + (_s.TcpTimeouts[(int)trial.Tcp.State] * 1000L); // accepted but not refreshed by the tracker
        // Repeat and AcceptAndKill need a SYN or a flow without reply: not a rescued FIN or RST.
        return res is L4Result.Accept or L4Result.Ignore;
    }

    private void OutOfWindow(TcpState before, ref Classification r)
    {
        Invalid(ref r, InvalidReason.RescueOutOfWindow);
        r.PreviousTcpState = before;
        _tally.CountOutOfWindow();
    }

    /// <summary>The answer for a rescued packet; <paramref name="state"/> and <paramref name="status"/> as the packet left the entry.</summary>
    private static void Rescued(int dir, TcpState state, uint status, TcpState before, bool ignored, ref Classification r)
    {
        r.State = CtState.Established;
        r.Direction = (CtDirection)dir;
        r.TcpState = state;
        r.PreviousTcpState = before;
        r.Status = (CtStatus)(status & PrivateStatus.Reported);
        r.Ignored = ignored;
        r.Rescued = true;
    }

    /// <summary>
    /// Loose rescue: a bare FIN or RST with nothing to check it against opens a closing-only entry
    /// (FIN_WAIT or CLOSE, liberal both ways, unassured, timeout capped at the loose timeout).
    /// A new entry, so it waits for the verdict under DeferConfirm like any NEW one.
    /// </summary>
    private RescueOutcome OpenClosing(in ConnTuple t, ulong hash, in ParsedPacket p, long now, in PacketContext ctx, ref Classification r)
    {
        int idx = _table.Allocate(hash, now, _ring, _stats);
        if (idx < 0)
        {
            r.State = CtState.Dropped;
            r.Reason = InvalidReason.TableFull;
            return RescueOutcome.Done;
        }
        ref ConnEntry e = ref _table.Entries[idx];
        e.Orig = t;
        e.Status = (uint)(CtStatus.SeenReply | CtStatus.Rescued) | PrivateStatus.LooseRescue;
        e.Deadline = now;
        e.NextOrig = 0;
        e.NextReply = 0;
        e.TimerNext = -1;
        e.TimerPrev = -1;
        TcpTracker.NewClosing(ref e, p);
        if (!ApplyRescued(ref e, p, 0, now, out bool ignored))
        {
            _table.Free(idx); // cannot happen: both directions are liberal
            return RescueOutcome.NotFound;
        }
        CapDeadline(ref e, now + _looseTimeoutMs);
        TrackAges(idx, ref e, 0, p, TcpState.None, now);
        _table.Ages[idx].CreatedMs = now;
        StartAccounting(idx, 0, ignored ? 0 : p.IpTotalLength);
        TcpState state = e.Tcp.State;
        // Private to this thread until TryInsert links it (as in TryRescue); Volatile for uniformity.
        uint status = Volatile.Read(ref e.Status) | (ctx.DeferConfirm ? 0 : (uint)CtStatus.Confirmed);
        if (!ctx.DeferConfirm)
        {
            if (!_table.TryInsert(idx, now))
            {
                _table.Free(idx);
                return RescueOutcome.Retry; // another packet of the tuple created an entry meanwhile
            }
            Inserted(idx, now);
        }
        Rescued(0, state, status, TcpState.None, ignored, ref r);
        if (ctx.DeferConfirm)
            r.PendingEntry = idx;
        _tally.CountLoose();
        return RescueOutcome.Done;
    }

    private int PlainTimeout(byte proto) => proto switch
    {
        IpProto.Icmp => _s.IcmpTimeout,
        IpProto.Icmpv6 => _s.Icmpv6Timeout,
        _ => _s.GenericTimeout,
    };

    // Under the entry lock; one whole store for the lock-free readers of Deadline (Lookup, wheel, listings).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Refresh(ref ConnEntry e, long now, int seconds) =>
        Volatile.Write(ref e.Deadline, now + (seconds * 1000L));

    /// <summary>nf_conntrack_udp_packet (§7): 30 s until a reply, 120 s and ASSURED once a replied flow is older than 2 s.</summary>
    private void UdpPacket(ref ConnEntry e, uint status, long now)
    {
        if ((status & (uint)CtStatus.Confirmed) == 0)
            e.StreamTs = now + 2000;
        if ((status & (uint)CtStatus.SeenReply) == 0)
        {
            Refresh(ref e, now, _s.UdpTimeout);
            return;
        }
        if (now - e.StreamTs > 0)
        {
            Refresh(ref e, now, _s.UdpTimeoutStream);
            if ((status & (uint)CtStatus.Assured) == 0)
                Interlocked.Or(ref e.Status, (uint)CtStatus.Assured); // atomic: shares the word with Dying and the lock
        }
        else
        {
            Refresh(ref e, now, _s.UdpTimeout);
        }
    }

    /// <summary>
    /// nf_conntrack_udplite_packet: UDP's timeouts, but without UDP's 2 s stream rule — the first
    /// packet after a reply already gets the stream timeout and ASSURED (recorded on 6.18:
    /// udplite_new_reply #8, 0.2 s after the entry was made).
    /// </summary>
    private void UdpLitePacket(ref ConnEntry e, uint status, long now)
    {
        if ((status & (uint)CtStatus.SeenReply) == 0)
        {
            Refresh(ref e, now, _s.UdpTimeout);
            return;
        }
        Refresh(ref e, now, _s.UdpTimeoutStream);
        if ((status & (uint)CtStatus.Assured) == 0)
            Interlocked.Or(ref e.Status, (uint)CtStatus.Assured); // atomic: shares the word with Dying and the lock
    }

    /// <summary>GRE without PPTP keys: 30 s until a reply, then 180 s and ASSURED.</summary>
    private void GrePacket(ref ConnEntry e, uint status, long now)
    {
        if ((status & (uint)CtStatus.SeenReply) == 0)
        {
            Refresh(ref e, now, _s.GreTimeout);
            return;
        }
        Refresh(ref e, now, _s.GreTimeoutStream);
        Interlocked.Or(ref e.Status, (uint)CtStatus.Assured); // atomic: shares the word with Dying and the lock
    }
}
