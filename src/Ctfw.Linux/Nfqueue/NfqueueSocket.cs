using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Ctfw.Linux.Netlink;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// One bound NFQUEUE queue: a NETLINK_NETFILTER socket in the network namespace of the thread that
/// called <see cref="Open"/>, batched receive (one recvmmsg for up to
/// <see cref="NfqueueOptions.ReceiveBatchSize"/> packets) and batched verdicts (<see cref="Verdicts"/>).
/// <para>
/// Threading: one thread owns the socket and calls <see cref="Receive"/>, <see cref="Verdicts"/> and
/// <see cref="Dispose"/>. Receive returns within <see cref="NfqueueOptions.ReceiveTimeout"/>, so the
/// owner can poll a stop flag between calls.
/// </para>
/// <para>
/// Memory: all receive slots are one pinned array allocated at open; packets are views into it.
/// Steady-state Receive and Flush allocate nothing and throw nothing; errors are counted in
/// <see cref="Statistics"/> or returned as <see cref="Errno"/>.
/// </para>
/// </summary>
public sealed class NfqueueSocket : IDisposable, IDatagramSender
{
    private const int RequestBufferSize = 128;

    private readonly SocketHandle _socket;
    private readonly byte[] _rx;
    private readonly Interop.Shim.RxSlot[] _slots;
    private readonly int _slotSize;
    private readonly byte[] _request = new byte[RequestBufferSize];
    private readonly SafeFileHandle? _queueFile;
    private byte[]? _queueFileBuffer;

    // Datagrams held in _slots from the last receive, and where Receive resumes among them.
    private int _slotCount;
    private int _slotIndex;
    private int _messageOffset;
    private uint _sequence;

    private long _receiveCalls;
    private long _receiveSyscalls;
    private bool _lastReceiveShort = true;
    private long _datagrams;
    private long _packets;
    private long _malformed;
    private long _foreign;
    private long _truncated;
    private long _enobufs;
    private long _verdictErrors;
    private Errno _lastVerdictError;
    private uint _lastFailedVerdictId;

    private NfqueueSocket(NfqueueOptions options, SocketHandle socket, SafeFileHandle? queueFile)
    {
        Options = options;
        _socket = socket;
        _queueFile = queueFile;
        _slotSize = options.SlotSize;
        _slots = new Interop.Shim.RxSlot[options.ReceiveBatchSize];
        _rx = GC.AllocateUninitializedArray<byte>(_slotSize * options.ReceiveBatchSize, pinned: true);
        unsafe
        {
            // Pinned (POH): the address is stable for the array's life, so the slots can carry it.
            byte* rx = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_rx, 0);
            for (int i = 0; i < _slots.Length; i++)
            {
                _slots[i].Buffer = (ulong)(rx + (long)i * _slotSize);
                _slots[i].Capacity = (uint)_slotSize;
            }
        }
        Verdicts = new VerdictBatcher(this, options.Queue, options.VerdictBatchSize, options.BatchVerdicts);
    }

    public NfqueueOptions Options { get; }

    public ushort Queue => Options.Queue;

    /// <summary>The netlink port id the kernel assigned (the <c>portid</c> column of nfnetlink_queue).</summary>
    public uint PortId { get; private set; }

    /// <summary>Receive buffer the kernel granted (SO_RCVBUF as read back: twice the request, or capped).</summary>
    public int ReceiveBufferBytes { get; private set; }

    /// <summary>Verdicts for received packets; flushed automatically before <see cref="Receive"/> blocks.</summary>
    public VerdictBatcher Verdicts { get; }

    /// <summary>The error that made <see cref="Receive"/> return -1.</summary>
    public Errno LastError { get; private set; }

    public NfqueueStatistics Statistics
    {
        get
        {
            var s = new NfqueueStatistics
            {
                ReceiveCalls = _receiveCalls,
                ReceiveSyscalls = _receiveSyscalls,
                Datagrams = _datagrams,
                Packets = _packets,
                MalformedMessages = _malformed,
                ForeignDatagrams = _foreign,
                TruncatedDatagrams = _truncated,
                EnobufsErrors = _enobufs,
                VerdictErrors = _verdictErrors,
                LastVerdictError = _lastVerdictError,
                LastFailedVerdictId = _lastFailedVerdictId,
            };
            Verdicts.AddCounters(ref s);
            return s;
        }
    }

    /// <summary>
    /// Opens a NETLINK_NETFILTER socket in the calling thread's network namespace and configures the
    /// queue: BIND, QUEUE_MAXLEN, FLAGS/MASK (GSO always, FAIL_OPEN and CONNTRACK as asked), then
    /// PARAMS (copy mode PACKET), each acknowledged. Copy mode goes last: a queue still in copy mode
    /// NONE delivers nothing to userspace (the kernel drops what reaches it in that window, whatever
    /// the order), so the first packet we see already has every flag applied.
    /// Throws <see cref="ErrnoException"/> with a one-line cause and fix.
    /// </summary>
    public static NfqueueSocket Open(NfqueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Interop.Shim.EnsureCompatible();

        SocketHandle socket = Interop.Socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, Interop.NetlinkNetfilter);
        if (socket.IsInvalid)
        {
            Errno errno = Interop.GetLastErrno();
            socket.Dispose();
            throw NfqueueSetupErrors.Socket(errno);
        }

        NfqueueSocket? queue = null;
        try
        {
            queue = new NfqueueSocket(options, socket, TryOpenQueueFile());
            queue.BindPort();
            queue.ConfigureSocket();
            queue.ConfigureQueue();
            return queue;
        }
        catch
        {
            if (queue is not null)
                queue.Dispose();
            else
                socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Takes over a socket another process bound to <see cref="NfqueueOptions.Queue"/> and handed over
    /// (<see cref="DescriptorPassing"/>): no BIND, no queue configuration — the kernel's queue instance,
    /// its settings and every packet waiting in it stay exactly as they were; only this process's
    /// socket options (receive buffer, timeout) are applied. Checks that the descriptor is a netlink
    /// socket whose port id owns the queue. Throws <see cref="ErrnoException"/> with a one-line cause.
    /// </summary>
    public static NfqueueSocket Adopt(SafeHandle descriptor, NfqueueOptions options)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Interop.Shim.EnsureCompatible();
        if (descriptor is not SocketHandle socket || socket.IsInvalid || socket.IsClosed)
            throw new ErrnoException($"NFQUEUE queue {options.Queue}: the handed-over descriptor is not an open socket", Errno.EBADF);
        var queue = new NfqueueSocket(options, socket, TryOpenQueueFile());
        try
        {
            queue.CheckHandedOver();
            queue.ConfigureSocket();
            return queue;
        }
        catch
        {
            queue.Dispose();
            throw;
        }
    }

    /// <summary>
    /// True while datagrams read by the last recvmmsg have not all been returned by <see cref="Receive"/>:
    /// those packets exist only in this process, so the socket must not change hands before they are answered.
    /// </summary>
    public bool HoldsPackets => _slotIndex < _slotCount;

    /// <summary>The bound socket, for <see cref="DescriptorPassing.Send"/> to a process that takes over.</summary>
    public SafeHandle Descriptor => _socket;

    private unsafe void CheckHandedOver()
    {
        int domain = 0, protocol = 0;
        uint length = sizeof(int);
        if (Interop.GetSockOpt(_socket, LibC.SOL_SOCKET, LibC.SO_DOMAIN, &domain, &length) != 0)
            throw ErrnoException.FromLastError("getsockopt(SO_DOMAIN) on the handed-over descriptor");
        length = sizeof(int);
        if (Interop.GetSockOpt(_socket, LibC.SOL_SOCKET, LibC.SO_PROTOCOL, &protocol, &length) != 0)
            throw ErrnoException.FromLastError("getsockopt(SO_PROTOCOL) on the handed-over descriptor");
        if (domain != LibC.AF_NETLINK || protocol != Interop.NetlinkNetfilter)
            throw new ErrnoException($"NFQUEUE queue {Options.Queue}: the handed-over descriptor is not a NETLINK_NETFILTER socket (domain {domain}, protocol {protocol})", Errno.ENOTSOCK);
        PortId = NetlinkSockets.PortIdOf(_socket);
        if (File.Exists(QueueOwner.QueueFile) && (!QueueOwner.TryFindPort(Options.Queue, out uint owner) || owner != PortId))
            throw new ErrnoException($"NFQUEUE queue {Options.Queue} is not bound to the handed-over socket (port id {PortId})", Errno.ENODEV);
    }

    /// <summary>
    /// Fills <paramref name="packets"/> with queued packets: first any still held from the previous
    /// receive, else from one recvmmsg. Flushes pending verdicts before it would block, then blocks
    /// for at most <see cref="NfqueueOptions.ReceiveTimeout"/>. Returns the number of packets (0 on
    /// timeout or EINTR), or -1 when the socket is unusable (<see cref="LastError"/>). The views are
    /// valid until the next call.
    /// </summary>
    public int Receive(Span<PacketView> packets)
    {
        if (packets.IsEmpty)
            return 0;
        while (true)
        {
            int produced = Drain(packets);
            if (produced > 0)
                return produced;
            Errno error = ReceiveDatagrams(Math.Min(packets.Length, _slots.Length));
            switch (error)
            {
                case Errno.None:
                    continue;
                case Errno.EAGAIN:
                case Errno.EINTR:
                    return 0;
                case Errno.ENOBUFS:
                    _enobufs++; // messages were lost; the socket itself is fine
                    continue;
                default:
                    LastError = error;
                    return -1;
            }
        }
    }

    /// <summary>Reads this queue's line of nfnetlink_queue (kernel drop counters) in the socket's namespace.</summary>
    public bool TryReadKernelCounters(out NfqueueKernelCounters counters)
    {
        counters = default;
        if (_queueFile is null || _queueFile.IsClosed)
            return false;
        _queueFileBuffer ??= new byte[16 * 1024];
        int total = 0;
        while (true)
        {
            if (total == _queueFileBuffer.Length)
                Array.Resize(ref _queueFileBuffer, _queueFileBuffer.Length * 2);
            int read;
            try
            {
                // pread at offset 0 re-runs the seq_file walk: always a fresh snapshot.
                read = RandomAccess.Read(_queueFile, _queueFileBuffer.AsSpan(total), total);
            }
            catch (IOException)
            {
                return false;
            }
            if (read == 0)
                break;
            total += read;
        }
        return NfqueueKernelCounters.TryFind(_queueFileBuffer.AsSpan(0, total), Queue, out counters);
    }

    /// <summary>
    /// Sends any pending verdicts, then closes the socket. The kernel then destroys the queue and
    /// drops the packets still waiting for a verdict (with <c>--queue-bypass</c>, new ones pass).
    /// </summary>
    public void Dispose()
    {
        if (!_socket.IsClosed && Verdicts.HasPending)
            Verdicts.Flush();
        _socket.Dispose();
        _queueFile?.Dispose();
    }

    unsafe Errno IDatagramSender.Send(ReadOnlySpan<byte> datagram)
    {
        Errno error = Errno.None;
        fixed (byte* p = datagram)
        {
            if (Interop.Shim.Send(_socket, p, (uint)datagram.Length, &error) < 0)
                return error == Errno.None ? Errno.EIO : error;
        }
        return Errno.None;
    }

    /// <summary>One recvmmsg through the shim, counted in <see cref="NfqueueStatistics.ReceiveSyscalls"/>.</summary>
    private unsafe int RecvBatch(Interop.Shim.RxSlot* slots, int count, int mode, Errno* error)
    {
        _receiveSyscalls++;
        return Interop.Shim.RecvBatch(_socket, slots, (uint)count, mode, error);
    }

    private unsafe Errno ReceiveDatagrams(int count)
    {
        int received = -1;
        Errno error = Errno.None;
        fixed (Interop.Shim.RxSlot* slots = _slots)
        {
            // After a full receive more packets are likely waiting: take them without blocking and
            // keep collecting verdicts. After a receive that drained the socket (fewer datagrams
            // than asked for) that poll would only return EAGAIN, so go straight to blocking.
            if (Verdicts.HasPending && !_lastReceiveShort)
                received = RecvBatch(slots, count, Interop.Shim.RecvNonblocking, &error);
            if (received < 0 && (error == Errno.None || error == Errno.EAGAIN))
            {
                // About to block: nothing may wait for a verdict while we do.
                Verdicts.Flush();
                error = Errno.None;
                received = RecvBatch(slots, count, Interop.Shim.RecvWaitForOne, &error);
            }
        }
        if (received < 0)
            return error == Errno.None ? Errno.EIO : error;
        _lastReceiveShort = received < count;
        _receiveCalls++;
        _datagrams += received;
        for (int i = 0; i < received; i++)
        {
            if ((_slots[i].Flags & Interop.Shim.RxTruncated) != 0)
                _truncated++;
            if (_slots[i].SourcePort != 0)
                _foreign++;
        }
        _slotCount = received;
        _slotIndex = 0;
        _messageOffset = 0;
        return Errno.None;
    }

    /// <summary>Decodes held datagrams into <paramref name="packets"/>; remembers where it stopped when full.</summary>
    private int Drain(Span<PacketView> packets)
    {
        int produced = 0;
        while (_slotIndex < _slotCount)
        {
            ref readonly Interop.Shim.RxSlot slot = ref _slots[_slotIndex];
            if (slot.SourcePort == 0)
            {
                int slotStart = _slotIndex * _slotSize;
                bool truncated = (slot.Flags & Interop.Shim.RxTruncated) != 0;
                var reader = new NetlinkMessageReader(_rx.AsSpan(slotStart, (int)slot.Length), truncated, _messageOffset);
                while (true)
                {
                    int resumeAt = reader.Offset;
                    if (!reader.TryRead(out NlMsgHdr header, out int offset, out int length, out bool cut))
                        break;
                    if (header.Type == Nfqnl.MsgPacket)
                    {
                        if (produced == packets.Length)
                        {
                            _messageOffset = resumeAt;
                            return produced;
                        }
                        if (NfqueuePacketParser.TryParse(_rx, slotStart + offset, length, cut, out packets[produced]))
                        {
                            produced++;
                            _packets++;
                        }
                        else
                        {
                            _malformed++;
                        }
                    }
                    else if (header.Type == NlMsgHdr.TypeError)
                    {
                        OnError(_rx.AsSpan(slotStart + offset, length), header.Sequence);
                    }
                    // NOOP, DONE, OVERRUN and other subsystems' messages carry nothing for us.
                }
                if (reader.Malformed)
                    _malformed++;
            }
            _slotIndex++;
            _messageOffset = 0;
        }
        return produced;
    }

    /// <summary>
    /// An NLMSG_ERROR in the packet stream. Sequence 0 marks verdicts (configuration uses 1, 2, …, whose
    /// answers were consumed during setup); error 0 is a plain ACK.
    /// </summary>
    private void OnError(ReadOnlySpan<byte> message, uint sequence)
    {
        if (message.Length < NlMsgHdr.Size + NlMsgErr.Size)
        {
            _malformed++;
            return;
        }
        int error = MemoryMarshal.Read<int>(message[(NlMsgHdr.Size + NlMsgErr.ErrorOffset)..]);
        if (error == 0 || sequence != 0)
            return;
        _verdictErrors++;
        _lastVerdictError = (Errno)(-error);
        _lastFailedVerdictId = 0;
        // Without NETLINK_CAP_ACK the kernel echoes the whole offending message: find its NFQA_VERDICT_HDR.
        ReadOnlySpan<byte> echoed = message[(NlMsgHdr.Size + NlMsgErr.MessageOffset)..];
        if (echoed.Length < NetlinkWriter.NfHeaderSize)
            return;
        var attributes = new NetlinkAttributeReader(echoed[NetlinkWriter.NfHeaderSize..]);
        while (attributes.TryRead(out ushort type, out ReadOnlySpan<byte> value))
        {
            if (type == Nfqnl.AttrVerdictHdr && value.Length >= NfqnlMsgVerdictHdr.Size)
            {
                _lastFailedVerdictId = BinaryPrimitives.ReadUInt32BigEndian(value[NfqnlMsgVerdictHdr.IdOffset..]);
                return;
            }
        }
    }

    private static SafeFileHandle? TryOpenQueueFile()
    {
        try
        {
            return File.Exists(QueueOwner.QueueFile)
                ? File.OpenHandle(QueueOwner.QueueFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)
                : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private void BindPort() => PortId = NetlinkSockets.BindAnyPort(_socket);

    private unsafe void ConfigureSocket()
    {
        // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; SO_RCVBUF is capped by it.
        ReceiveBufferBytes = NetlinkSockets.SetReceiveBuffer(_socket, Options.ReceiveBufferBytes);

        if (Options.NoEnobufs)
        {
            int on = 1;
            if (Interop.SetSockOpt(_socket, LibC.SOL_NETLINK, Interop.NetlinkNoEnobufs, &on, sizeof(int)) != 0)
                throw ErrnoException.FromLastError("setsockopt(NETLINK_NO_ENOBUFS)");
        }

        NetlinkSockets.SetReceiveTimeout(_socket, Options.ReceiveTimeout);
    }

    private void ConfigureQueue()
    {
        ushort q = Options.Queue;

        Errno bind = Request(NfqueueRequests.WriteBind(_request, ++_sequence, q));
        if (bind != Errno.None)
            throw BindFailure(bind);

        Errno maxLen = Request(NfqueueRequests.WriteQueueMaxLen(_request, ++_sequence, q, Options.MaxQueueLength));
        if (maxLen != Errno.None)
            throw NfqueueSetupErrors.Step(q, $"setting the queue length to {Options.MaxQueueLength}", maxLen);

        uint flags = Nfqnl.FlagGso | (Options.FailOpen ? Nfqnl.FlagFailOpen : 0) | (Options.Conntrack ? Nfqnl.FlagConntrack : 0);
        const uint Mask = Nfqnl.FlagGso | Nfqnl.FlagFailOpen | Nfqnl.FlagConntrack;
        Errno setFlags;
        int attempts = 0;
        do
        {
            // EAGAIN: CONNTRACK made the kernel load nf_conntrack_netlink; the request must be repeated.
            setFlags = Request(NfqueueRequests.WriteFlags(_request, ++_sequence, q, flags, Mask));
        }
        while (setFlags == Errno.EAGAIN && ++attempts < 5);
        if (setFlags != Errno.None)
            throw NfqueueSetupErrors.Flags(q, flags, Options.Conntrack, setFlags);

        Errno copyMode = Request(NfqueueRequests.WriteParams(_request, ++_sequence, q, Nfqnl.CopyPacket, Options.EffectiveCopyRange));
        if (copyMode != Errno.None)
            throw NfqueueSetupErrors.Step(q, $"setting copy mode PACKET, range {Options.EffectiveCopyRange}", copyMode);

        // Packets that arrived between the copy mode taking effect and its ACK are held in slots
        // [0, _slotCount); the first Receive returns them.
        _slotIndex = 0;
        _messageOffset = 0;
    }

    private ErrnoException BindFailure(Errno errno)
    {
        uint? owner = null;
        string? process = null;
        if (errno is Errno.EPERM or Errno.EBUSY && QueueOwner.TryFindPort(Options.Queue, out uint port) && port != PortId)
        {
            owner = port;
            process = QueueOwner.DescribeProcess(port);
        }
        return NfqueueSetupErrors.Bind(Options.Queue, errno, owner, process, File.Exists(QueueOwner.QueueFile));
    }

    /// <summary>
    /// Sends one configuration request (flagged NLM_F_ACK) and waits for its NLMSG_ERROR answer.
    /// Datagrams carrying packets are kept in the next free slot for <see cref="Receive"/>.
    /// </summary>
    private unsafe Errno Request(int length)
    {
        uint sequence = _sequence;
        var kernel = new Interop.SockAddrNl { Family = (ushort)(int)LibC.AF_NETLINK };
        fixed (byte* p = _request)
        {
            if (Interop.SendTo(_socket, p, (nuint)length, 0, &kernel, (uint)sizeof(Interop.SockAddrNl)) < 0)
                throw ErrnoException.FromLastError("sendto(NFQNL_MSG_CONFIG)");
        }
        long deadline = Stopwatch.GetTimestamp() + (long)(Options.SetupTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            if (_slotCount == _slots.Length)
                throw new ErrnoException($"NFQUEUE queue {Options.Queue}: more than {_slots.Length} packets arrived before the configuration was acknowledged", Errno.ENOBUFS);
            Errno error = Errno.None;
            int received;
            fixed (Interop.Shim.RxSlot* slot = &_slots[_slotCount])
                received = Interop.Shim.RecvBatch(_socket, slot, 1, Interop.Shim.RecvWaitForOne, &error);
            if (received < 0)
            {
                if (error is Errno.EAGAIN or Errno.EINTR or Errno.ENOBUFS && Stopwatch.GetTimestamp() < deadline)
                    continue;
                throw error == Errno.EAGAIN
                    ? new ErrnoException($"NFQUEUE queue {Options.Queue}: the kernel did not answer a configuration request within {Options.SetupTimeout.TotalSeconds} s", Errno.EAGAIN)
                    : new ErrnoException($"recvmmsg(NETLINK_NETFILTER) during setup failed: {ErrnoException.Describe(error)}", error);
            }
            ref Interop.Shim.RxSlot s = ref _slots[_slotCount];
            if (s.SourcePort != 0)
                continue;
            int start = _slotCount * _slotSize;
            var reader = new NetlinkMessageReader(_rx.AsSpan(start, (int)s.Length), (s.Flags & Interop.Shim.RxTruncated) != 0);
            bool keep = false;
            Errno? answer = null;
            while (reader.TryRead(out NlMsgHdr header, out int offset, out int msgLength, out _))
            {
                if (header.Type == Nfqnl.MsgPacket)
                {
                    keep = true;
                }
                else if (header.Type == NlMsgHdr.TypeError && header.Sequence == sequence && msgLength >= NlMsgHdr.Size + sizeof(int))
                {
                    answer = (Errno)(-MemoryMarshal.Read<int>(_rx.AsSpan(start + offset + NlMsgHdr.Size)));
                }
            }
            if (keep)
            {
                _slotCount++;
                _datagrams++;
            }
            if (answer is { } result)
                return result;
        }
    }
}
