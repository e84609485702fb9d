namespace Ctfw.Linux.Nfqueue;

/// <summary>How <see cref="NfqueueSocket.Open"/> binds and configures one queue.</summary>
public sealed record NfqueueOptions
{
    /// <summary>Queue number (iptables <c>--queue-num</c>), 0..65535.</summary>
    public ushort Queue { get; init; }

    /// <summary>
    /// Bytes of each packet to copy, from the network header. 0 or anything above 65531 means the
    /// kernel maximum (0xFFFF − NLA_HDRLEN). Small values (e.g. 128) give headers-only copies; the
    /// full length is then in <see cref="PacketView.OriginalLength"/>.
    /// </summary>
    public uint CopyRange { get; init; } = 0xFFFF;

    /// <summary>NFQA_CFG_QUEUE_MAXLEN: packets the kernel holds awaiting a verdict (kernel default 1024).</summary>
    public uint MaxQueueLength { get; init; } = 4096;

    /// <summary>
    /// NFQA_CFG_F_FAIL_OPEN: accept, instead of drop, packets that find the queue full or cannot be
    /// delivered to this socket. Fail-closed (false) turns overload into drops.
    /// </summary>
    public bool FailOpen { get; init; }

    /// <summary>NFQA_CFG_F_CONNTRACK: attach the kernel's conntrack entry (NFQA_CT, NFQA_CT_INFO) to each packet.</summary>
    public bool Conntrack { get; init; }

    /// <summary>Datagrams fetched per recvmmsg (1..256). Each needs one receive slot of about CopyRange + 4 KiB.</summary>
    public int ReceiveBatchSize { get; init; } = 64;

    /// <summary>Pending verdicts that force a flush (<see cref="VerdictBatcher.Capacity"/>).</summary>
    public int VerdictBatchSize { get; init; } = 64;

    /// <summary>Send runs of equal verdicts as NFQNL_MSG_VERDICT_BATCH (see <see cref="VerdictBatcher"/> for the contract).</summary>
    public bool BatchVerdicts { get; init; } = true;

    /// <summary>SO_RCVBUFFORCE (as root; SO_RCVBUF, capped by net.core.rmem_max, otherwise). The kernel doubles it.</summary>
    public int ReceiveBufferBytes { get; init; } = 8 << 20;

    /// <summary>
    /// NETLINK_NO_ENOBUFS: do not report delivery failures as ENOBUFS on receive. The packets are
    /// dropped (or accepted with <see cref="FailOpen"/>) either way; the kernel counts them in
    /// <see cref="NfqueueKernelCounters.UserDropped"/>.
    /// </summary>
    public bool NoEnobufs { get; init; } = true;

    /// <summary>
    /// Longest a <see cref="NfqueueSocket.Receive"/> blocks (SO_RCVTIMEO) before returning 0, so the
    /// owning loop can notice a shutdown request.
    /// </summary>
    public TimeSpan ReceiveTimeout { get; init; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest the configuration requests may wait for the kernel's acknowledgements.</summary>
    public TimeSpan SetupTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The copy range the queue is configured with: <see cref="CopyRange"/>, or the kernel's maximum for 0 or more.</summary>
    public uint EffectiveCopyRange => CopyRange == 0 || CopyRange > Nfqnl.MaxCopyRange ? Nfqnl.MaxCopyRange : CopyRange;

    /// <summary>
    /// One receive slot: the copied packet plus headroom for every other attribute (headers, interface
    /// indexes, conntrack nest, hwaddr, timestamp, uid/gid), rounded to a cache line. A GSO
    /// super-packet at the full copy range fits (≈ 68 KiB); anything larger arrives flagged
    /// <see cref="PacketFlags.MessageTruncated"/> with its id intact.
    /// </summary>
    internal int SlotSize => (int)((EffectiveCopyRange + 4096 + 63) & ~63u);

    internal void Validate()
    {
        if (ReceiveBatchSize is < 1 or > Interop.Shim.MaxBatch)
            throw new ArgumentOutOfRangeException(nameof(ReceiveBatchSize), ReceiveBatchSize, $"must be 1..{Interop.Shim.MaxBatch}");
        if (VerdictBatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(VerdictBatchSize), VerdictBatchSize, "must be at least 1");
        if (MaxQueueLength < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxQueueLength), MaxQueueLength, "must be at least 1");
        if (ReceiveBufferBytes < 4096)
            throw new ArgumentOutOfRangeException(nameof(ReceiveBufferBytes), ReceiveBufferBytes, "must be at least 4096");
        if (ReceiveTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(ReceiveTimeout), ReceiveTimeout, "must be positive (a zero SO_RCVTIMEO would block forever)");
    }
}
