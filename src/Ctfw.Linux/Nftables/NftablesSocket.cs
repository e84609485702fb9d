using System.Diagnostics;
using Ctfw.Linux.Netlink;
using Tmds.Linux;

namespace Ctfw.Linux.Nftables;

/// <summary>Settings of an <see cref="NftablesSocket"/>.</summary>
public sealed record NftablesOptions
{
    /// <summary>
    /// SO_RCVBUF asked for (SO_RCVBUFFORCE first). A batch's acknowledgements wait here until read, one
    /// skb each (~800 bytes of truesize), so this bounds the messages of a batch: one per 2 KiB.
    /// </summary>
    public int ReceiveBufferBytes { get; init; } = 8 << 20;

    /// <summary>Largest batch datagram: the send buffer is sized for it (netlink refuses a longer datagram with EMSGSIZE).</summary>
    public int MaxBatchBytes { get; init; } = 1 << 20;

    /// <summary>How long to wait for the kernel's next answer.</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Messages one batch may hold (their acknowledgements must fit the receive buffer at once).</summary>
    public int MaxOperations => Math.Max(1, ReceiveBufferBytes / 2048);

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ReceiveBufferBytes, 64 << 10, nameof(ReceiveBufferBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchBytes, 4 << 10, nameof(MaxBatchBytes));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBatchBytes, 16 << 20, nameof(MaxBatchBytes));
        if (ReplyTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(ReplyTimeout), "must be positive");
    }
}

/// <summary>
/// An nf_tables socket (NETLINK_NETFILTER) in the network namespace of the thread that called
/// <see cref="Open"/> (<see cref="NetworkNamespace.Run"/> for another): commits batches built with
/// <see cref="NftBatch"/> in one sendto each and maps every acknowledgement back to its operation,
/// dumps a set's elements with their timeouts, expirations and counters, and looks elements up by
/// key (<see cref="GetElements"/>). A table added with <c>owner</c> belongs to this socket: disposing
/// it deletes the table (<see cref="NftBatch.AddTable"/>). Needs CAP_NET_ADMIN.
/// One thread at a time. Setup failures and a broken socket throw <see cref="ErrnoException"/>; what
/// the kernel answers to a request (EEXIST, ENOENT, EPERM …) comes back in the results.
/// </summary>
public sealed class NftablesSocket : IDisposable
{
    /// <summary>A dump skb is at most 32 KiB; twice that leaves room to spare.</summary>
    private const int ReceiveSize = 64 << 10;

    /// <summary>An acknowledgement is 36 bytes with NETLINK_CAP_ACK.</summary>
    private const int AckSlotSize = 64;

    private readonly SocketHandle _socket;
    private readonly byte[] _rx = new byte[ReceiveSize];
    private readonly byte[] _tx = new byte[1024];
    private readonly byte[] _acks = GC.AllocateUninitializedArray<byte>(Interop.Shim.MaxBatch * AckSlotSize, pinned: true);
    private readonly Interop.Shim.RxSlot[] _ackSlots = new Interop.Shim.RxSlot[Interop.Shim.MaxBatch];
    private uint _sequence;

    private NftablesSocket(NftablesOptions options, SocketHandle socket)
    {
        Options = options;
        _socket = socket;
        // Distinct from other sockets' numbers only for reading traces; the kernel matches by port id.
        _sequence = (uint)Environment.TickCount;
        NetlinkSockets.PointSlots(_acks, _ackSlots, AckSlotSize);
    }

    public NftablesOptions Options { get; }

    public uint PortId { get; private set; }

    /// <summary>Opens and configures the socket in the calling thread's network namespace.</summary>
    public static NftablesSocket Open(NftablesOptions? options = null)
    {
        options ??= new NftablesOptions();
        options.Validate();
        Interop.Shim.EnsureCompatible();
        SocketHandle socket = Interop.Socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, Interop.NetlinkNetfilter);
        if (socket.IsInvalid)
        {
            Errno errno = Interop.GetLastErrno();
            socket.Dispose();
            throw new ErrnoException($"socket(AF_NETLINK, NETLINK_NETFILTER) failed: {ErrnoException.Describe(errno)}", errno);
        }
        var nft = new NftablesSocket(options, socket);
        try
        {
            nft.Configure();
            return nft;
        }
        catch
        {
            nft.Dispose();
            throw;
        }
    }

    /// <summary>A batch as large as this socket sends.</summary>
    public NftBatch CreateBatch() => new(Options.MaxBatchBytes);

    /// <summary>
    /// Sends <paramref name="batch"/> (renumbered from this socket's sequence) in one sendto and reads
    /// an acknowledgement for each of its operations. The kernel applies the batch all or nothing:
    /// <see cref="NftBatchResult.Committed"/> only when every operation was acknowledged with success.
    /// </summary>
    public NftBatchResult Commit(NftBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int operations = batch.Operations.Count;
        if (operations > Options.MaxOperations)
            throw new InvalidOperationException($"a batch of {operations} messages: their acknowledgements would not fit the receive buffer ({Options.MaxOperations} at most)");
        if (batch.Length > Options.MaxBatchBytes)
            throw new InvalidOperationException($"a batch of {batch.Length} bytes: more than the {Options.MaxBatchBytes} the send buffer was sized for");
        var clock = Stopwatch.StartNew();
        DiscardPending(); // a stale ENOBUFS would otherwise count this batch's acknowledgements as lost
        batch.Renumber(_sequence + 1);
        _sequence += (uint)operations + 2;
        ReadOnlySpan<byte> datagram = batch.Datagram();
        if (operations == 0)
            return new NftBatchResult { Bytes = datagram.Length, Elapsed = clock.Elapsed };
        Errno sent = TrySend(datagram);
        if (sent != Errno.None)
            return new NftBatchResult { Operations = operations, SendError = sent, Bytes = datagram.Length, Elapsed = clock.Elapsed };
        var acks = new NftBatchAckReader(batch.BeginSequence, operations);
        CollectAcks(acks);
        List<NftOperationError> errors = [];
        for (int i = 0; i < operations; i++)
        {
            if (acks.Answered(i) && acks.ErrorOf(i) != Errno.None)
                errors.Add(new NftOperationError(i, batch.Operations[i], acks.ErrorOf(i)));
        }
        return new NftBatchResult
        {
            Operations = operations,
            Errors = errors,
            Unanswered = acks.BatchError != Errno.None ? 0 : acks.Pending,
            BatchError = acks.BatchError,
            Bytes = datagram.Length,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>Every element of <paramref name="set"/> with its timeout, time left and counter (GETSETELEM dump).</summary>
    public NftSetDumpResult DumpElements(NftFlowSet set)
    {
        ArgumentNullException.ThrowIfNull(set);
        var clock = Stopwatch.StartNew();
        DiscardPending();
        var reader = new NftSetDumpReader(++_sequence);
        int length = NftablesCodec.WriteDumpElements(_tx, reader.Sequence, set);
        Errno sent = TrySend(_tx.AsSpan(0, length));
        if (sent != Errno.None)
            throw new ErrnoException($"sending the element dump request to nf_tables failed: {ErrnoException.Describe(sent)}", sent);
        int datagrams = 0;
        bool overrun = false;
        while (!reader.Done)
        {
            Errno error = Receive(out int received, out bool truncated);
            if (error == Errno.ENOBUFS)
            {
                overrun = true;
                break;
            }
            if (error != Errno.None)
                throw ReceiveFailure(error, "the element dump");
            datagrams++;
            reader.Read(_rx.AsSpan(0, received), truncated);
        }
        return new NftSetDumpResult(reader.Elements)
        {
            Error = overrun ? Errno.ENOBUFS : reader.Error,
            Interrupted = reader.Interrupted,
            Unparsed = reader.Unparsed,
            FirstUnparsedReason = reader.FirstUnparsedReason,
            Datagrams = datagrams,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>Keys per GETSETELEM request by default (the brief's batches; the 64 KiB nest holds ~1 200 IPv6 keys).</summary>
    public const int DefaultKeysPerRequest = 256;

    private byte[]? _getRequest;

    /// <summary>
    /// The elements of <paramref name="keys"/> with their timeout, time left and counter, without a dump:
    /// GETSETELEM requests of up to <paramref name="perRequest"/> keys. The kernel answers the keys in
    /// order and stops at the first it does not hold (ENOENT, the extended ack naming the key): that
    /// key is reported missing and the request goes again from the next one. Expired elements count as
    /// missing. A missing table or set (or any other refusal) ends the lookup with
    /// <see cref="NftGetElementsResult.Error"/>. Needs no CAP_NET_ADMIN beyond the socket's; works on
    /// a table owned by another socket.
    /// </summary>
    public NftGetElementsResult GetElements(NftFlowSet set, ReadOnlySpan<NftFlowKey> keys, int perRequest = DefaultKeysPerRequest)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentOutOfRangeException.ThrowIfLessThan(perRequest, 1);
        var clock = Stopwatch.StartNew();
        var found = new List<NftElementState>(keys.Length);
        var missing = new List<NftFlowKey>();
        _getRequest ??= new byte[ushort.MaxValue + 1024];
        int requests = 0, unparsed = 0;
        string? firstUnparsed = null;
        Errno failure = Errno.None;
        DiscardPending();
        SetExtendedAck(true); // the error then says which key was not found, or that the set was not
        try
        {
            int start = 0;
            while (start < keys.Length)
            {
                int count = Math.Min(perRequest, keys.Length - start);
                int length;
                while ((length = NftablesCodec.WriteGetElements(_getRequest, ++_sequence, set, keys.Slice(start, count))) < 0 && count > 1)
                    count /= 2;
                if (length < 0)
                    throw new InvalidOperationException($"a GETSETELEM request for one key of {set.Table} {set.Name} does not fit {_getRequest.Length} bytes");
                requests++;
                Errno sent = TrySend(_getRequest.AsSpan(0, length));
                if (sent != Errno.None)
                    throw new ErrnoException($"sending an element lookup to nf_tables failed: {ErrnoException.Describe(sent)}", sent);
                var reader = new NftGetElementsReader(_sequence, found);
                while (!reader.Done)
                {
                    Errno error = Receive(out int received, out bool truncated);
                    if (error == Errno.ENOBUFS)
                    {
                        // Answers were dropped: which keys they were is unknown; stop here.
                        failure = Errno.ENOBUFS;
                        break;
                    }
                    if (error != Errno.None)
                        throw ReceiveFailure(error, "an element lookup");
                    reader.Read(_rx.AsSpan(0, received), truncated);
                }
                unparsed += reader.Unparsed;
                firstUnparsed ??= reader.FirstUnparsedReason;
                if (failure != Errno.None)
                    break;
                if (reader.Error == Errno.None)
                {
                    start += count;
                    continue;
                }
                int at = reader.Error == Errno.ENOENT && reader.ErrorOffset is uint offset
                    ? NftablesCodec.GetElementIndexAt(set, count, offset)
                    : -1;
                if (at < 0)
                {
                    failure = reader.Error; // the table or set, not a key
                    break;
                }
                missing.Add(keys[start + at]);
                start += at + 1;
            }
        }
        finally
        {
            SetExtendedAck(false); // batches keep their 36-byte acknowledgements
        }
        return new NftGetElementsResult(found, missing)
        {
            Error = failure,
            Requests = requests,
            Unparsed = unparsed,
            FirstUnparsedReason = firstUnparsed,
            Elapsed = clock.Elapsed,
        };
    }

    public void Dispose() => _socket.Dispose();

    private unsafe void SetExtendedAck(bool on)
    {
        int value = on ? 1 : 0;
        if (Interop.SetSockOpt(_socket, LibC.SOL_NETLINK, Nftables.NetlinkExtAck, &value, sizeof(int)) != 0)
            throw ErrnoException.FromLastError("setsockopt(NETLINK_EXT_ACK)");
    }

    /// <summary>Reads acknowledgements, up to <see cref="Interop.Shim.MaxBatch"/> per recvmmsg, until each operation has one or none will come.</summary>
    private unsafe void CollectAcks(NftBatchAckReader acks)
    {
        bool lost = false;
        while (!acks.Done)
        {
            // After an overrun the rest may still be queued: take what is there, then stop.
            Errno error = Errno.None;
            int received;
            fixed (Interop.Shim.RxSlot* slots = _ackSlots)
            {
                received = Interop.Shim.RecvBatch(_socket, slots, (uint)Math.Min(acks.Pending, _ackSlots.Length),
                    lost ? Interop.Shim.RecvNonblocking : Interop.Shim.RecvWaitForOne, &error);
            }
            if (received < 0)
            {
                if (error == Errno.EINTR)
                    continue;
                if (error == Errno.ENOBUFS)
                {
                    lost = true;
                    continue;
                }
                if (error == Errno.EAGAIN)
                    return; // reply timeout, or drained after an overrun: the rest stay unanswered
                throw ReceiveFailure(error, "batch acknowledgements");
            }
            for (int i = 0; i < received; i++)
            {
                ref readonly Interop.Shim.RxSlot slot = ref _ackSlots[i];
                if (slot.SourcePort != 0)
                    continue; // not from the kernel
                acks.Read(_acks.AsSpan(i * AckSlotSize, (int)slot.Length), (slot.Flags & Interop.Shim.RxTruncated) != 0);
            }
        }
    }

    private unsafe void Configure()
    {
        PortId = NetlinkSockets.BindAnyPort(_socket);
        NetlinkSockets.SetReceiveBuffer(_socket, Options.ReceiveBufferBytes);
        // netlink_sendmsg refuses a datagram longer than the send buffer less 32 bytes (EMSGSIZE).
        NetlinkSockets.SetSendBuffer(_socket, Options.MaxBatchBytes + (64 << 10));
        // Acknowledgements without the echoed request: 36 bytes each instead of the whole message.
        int on = 1;
        if (Interop.SetSockOpt(_socket, LibC.SOL_NETLINK, Interop.NetlinkCapAck, &on, sizeof(int)) != 0)
            throw ErrnoException.FromLastError("setsockopt(NETLINK_CAP_ACK)");
        NetlinkSockets.SetReceiveTimeout(_socket, Options.ReplyTimeout);
    }

    private Errno TrySend(ReadOnlySpan<byte> datagram) => NetlinkSockets.TrySendToKernel(_socket, datagram);

    private Errno Receive(out int length, out bool truncated) =>
        NetlinkSockets.ReceiveFromKernel(_socket, _rx, blocking: true, out length, out truncated);

    private void DiscardPending() => NetlinkSockets.DiscardPending(_socket, _rx);

    private ErrnoException ReceiveFailure(Errno error, string what) => error == Errno.EAGAIN
        ? new ErrnoException($"nf_tables did not answer {what} within {Options.ReplyTimeout.TotalSeconds} s", error)
        : new ErrnoException($"receiving {what} from nf_tables failed: {ErrnoException.Describe(error)}", error);
}
