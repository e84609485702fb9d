namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// Counters of one <see cref="NfqueueSocket"/> (this process's view). The kernel's own drop counters
/// are in <see cref="NfqueueKernelCounters"/>.
/// </summary>
public readonly record struct NfqueueStatistics
{
    /// <summary>recvmmsg calls that returned data.</summary>
    public long ReceiveCalls { get; init; }

    /// <summary>Every recvmmsg system call, including those that returned nothing (EAGAIN, timeout, signal).</summary>
    public long ReceiveSyscalls { get; init; }

    public long Datagrams { get; init; }

    /// <summary>Packets handed to the caller.</summary>
    public long Packets { get; init; }

    /// <summary>Messages or datagrams that could not be decoded (no packet id, bad lengths).</summary>
    public long MalformedMessages { get; init; }

    /// <summary>Datagrams not sent by the kernel (another process writing to our port); ignored.</summary>
    public long ForeignDatagrams { get; init; }

    /// <summary>Datagrams larger than a receive slot (MSG_TRUNC).</summary>
    public long TruncatedDatagrams { get; init; }

    /// <summary>ENOBUFS from receive: the kernel could not deliver to us (only without NETLINK_NO_ENOBUFS).</summary>
    public long EnobufsErrors { get; init; }

    /// <summary>NLMSG_ERROR answers to verdicts (e.g. ENOENT: no queued packet with that id).</summary>
    public long VerdictErrors { get; init; }

    public Errno LastVerdictError { get; init; }

    /// <summary>Packet id of the verdict that failed last (0 when unknown).</summary>
    public uint LastFailedVerdictId { get; init; }

    public long VerdictsAdded { get; init; }

    /// <summary>Verdict messages sent (singles plus batches).</summary>
    public long VerdictMessages { get; init; }

    /// <summary>NFQNL_MSG_VERDICT_BATCH messages among <see cref="VerdictMessages"/>.</summary>
    public long BatchVerdictMessages { get; init; }

    /// <summary>sendmsg calls that carried verdicts.</summary>
    public long Flushes { get; init; }

    /// <summary>sendmsg system calls made for verdicts, retries included.</summary>
    public long SendSyscalls { get; init; }

    /// <summary>Packet verdicts the kernel accepted in a sent datagram (their packets have been reinjected or dropped).</summary>
    public long VerdictsSent { get; init; }

    public long SendErrors { get; init; }

    /// <summary>Verdicts discarded because their sendmsg failed.</summary>
    public long LostVerdicts { get; init; }

    public Errno LastSendError { get; init; }

    /// <summary>Verdicts added with an id not after the previous one (breaks the batching contract).</summary>
    public long OutOfOrderVerdicts { get; init; }
}
