using System.Diagnostics;
using Ctfw.Conntrack;
using Tmds.Linux;

namespace Ctfw.Linux.Netlink;

/// <summary>Settings of a <see cref="CtnetlinkSocket"/>; the defaults suit a table of millions of entries.</summary>
public sealed record CtnetlinkOptions
{
    /// <summary>
    /// SO_RCVBUF asked for (SO_RCVBUFFORCE first). A create batch's acknowledgements wait here until read:
    /// each is its own skb (832 bytes of truesize on 6.18), so this bounds how many messages a batch may
    /// hold (<see cref="CtnetlinkSocket.Create"/> allows one per 2 KiB).
    /// </summary>
    public int ReceiveBufferBytes { get; init; } = 8 << 20;

    /// <summary>Create messages are packed into datagrams of at most this many bytes (one sendto each).</summary>
    public int CreateBatchBytes { get; init; } = 64 << 10;

    /// <summary>How long to wait for the kernel's next answer before giving up.</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Dumps started at most, when one is interrupted (NLM_F_DUMP_INTR) or overruns the socket.</summary>
    public int DumpAttempts { get; init; } = 3;

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ReceiveBufferBytes, 64 << 10, nameof(ReceiveBufferBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(CreateBatchBytes, CtnetlinkCodec.MaxCreateSize, nameof(CreateBatchBytes));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(CreateBatchBytes, 1 << 20, nameof(CreateBatchBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(DumpAttempts, 1, nameof(DumpAttempts));
        if (ReplyTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(ReplyTimeout), "must be positive");
    }
}

/// <summary>
/// A ctnetlink socket (NETLINK_NETFILTER, subsystem CTNETLINK) in the network namespace of the thread
/// that called <see cref="Open"/> (use <see cref="NetworkNamespace.Run"/> for another one): dumps the
/// kernel's conntrack table, creates entries in it, flushes it. Needs CAP_NET_ADMIN in that namespace.
/// One thread at a time. Setup failures, a refused dump or flush and a broken socket throw
/// <see cref="ErrnoException"/>; per-entry outcomes are counted in the results.
/// </summary>
public sealed class CtnetlinkSocket : IDisposable
{
    /// <summary>Netlink dumps come in skbs of at most 32 KiB; twice that leaves no room for MSG_TRUNC.</summary>
    private const int ReceiveSize = 64 << 10;

    /// <summary>An acknowledgement is 36 bytes with NETLINK_CAP_ACK; a longer one is cut, its error code still whole.</summary>
    private const int AckSlotSize = 64;

    private readonly SocketHandle _socket;
    private readonly byte[] _rx = new byte[ReceiveSize];
    private readonly byte[] _tx;
    // Acknowledgements come one datagram each: read up to Shim.MaxBatch of them per recvmmsg.
    private readonly byte[] _acks = GC.AllocateUninitializedArray<byte>(Interop.Shim.MaxBatch * AckSlotSize, pinned: true);
    private readonly Interop.Shim.RxSlot[] _ackSlots = new Interop.Shim.RxSlot[Interop.Shim.MaxBatch];
    private uint _sequence;

    private CtnetlinkSocket(CtnetlinkOptions options, SocketHandle socket)
    {
        Options = options;
        _socket = socket;
        _tx = new byte[options.CreateBatchBytes];
        NetlinkSockets.PointSlots(_acks, _ackSlots, AckSlotSize);
    }

    public CtnetlinkOptions Options { get; }

    /// <summary>The netlink port id the kernel assigned.</summary>
    public uint PortId { get; private set; }

    /// <summary>Opens and configures the socket in the calling thread's network namespace.</summary>
    public static CtnetlinkSocket Open(CtnetlinkOptions? options = null)
    {
        options ??= new CtnetlinkOptions();
        options.Validate();
        Interop.Shim.EnsureCompatible();
        SocketHandle socket = Interop.Socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, Interop.NetlinkNetfilter);
        if (socket.IsInvalid)
        {
            Errno errno = Interop.GetLastErrno();
            socket.Dispose();
            throw new ErrnoException($"socket(AF_NETLINK, NETLINK_NETFILTER) failed: {ErrnoException.Describe(errno)}", errno);
        }
        var ct = new CtnetlinkSocket(options, socket);
        try
        {
            ct.Configure();
            return ct;
        }
        catch
        {
            ct.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Dumps every entry of the namespace's table (IPCTNL_MSG_CT_GET, NLM_F_DUMP, AF_UNSPEC), reading the
    /// multipart answer until NLMSG_DONE. A dump the kernel marks NLM_F_DUMP_INTR, or one that overran
    /// the socket (ENOBUFS), is started again, up to <see cref="CtnetlinkOptions.DumpAttempts"/> times;
    /// the result says if the last one was still incomplete. Entries that cannot be decoded are counted
    /// with their reasons. Throws when the kernel refuses the dump (e.g. EPERM) or does not answer.
    /// </summary>
    public CtnetlinkDumpResult Dump()
    {
        var clock = Stopwatch.StartNew();
        CtnetlinkDumpReader? reader = null;
        bool incomplete = true;
        int attempts = 0, datagrams = 0;
        while (attempts < Options.DumpAttempts && incomplete)
        {
            attempts++;
            DiscardPending();
            reader = new CtnetlinkDumpReader(++_sequence);
            Send(_tx.AsSpan(0, CtnetlinkCodec.WriteDumpRequest(_tx, reader.Sequence)), "the dump request");
            bool overrun = false;
            while (!reader.Done)
            {
                Errno error = Receive(blocking: true, out int length, out bool truncated);
                if (error == Errno.ENOBUFS)
                {
                    overrun = true; // answers were dropped: this walk is missing entries
                    break;
                }
                if (error != Errno.None)
                    throw ReceiveFailure(error, "the dump");
                datagrams++;
                reader.Read(_rx.AsSpan(0, length), truncated);
            }
            if (reader.Error != Errno.None)
                throw new ErrnoException($"the kernel refused the conntrack dump: {ErrnoException.Describe(reader.Error)}", reader.Error);
            incomplete = overrun || reader.Interrupted;
        }
        return new CtnetlinkDumpResult(reader!.Entries, reader.UnparsedReasons)
        {
            Unparsed = reader.Unparsed,
            Attempts = attempts,
            Incomplete = incomplete,
            Datagrams = datagrams,
            Elapsed = clock.Elapsed,
        };
    }

    /// <summary>
    /// Creates <paramref name="connections"/> in the kernel table (IPCTNL_MSG_CT_NEW with NLM_F_CREATE |
    /// NLM_F_EXCL | NLM_F_ACK, see <see cref="CtnetlinkCodec.WriteCreate"/>), packing as many messages
    /// into each datagram as <see cref="CtnetlinkOptions.CreateBatchBytes"/> allows: the kernel handles a
    /// datagram's messages one after the other inside the sendto, then each acknowledgement is read back
    /// and matched by sequence number. An entry that exists already is left as it is (EEXIST), unless
    /// <paramref name="replaceExisting"/>: then the kernel's entry for the tuple (in either direction)
    /// is deleted and ours created in its place — for a switch back to kernel filtering, where ctfw's
    /// view of the flow is the one that saw its traffic.
    /// </summary>
    public CtnetlinkCreateResult Create(IReadOnlyList<KernelConnection> connections, bool replaceExisting = false)
    {
        ArgumentNullException.ThrowIfNull(connections);
        var clock = Stopwatch.StartNew();
        var tally = new CreateTally();
        List<int>? existed = replaceExisting ? [] : null;
        Send(connections, Enumerable.Range(0, connections.Count).ToList(), delete: false, ref tally, existed);
        if (existed is { Count: > 0 })
        {
            var deletes = new CreateTally();
            Send(connections, existed, delete: true, ref deletes, null);
            tally.Existed -= existed.Count;
            int createdBefore = tally.Created;
            Send(connections, existed, delete: false, ref tally, null);
            tally.Replaced = tally.Created - createdBefore;
            if (deletes.FirstErrorText != null && deletes.FirstError != Errno.ENOENT && tally.FirstErrorText == null)
                tally.Fail(deletes.FirstError, "deleting the kernel's entry: " + deletes.FirstErrorText);
        }
        return tally.Result(clock.Elapsed);
    }

    /// <summary>Creates (or deletes) <paramref name="connections"/>[<paramref name="indexes"/>] in batches; EEXIST indexes go to <paramref name="existed"/>.</summary>
    private void Send(IReadOnlyList<KernelConnection> connections, List<int> indexes, bool delete, ref CreateTally tally, List<int>? existed)
    {
        DiscardPending(); // a stale ENOBUFS would otherwise count this batch's acknowledgements as lost
        // Acknowledgements of one batch must fit the receive buffer at once (see ReceiveBufferBytes).
        int maxMessages = Math.Max(1, Options.ReceiveBufferBytes / 2048);
        var batch = new List<int>(Math.Min(maxMessages, indexes.Count));
        int next = 0;
        while (next < indexes.Count)
        {
            uint first = _sequence + 1;
            int used = 0;
            batch.Clear();
            while (next < indexes.Count && used + CtnetlinkCodec.MaxCreateSize <= _tx.Length && batch.Count < maxMessages)
            {
                int index = indexes[next++];
                int length;
                if (delete)
                {
                    length = CtnetlinkCodec.WriteDelete(_tx.AsSpan(used), _sequence + 1, connections[index]);
                }
                else
                {
                    length = CtnetlinkCodec.WriteCreate(_tx.AsSpan(used), _sequence + 1, connections[index], out string? refusal);
                    if (length == 0)
                    {
                        tally.Fail(Errno.EINVAL, "not sent: " + refusal);
                        continue;
                    }
                }
                _sequence++;
                used += length;
                batch.Add(index);
            }
            if (batch.Count == 0)
                continue;
            Errno sent = TrySend(_tx.AsSpan(0, used));
            if (sent != Errno.None)
            {
                // The datagram never reached ctnetlink: none of its entries was created.
                for (int i = 0; i < batch.Count; i++)
                    tally.Fail(sent, $"sendto: {ErrnoException.Describe(sent)}");
                continue;
            }
            tally.Datagrams++;
            CollectAcks(first, batch, ref tally, existed);
        }
    }

    /// <summary>Deletes every entry of the namespace's table (IPCTNL_MSG_CT_DELETE without a tuple), acknowledged.</summary>
    public void Flush()
    {
        DiscardPending();
        uint sequence = ++_sequence;
        Send(_tx.AsSpan(0, CtnetlinkCodec.WriteFlushRequest(_tx, sequence)), "the flush request");
        while (true)
        {
            Errno error = Receive(blocking: true, out int length, out bool truncated);
            if (error != Errno.None)
                throw ReceiveFailure(error, "the flush");
            var reader = new NetlinkMessageReader(_rx.AsSpan(0, length), truncated);
            while (reader.TryRead(out NlMsgHdr header, out int offset, out int msgLength, out _))
            {
                if (header.Type == NlMsgHdr.TypeError && header.Sequence == sequence
                    && CtnetlinkCodec.TryReadError(_rx.AsSpan(offset, msgLength), out Errno answer))
                {
                    if (answer != Errno.None)
                        throw new ErrnoException($"the kernel refused the conntrack flush: {ErrnoException.Describe(answer)}", answer);
                    return;
                }
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    /// <summary>
    /// Reads acknowledgements until each of the batch's <paramref name="count"/> messages from sequence
    /// <paramref name="first"/> has one: a recvmmsg takes up to <see cref="Interop.Shim.MaxBatch"/> of
    /// them, so a 100 000-entry create costs a few hundred receive calls, not one per entry.
    /// </summary>
    private unsafe void CollectAcks(uint first, List<int> batch, ref CreateTally tally, List<int>? existed)
    {
        int count = batch.Count;
        var answered = new bool[count];
        int pending = count;
        bool lost = false;
        while (pending > 0)
        {
            // After an overrun the rest may still be queued: take what is there, then stop.
            Errno error = Errno.None;
            int received;
            fixed (Interop.Shim.RxSlot* slots = _ackSlots)
            {
                received = Interop.Shim.RecvBatch(_socket, slots, (uint)Math.Min(pending, _ackSlots.Length),
                    lost ? Interop.Shim.RecvNonblocking : Interop.Shim.RecvWaitForOne, &error);
            }
            tally.ReceiveCalls++;
            if (received < 0)
            {
                if (error == Errno.EINTR)
                    continue;
                if (error == Errno.ENOBUFS)
                {
                    lost = true; // the kernel dropped acknowledgements: those never read stay unconfirmed
                    continue;
                }
                if (error == Errno.EAGAIN)
                    break; // nothing more will come (reply timeout, or drained after an overrun)
                throw ReceiveFailure(error, "create acknowledgements");
            }
            for (int i = 0; i < received; i++)
            {
                ref readonly Interop.Shim.RxSlot slot = ref _ackSlots[i];
                if (slot.SourcePort != 0)
                    continue; // not from the kernel
                ReadOnlySpan<byte> datagram = _acks.AsSpan(i * AckSlotSize, (int)slot.Length);
                var reader = new NetlinkMessageReader(datagram, (slot.Flags & Interop.Shim.RxTruncated) != 0);
                while (reader.TryRead(out NlMsgHdr header, out int offset, out int msgLength, out _))
                {
                    uint index = header.Sequence - first;
                    if (header.Type != NlMsgHdr.TypeError || index >= (uint)count || answered[index]
                        || !CtnetlinkCodec.TryReadError(datagram.Slice(offset, msgLength), out Errno answer))
                        continue;
                    answered[index] = true;
                    pending--;
                    if (answer == Errno.None)
                        tally.Created++;
                    else if (answer == Errno.EEXIST)
                    {
                        tally.Existed++;
                        existed?.Add(batch[(int)index]);
                    }
                    else
                        tally.Fail(answer, ErrnoException.Describe(answer));
                }
            }
        }
        tally.Unconfirmed += pending;
    }

    private unsafe void Configure()
    {
        PortId = NetlinkSockets.BindAnyPort(_socket);
        // FORCE variants ignore net.core.[rw]mem_max but need CAP_NET_ADMIN, which ctnetlink needs anyway.
        NetlinkSockets.SetReceiveBuffer(_socket, Options.ReceiveBufferBytes);
        // netlink_sendmsg refuses a datagram longer than the send buffer (EMSGSIZE).
        NetlinkSockets.SetSendBuffer(_socket, Math.Max(Options.CreateBatchBytes * 2, 256 << 10));
        // Acknowledgements without the echoed request: 36 bytes each instead of the whole message.
        int on = 1;
        if (Interop.SetSockOpt(_socket, LibC.SOL_NETLINK, Interop.NetlinkCapAck, &on, sizeof(int)) != 0)
            throw ErrnoException.FromLastError("setsockopt(NETLINK_CAP_ACK)");
        NetlinkSockets.SetReceiveTimeout(_socket, Options.ReplyTimeout);
    }

    private void Send(ReadOnlySpan<byte> request, string what)
    {
        Errno error = TrySend(request);
        if (error != Errno.None)
            throw new ErrnoException($"sending {what} to ctnetlink failed: {ErrnoException.Describe(error)}", error);
    }

    private Errno TrySend(ReadOnlySpan<byte> datagram) => NetlinkSockets.TrySendToKernel(_socket, datagram);

    /// <summary>One datagram from the kernel into <see cref="_rx"/> (<see cref="NetlinkSockets.ReceiveFromKernel"/>).</summary>
    private Errno Receive(bool blocking, out int length, out bool truncated) =>
        NetlinkSockets.ReceiveFromKernel(_socket, _rx, blocking, out length, out truncated);

    private void DiscardPending() => NetlinkSockets.DiscardPending(_socket, _rx);

    private ErrnoException ReceiveFailure(Errno error, string what) => error == Errno.EAGAIN
        ? new ErrnoException($"ctnetlink did not answer {what} within {Options.ReplyTimeout.TotalSeconds} s", error)
        : new ErrnoException($"receiving {what} from ctnetlink failed: {ErrnoException.Describe(error)}", error);

    private struct CreateTally
    {
        public int Created, Existed, Failed, Unconfirmed, Datagrams, ReceiveCalls, Replaced;
        public Errno FirstError;
        public string? FirstErrorText;

        public void Fail(Errno error, string text)
        {
            Failed++;
            if (FirstErrorText == null)
            {
                FirstError = error;
                FirstErrorText = text;
            }
        }

        public readonly CtnetlinkCreateResult Result(TimeSpan elapsed) => new()
        {
            Created = Created,
            Existed = Existed,
            Replaced = Replaced,
            Failed = Failed,
            Unconfirmed = Unconfirmed,
            FirstError = FirstError,
            FirstErrorText = FirstErrorText,
            Datagrams = Datagrams,
            ReceiveCalls = ReceiveCalls,
            Elapsed = elapsed,
        };
    }
}
