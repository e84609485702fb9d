namespace Ctfw.Conntrack;

/// <summary>What conntrack says about one packet.</summary>
public struct Classification
{
    public CtState State;
    /// <summary>Direction within the entry; <see cref="CtDirection.None"/> for INVALID/UNTRACKED.</summary>
    public CtDirection Direction;
    /// <summary>TCP state of the packet's entry after the packet; <see cref="TcpState.None"/> when there is none.</summary>
    public TcpState TcpState;
    /// <summary>
    /// TCP state of the packet's entry before the packet (for A/B reports); <see cref="TcpState.None"/>
    /// when the packet found no entry or is not TCP.
    /// </summary>
    public TcpState PreviousTcpState;
    /// <summary>SCTP state of the packet's entry after the packet (for INVALID: as the packet left it); <see cref="SctpState.None"/> otherwise.</summary>
    public SctpState SctpState;
    /// <summary>SCTP state of the packet's entry before the packet; <see cref="SctpState.None"/> when it had none.</summary>
    public SctpState PreviousSctpState;
    public Ctfw.Packets.InvalidReason Reason;
    /// <summary>
    /// When a conntrack helper dropped the packet (<see cref="State"/> is <see cref="CtState.Dropped"/>, <see cref="Reason"/>
    /// a helper's): the ctstate the packet had before, which is what the kernel's filter rules see (its helpers run at
    /// confirm, after the FORWARD and INPUT hooks). <see cref="CtState.Invalid"/> (0) otherwise.
    /// </summary>
    public CtState StateBeforeHelperDrop;
    /// <summary>The TCP tracker accepted the packet without changing state or timeout ("ignored").</summary>
    public bool Ignored;
    public byte Protocol;
    /// <summary>Status bits of the entry after the packet (without ctfw-private bits).</summary>
    public CtStatus Status;
    /// <summary>Index of a new entry that waits for <see cref="ConntrackWorker.Confirm"/> or <see cref="ConntrackWorker.Abort"/>; −1 if none.</summary>
    public int PendingEntry;
    /// <summary>The time the packet was classified at (ms), used when its entry is confirmed.</summary>
    public long Timestamp;
    /// <summary>
    /// ctfw rescue (off by default): this FIN or RST found no entry and was let through as ESTABLISHED
    /// because it fit the expired entry's tombstone, or (loose) opened a closing-only entry.
    /// </summary>
    public bool Rescued;
    /// <summary>
    /// Offload (issue 15): the packet's flow may be handed to the kernel if the packet is accepted
    /// (<see cref="ConntrackWorker.Nominate"/>); <see cref="Entry"/> is then its entry.
    /// </summary>
    public bool OffloadCandidate;
    /// <summary>The packet's entry when <see cref="OffloadCandidate"/> is set; otherwise meaningless.</summary>
    public int Entry;
    /// <summary>
    /// The helper of the entry's master, what `-m helper` (xt_helper) reads: for an expected
    /// connection (an FTP data or TFTP answer connection), its master's helper; <see cref="CtHelper.None"/>
    /// for a connection without a master, and without an entry.
    /// </summary>
    public CtHelper MasterHelper;
}

/// <summary>Per-packet facts that do not come from the packet bytes.</summary>
public readonly struct PacketContext
{
    /// <summary>Conntrack zone (the kernel's CT --zone); 0 by default.</summary>
    public ushort Zone { get; init; }
    /// <summary>
    /// Verify L4 checksums, as the kernel does at PRE_ROUTING when nf_conntrack_checksum = 1.
    /// Off for locally generated packets and for packets whose offload state says "not ready".
    /// </summary>
    public bool VerifyChecksums { get; init; }
    /// <summary>
    /// Leave a NEW entry pending (<see cref="Classification.PendingEntry"/>) instead of inserting it
    /// at once; the caller confirms or aborts it after the verdict, because the kernel inserts an
    /// entry only if its first packet is accepted (confirm at the end of POST_ROUTING / LOCAL_IN).
    /// Set by the firewall pipeline (daemon and replay), which confirms on ACCEPT and aborts on DROP/REJECT.
    /// </summary>
    public bool DeferConfirm { get; init; }
    /// <summary>
    /// The helper the raw table's `CT --helper` target gives a new connection (its template); ignored
    /// for packets of existing entries, for protocols the helper does not serve, and until
    /// <see cref="ConntrackEngine.EnableHelpers"/> ran.
    /// </summary>
    public CtHelper Helper { get; init; }

    public static PacketContext Forwarded => new() { VerifyChecksums = true };
}

/// <summary>Where one packet of a batch lies in the batch's buffer.</summary>
public readonly record struct PacketSlice(int Offset, int Length);
