using Ctfw.Packets;

namespace Ctfw.Conntrack;

/// <summary>
/// What <see cref="ConntrackEngine.Adopt"/> did. Each entry offered is counted once: adopted, or under
/// the first reason found to leave it out.
/// </summary>
public readonly record struct AdoptResult(int Adopted, string Message)
{
    /// <summary>Left out: fields the engine cannot hold (IP version, directional zone, unknown or kernel-only status bits, TCP state or window scale out of range).</summary>
    public int Unrepresentable { get; init; }

    /// <summary>Left out: NAT'ed (REPLY tuple not the inverse of ORIGINAL, or NAT / sequence-adjust status bits); ctfw does no NAT.</summary>
    public int Nat { get; init; }

    /// <summary>Left out: protocols ctfw does not track the way the kernel did (DCCP, GRE with keys, ICMP type without an inverse).</summary>
    public int UnsupportedProtocol { get; init; }

    /// <summary>Left out: no time left (CTA_TIMEOUT 0, or absent).</summary>
    public int ZeroTimeout { get; init; }

    /// <summary>Left out: the table had reached nf_conntrack_max (no early drop for adopted entries).</summary>
    public int OverLimit { get; init; }

    /// <summary>Left out: a live entry already holds the ORIGINAL or REPLY tuple (offered twice, or created by a packet meanwhile).</summary>
    public int Duplicates { get; init; }

    /// <summary>Adopted, but the conntrack helper they had does not carry over (not one of ctfw's helpers, or not for that protocol).</summary>
    public int HelpersDropped { get; init; }

    /// <summary>Adopted, but their non-zero connmark does not carry over (ctfw keeps none).</summary>
    public int MarksDropped { get; init; }

    public int Skipped => Unrepresentable + Nat + UnsupportedProtocol + ZeroTimeout + OverLimit + Duplicates;
}

// Switch-over from and back to kernel conntrack (issue 12): adopt a ctnetlink dump, export for IPCTNL_MSG_CT_NEW.
public sealed partial class ConntrackEngine
{
    /// <summary>Entries handled per reader-epoch stay, as <see cref="WriteState"/> does per block.</summary>
    private const int KernelChunk = 512;

    private const byte DccpProtocol = 33;

    /// <summary>
    /// Adopts connections from the kernel's table (a ctnetlink dump) as confirmed entries, following
    /// kernel-conntrack.md §13.4: ctnetlink carries no window values, so both directions' windows start
    /// at zero and the next packet in each direction initialises its side as a mid-stream pickup does
    /// (§4.7-B), the way the kernel itself treats entries created over ctnetlink. The per-direction flags
    /// keep WINDOW_SCALE, SACK_PERM, CLOSE_INIT and BE_LIBERAL (<see cref="KernelConnection.PortableTcpFlags"/>);
    /// MAXACK_SET and DATA_UNACKNOWLEDGED, whose values behind them are unknown, are cleared; last_index
    /// is NONE. A UDP entry that is ASSURED gets its stream time in the past, one that is not the 2 s of
    /// a new flow. Each entry expires <see cref="KernelConnection.TimeoutSeconds"/> after
    /// <paramref name="nowMs"/>.
    /// </summary>
    /// <remarks>
    /// Safe on a running engine: entries are inserted one at a time with the same clash check as a
    /// packet's confirm, inside the reader epoch (left every <see cref="KernelChunk"/> entries, so
    /// reclamation is not held up), and a worker that creates the same flow meanwhile wins (the offered
    /// entry counts as a duplicate). Never throws for what the entries hold; see <see cref="AdoptResult"/>
    /// for what is left out and why. Status bits kept: EXPECTED, SEEN_REPLY, ASSURED (and CONFIRMED);
    /// the NAT_DONE bits of null bindings and the HELPER bit are dropped.
    /// </remarks>
    public AdoptResult Adopt(IEnumerable<KernelConnection> entries, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var tally = new AdoptTally();
        var chunk = new List<KernelConnection>(KernelChunk);
        using IEnumerator<KernelConnection> source = entries.GetEnumerator();
        bool more = true;
        while (more)
        {
            // The caller's enumerator runs outside our lock and epoch: it may be lazy and slow.
            chunk.Clear();
            while (chunk.Count < KernelChunk && (more = source.MoveNext()))
                chunk.Add(source.Current);
            if (chunk.Count == 0)
                break;
            // A helped or expected entry needs the helper state (as the kernel's helper extension); outside the reader lock.
            if (Volatile.Read(ref Table.Helpers) == null && chunk.Exists(static c => c.Helper != null || c.Master != null))
                EnableHelpers();
            lock (_readerLock)
            {
                Table.Epochs.Enter(_readerSlot);
                try
                {
                    foreach (KernelConnection c in chunk)
                        AdoptOne(c, nowMs, ref tally);
                }
                finally
                {
                    Table.Epochs.Exit(_readerSlot);
                }
            }
        }
        return tally.Result();
    }

    /// <summary>
    /// Every live entry as ctnetlink would show it, copied under its lock as <see cref="WriteState"/>
    /// copies (a moving cut, safe while workers classify): both tuples, the kernel status bits
    /// (CONFIRMED, SEEN_REPLY, ASSURED, EXPECTED), the time left rounded up to whole seconds (at least 1:
    /// a created entry must not die before the next packet could refresh it), for TCP the state,
    /// both window scales and the portable flags (<see cref="KernelConnection.PortableTcpFlags"/>), for
    /// SCTP the state and both verification tags, the helper's name and an expected entry's master.
    /// Expected entries come last: the kernel creates one only when its master is already there.
    /// </summary>
    public List<KernelConnection> ExportConnections(long nowMs)
    {
        var list = new List<KernelConnection>(Table.Count);
        List<KernelConnection>? expected = null;
        var picked = new List<int>(KernelChunk * 2);
        int bucket = 0;
        int buckets = Table.BucketCount;
        while (bucket < buckets)
        {
            lock (_readerLock)
            {
                Table.Epochs.Enter(_readerSlot);
                try
                {
                    picked.Clear();
                    while (bucket < buckets && picked.Count < KernelChunk)
                        Table.CollectLive(bucket++, nowMs, picked);
                    foreach (int idx in picked)
                    {
                        if (TryExport(idx, nowMs, out KernelConnection c))
                            (c.Master == null ? list : (expected ??= [])).Add(c);
                    }
                }
                finally
                {
                    Table.Epochs.Exit(_readerSlot);
                }
            }
        }
        if (expected != null)
            list.AddRange(expected);
        return list;
    }

    private bool TryExport(int idx, long now, out KernelConnection connection)
    {
        ref ConnEntry e = ref Table.Entries[idx];
        Table.Lock(idx);
        // As in CopyEntry: under the lock no tracker step is half done; Dying is ORed without it.
        uint status = Volatile.Read(ref e.Status);
        ConnTuple orig = e.Orig;
        long deadline = e.Deadline;
        TcpConn tcp = e.Tcp;
        SctpConn sctp = e.Sctp;
        Table.Unlock(idx);
        // Written before the entry was published: settled values.
        HelperSlot[]? helpers = Volatile.Read(ref Table.Helpers);
        CtHelper helper = helpers != null ? helpers[idx].Helper : CtHelper.None;
        ConnTuple? master = helpers != null && helpers[idx].MasterOrig.IpVersion != 0 ? helpers[idx].MasterOrig : null;
        long left = deadline - now;
        if ((status & (uint)CtStatus.Dying) != 0 || left <= 0)
        {
            connection = default;
            return false;
        }
        orig.TryInvert(out ConnTuple reply); // a confirmed entry always has an inverse (checked at its creation)
        bool isTcp = orig.Protocol == IpProto.Tcp;
        bool isSctp = orig.Protocol == IpProto.Sctp;
        connection = new KernelConnection
        {
            Helper = CtHelpers.Name(helper),
            Master = master,
            SctpState = isSctp ? sctp.State : SctpState.None,
            SctpVtagOriginal = isSctp ? sctp.Vtag0 : 0,
            SctpVtagReply = isSctp ? sctp.Vtag1 : 0,
            Original = orig,
            Reply = reply,
            Status = (CtStatus)(status & PrivateStatus.Reported),
            TimeoutSeconds = (uint)Math.Min(uint.MaxValue, Math.Max(1, (left + 999) / 1000)),
            TcpState = isTcp ? tcp.State : TcpState.None,
            WindowScaleOriginal = isTcp ? tcp.Scale0 : (byte)0,
            WindowScaleReply = isTcp ? tcp.Scale1 : (byte)0,
            TcpFlagsOriginal = isTcp ? (byte)(tcp.Flags0 & KernelConnection.PortableTcpFlags) : (byte)0,
            TcpFlagsReply = isTcp ? (byte)(tcp.Flags1 & KernelConnection.PortableTcpFlags) : (byte)0,
        };
        return true;
    }

    /// <summary>Checks and inserts one entry (inside the reader epoch).</summary>
    private void AdoptOne(in KernelConnection c, long now, ref AdoptTally tally)
    {
        AdoptCheck check = CheckKernelConnection(c, out string? why);
        switch (check)
        {
            case AdoptCheck.Unrepresentable:
                tally.Unrepresentable++;
                tally.FirstUnrepresentable ??= why;
                return;
            case AdoptCheck.Nat:
                tally.Nat++;
                return;
            case AdoptCheck.Protocol:
                tally.Protocol++;
                return;
            case AdoptCheck.ZeroTimeout:
                tally.ZeroTimeout++;
                return;
        }

        ConnTuple t = c.Original;
        // Below max by this check, so Allocate does not early-drop. Benign race on a running engine:
        // a worker may take the last places between the check and the allocation; Allocate then
        // early-drops or fails exactly as for a packet.
        if (Table.Count >= Table.Max)
        {
            tally.OverLimit++;
            return;
        }
        int idx = Table.Allocate(Table.Hash(t), now);
        if (idx < 0)
        {
            tally.OverLimit++;
            return;
        }
        ref ConnEntry e = ref Table.Entries[idx];
        // Private to this thread until TryInsert links it (its CAS publishes everything below).
        e.Orig = t;
        e.Status = AdoptedStatus(c);
        e.Deadline = now + (c.TimeoutSeconds * 1000L);
        e.Tcp = default;
        if (t.Protocol == IpProto.Tcp)
        {
            ref TcpConn tcp = ref e.Tcp;
            // Seen0/Seen1 stay zero: td_maxwin == 0 makes the next segment of each direction take its
            // window from the packet (tcp_in_window's mid-stream initialisation).
            tcp.State = c.TcpState;
            tcp.Scale0 = c.WindowScaleOriginal;
            tcp.Scale1 = c.WindowScaleReply;
            tcp.Flags0 = (byte)(c.TcpFlagsOriginal & KernelConnection.PortableTcpFlags);
            tcp.Flags1 = (byte)(c.TcpFlagsReply & KernelConnection.PortableTcpFlags);
            tcp.LastIndex = TcpTracker.IdxNone;
        }
        else if (t.Protocol is IpProto.Udp or IpProto.UdpLite)
        {
            // ASSURED: long past its first 2 s. Otherwise its age is unknown: taken as new.
            e.StreamTs = (c.Status & CtStatus.Assured) != 0 ? now - 1 : now + 2000;
        }
        else if (t.Protocol == IpProto.Sctp)
        {
            // What nlattr_to_sctp sets: the state and both tags; init[] and the heartbeat flag start clear.
            e.Sctp.State = c.SctpState;
            e.Sctp.Vtag0 = c.SctpVtagOriginal;
            e.Sctp.Vtag1 = c.SctpVtagReply;
        }
        bool helperKept = AdoptHelper(idx, c, now);
        if (Table.Helpers is { } adopted && (adopted[idx].Helper != CtHelper.None || adopted[idx].MasterHelper != CtHelper.None))
            e.Status |= PrivateStatus.Helped; // not yet published: a plain OR
        e.NextOrig = 0;
        e.NextReply = 0;
        e.TimerNext = -1;
        e.TimerPrev = -1;
        if (Table.Acct is { } acct) // read once: set off this path, never cleared (ConnTable.EnableAccounting)
            acct[idx] = default; // counters start here: neither the kernel's nor the state file's are carried over
        ref FlowAge age = ref Table.Ages[idx];
        age.StateSinceMs = now;
        age.CreatedMs = now; // the kernel's own start time is not asked for (nf_conntrack_timestamp)
        age.ZeroWindowSince0 = now;
        age.ZeroWindowSince1 = now;
        if (!Table.TryInsert(idx, now))
        {
            Table.Free(idx);
            tally.Duplicates++;
            return;
        }
        tally.Adopted++;
        if (!helperKept)
            tally.HelpersDropped++;
        if (c.Mark != 0)
            tally.MarksDropped++;
    }

    /// <summary>
    /// An adopted entry's helper (by name, when ctfw has it for the entry's protocol) and master tuple,
    /// into its helper slot (the entry is not yet published). False when it had a helper that does not
    /// carry over (the name is unknown here, or only the HELPER status bit said there was one).
    /// </summary>
    private bool AdoptHelper(int idx, in KernelConnection c, long now)
    {
        HelperSlot[]? helpers = Table.Helpers; // allocated by Adopt before this chunk when any entry needs it
        bool had = c.Helper != null || (c.Status & KernelStatus.Helper) != 0;
        if (helpers == null)
            return !had;
        ref HelperSlot h = ref helpers[idx];
        if (c.Master is { } master && (c.Status & CtStatus.Expected) != 0)
        {
            h.MasterOrig = master;
            // The master's helper (what `-m helper` matches on a related packet), when the master is
            // here already: ctnetlink does not carry it, and masters are exported first.
            int m = Table.Lookup(master, Table.Hash(master), now, out _);
            if (m >= 0)
                h.MasterHelper = helpers[m].Helper;
        }
        if (c.Helper is { } name && CtHelpers.TryParse(name, out CtHelper helper, out byte protocol) && protocol == c.Original.Protocol)
        {
            h.Helper = helper;
            return true;
        }
        return !had;
    }

    /// <summary>The kernel bits an adopted entry keeps, plus ctfw's FIN-seen bits derived from the TCP state.</summary>
    private static uint AdoptedStatus(in KernelConnection c)
    {
        uint status = (uint)(c.Status & (CtStatus.Expected | CtStatus.SeenReply | CtStatus.Assured));
        if (c.Original.Protocol != IpProto.Tcp)
            return status;
        // A side with CLOSE_INIT sent the first FIN; LAST_ACK and TIME_WAIT come after both FINs.
        bool both = c.TcpState is TcpState.LastAck or TcpState.TimeWait;
        if (both || (c.TcpFlagsOriginal & TcpSideFlags.CloseInit) != 0)
            status |= PrivateStatus.FinSeen0;
        if (both || (c.TcpFlagsReply & TcpSideFlags.CloseInit) != 0)
            status |= PrivateStatus.FinSeen0 << 1;
        return status;
    }

    private enum AdoptCheck
    {
        Adopt,
        Unrepresentable,
        Nat,
        Protocol,
        ZeroTimeout,
    }

    /// <summary>Status bits of entries the engine cannot stand in for, with what each means.</summary>
    private static readonly (CtStatus Bit, string Why)[] s_refusedStatus =
    [
        (CtStatus.Dying, "status DYING (being deleted)"),
        (CtStatus.FixedTimeout, "status FIXED_TIMEOUT (ctfw refreshes every timeout)"),
        (KernelStatus.Template, "status TEMPLATE"),
        (KernelStatus.NatClash, "status NAT_CLASH/UNTRACKED"),
        (KernelStatus.Offload, "status OFFLOAD (flowtable: no timeout or TCP state in the dump)"),
        (KernelStatus.HwOffload, "status HW_OFFLOAD"),
    ];

    private static AdoptCheck CheckKernelConnection(in KernelConnection c, out string? why)
    {
        why = null;
        ConnTuple o = c.Original;
        ConnTuple r = c.Reply;
        if (o.IpVersion is not (4 or 6))
        {
            why = $"IP version {o.IpVersion}";
            return AdoptCheck.Unrepresentable;
        }
        if (r.IpVersion != o.IpVersion || r.Protocol != o.Protocol)
        {
            why = "ORIGINAL and REPLY tuples of different families or protocols";
            return AdoptCheck.Unrepresentable;
        }
        if (o.Zone != r.Zone)
        {
            why = $"directional zone ({o.Zone} ORIGINAL, {r.Zone} REPLY)";
            return AdoptCheck.Unrepresentable;
        }
        uint status = (uint)c.Status;
        if ((status & ~(uint)KernelStatus.Defined) != 0)
        {
            why = $"status 0x{status:x} has bits this build does not know";
            return AdoptCheck.Unrepresentable;
        }
        if ((c.Status & (KernelStatus.SrcNat | KernelStatus.DstNat | KernelStatus.SeqAdjust)) != 0)
            return AdoptCheck.Nat;
        if (!o.TryInvert(out ConnTuple inverse))
            return AdoptCheck.Protocol; // ICMP type without a reply type: the kernel tracks none either
        if (inverse != r)
            return AdoptCheck.Nat;
        switch (o.Protocol)
        {
            case IpProto.Tcp or IpProto.Udp or IpProto.UdpLite:
                break;
            case IpProto.Icmp or IpProto.Icmpv6:
                if ((o.Protocol == IpProto.Icmpv6) != o.IsV6)
                    return AdoptCheck.Protocol;
                if (!IcmpInverse.IsQuery(o.Protocol, (byte)(o.DstId >> 8)))
                {
                    why = $"ICMP entry opened by type {o.DstId >> 8}, not a query";
                    return AdoptCheck.Unrepresentable;
                }
                break;
            case IpProto.Sctp:
                if (c.SctpState is SctpState.None or >= SctpState.Max)
                {
                    why = $"SCTP state {(byte)c.SctpState}";
                    return AdoptCheck.Unrepresentable;
                }
                break;
            case DccpProtocol:
                return AdoptCheck.Protocol; // the kernel's own state machine; ctfw tracks DCCP as generic, without ports
            default:
                // Generic protocols have no L4 ids in either table; GRE only without keys (no PPTP helper).
                if (o.SrcId != 0 || o.DstId != 0)
                    return AdoptCheck.Protocol;
                break;
        }
        foreach ((CtStatus bit, string text) in s_refusedStatus)
        {
            if ((c.Status & bit) != 0)
            {
                why = text;
                return AdoptCheck.Unrepresentable;
            }
        }
        if (o.Protocol == IpProto.Tcp)
        {
            if (c.TcpState is TcpState.None or > TcpState.SynSent2)
            {
                why = $"TCP state {(byte)c.TcpState}";
                return AdoptCheck.Unrepresentable;
            }
            if (c.WindowScaleOriginal > 14 || c.WindowScaleReply > 14)
            {
                why = $"TCP window scale {c.WindowScaleOriginal}/{c.WindowScaleReply} above 14";
                return AdoptCheck.Unrepresentable;
            }
        }
        return c.TimeoutSeconds == 0 ? AdoptCheck.ZeroTimeout : AdoptCheck.Adopt;
    }

    private struct AdoptTally
    {
        public int Adopted, Unrepresentable, Nat, Protocol, ZeroTimeout, OverLimit, Duplicates, HelpersDropped, MarksDropped;
        public string? FirstUnrepresentable;

        public readonly AdoptResult Result()
        {
            int skipped = Unrepresentable + Nat + Protocol + ZeroTimeout + OverLimit + Duplicates;
            string message = $"adopted {Adopted} of {Adopted + skipped} kernel entries ({Nat} NAT, {Protocol} unsupported protocol, "
                + $"{Unrepresentable} unrepresentable{(FirstUnrepresentable != null ? $" e.g. {FirstUnrepresentable}" : "")}, "
                + $"{ZeroTimeout} without time left, {OverLimit} over nf_conntrack_max, {Duplicates} duplicates)";
            if (HelpersDropped > 0 || MarksDropped > 0)
                message += $"; {HelpersDropped} lost their helper, {MarksDropped} their mark";
            return new AdoptResult(Adopted, message)
            {
                Unrepresentable = Unrepresentable,
                Nat = Nat,
                UnsupportedProtocol = Protocol,
                ZeroTimeout = ZeroTimeout,
                OverLimit = OverLimit,
                Duplicates = Duplicates,
                HelpersDropped = HelpersDropped,
                MarksDropped = MarksDropped,
            };
        }
    }
}
