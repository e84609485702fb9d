using System.Buffers.Binary;
using Ctfw.Conntrack;

namespace Ctfw.Linux.Sync;

/// <summary>
/// conntrackd's FTFW reliability (sync-ftfw.c, network.c) for one peer, with no socket and no clock:
/// datagrams go to an <see cref="IDatagramSink"/>, time comes in as milliseconds. Single-threaded: the
/// owner calls every method from one thread.
/// <para>
/// Sending: messages wait in the tx queue, are stamped with consecutive sequence numbers (starting at
/// time(NULL), control messages included) when <see cref="Flush"/> packs them into datagrams of at most
/// MTU − 28 bytes, and then sit in the resend queue until the peer ACKs their sequence numbers. A NACK
/// moves the messages it names back to the tx queue, to be sent again under new numbers. Every message
/// carries HELLO until the peer answers with HELLO_BACK; a HELLO from the peer is answered with HELLO_BACK
/// on our next message, and empties the resend queue (the peer knows nothing of it).
/// </para>
/// <para>
/// Receiving: the peer's sequence is tracked; every <see cref="FtfwOptions.AckWindow"/> messages in
/// sequence an ACK [first, last] is queued; a gap queues an ACK of what came before it and a NACK
/// [expected, seq − 1]; older numbers are dropped. With nothing sent for <see cref="FtfwOptions.AliveIntervalMs"/>,
/// <see cref="Tick"/> sends an ACK of what arrived since the last one, else an ALIVE.
/// </para>
/// <para>
/// Memory: all messages live in one slot array allocated up front (<see cref="FtfwOptions.QueueLimit"/> ×
/// 192 bytes); the tx queue is a ring of slot numbers, the resend queue a ring in send (= sequence) order
/// with holes where a NACK or ACK took a message out. No allocation after construction, no exception on
/// any input.
/// </para>
/// </summary>
public sealed class FtfwSession
{
    private const int SlotSize = SyncCodec.MaxMessageSize;
    private const int Hole = -1;

    /// <summary>Slots only control messages may take, so ACKs and NACKs still go out when data fills the rest.</summary>
    private const int ControlReserve = 16;

    private readonly FtfwOptions _options;
    private readonly byte[] _slots;
    private readonly ushort[] _slotLength;
    private readonly uint[] _slotSeq;
    // The connection a data slot speaks of, and per connection the sequence number of the last
    // message sent about it: a NACKed message that a later one has superseded is not sent again
    // (it would arrive after the newer state and overwrite it at the peer). conntrackd gets the same
    // by rebuilding resent messages from the entry's current state.
    private readonly ConnTuple[] _slotKey;
    private readonly bool[] _slotHasKey;
    private readonly Dictionary<ConnTuple, uint> _lastSent;
    private readonly int[] _free;
    private int _freeCount;

    private readonly int[] _tx;
    private int _txHead;
    private int _txCount;

    private readonly int[] _rs;
    private int _rsHead;
    private int _rsCount;      // ring positions in use, holes included
    private int _rsLive;

    private readonly byte[] _datagram;
    private int _datagramLength;

    private uint _nextSeq;
    private HelloState _hello;
    private bool _sayHelloBack;
    private long _lastXmitMs = long.MinValue;
    private long _lastNowMs;

    // Receive side (network.c's channel seq tracking, sync-ftfw.c's window).
    private bool _seqSet;
    private uint _lastSeqRecv;
    private int _window;
    private bool _ackFromSet;
    private uint _ackFrom;

    // Resend-queue losses: the newest sequence number purged unacknowledged.
    private bool _purgedAny;
    private uint _lastPurgedSeq;

    private enum HelloState : byte
    {
        Init,
        Say,
        Done,
    }

    private enum Kind : byte
    {
        Data,
        Ack,
        Nack,
        Resync,
        Alive,
        Bad,
    }

    public FtfwSession(FtfwOptions options)
    {
        _options = options ?? new FtfwOptions();
        int capacity = Math.Max(_options.QueueLimit, ControlReserve * 2);
        _slots = new byte[capacity * SlotSize];
        _slotLength = new ushort[capacity];
        _slotSeq = new uint[capacity];
        _slotKey = new ConnTuple[capacity];
        _slotHasKey = new bool[capacity];
        _lastSent = new Dictionary<ConnTuple, uint>(capacity);
        _free = new int[capacity];
        for (int i = 0; i < capacity; i++)
            _free[i] = capacity - 1 - i;
        _freeCount = capacity;
        _tx = new int[capacity];
        _rs = new int[capacity * 2];
        int payload = Math.Clamp(_options.Mtu - SyncWire.UdpOverhead, SlotSize, ushort.MaxValue);
        _datagram = new byte[payload];
        _nextSeq = _options.InitialSequence ?? unchecked((uint)DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        _window = Math.Max(1, _options.AckWindow);
    }

    public FtfwCounters Counters { get; } = new();

    public FtfwOptions Options => _options;

    /// <summary>The sequence number the next message will carry.</summary>
    public uint NextSequence => _nextSeq;

    /// <summary>Messages waiting to be sent.</summary>
    public int Pending => _txCount;

    /// <summary>Messages sent and not yet acknowledged.</summary>
    public int Unacknowledged => _rsLive;

    /// <summary>Reads and clears <see cref="FtfwCounters.NeedsBulk"/>.</summary>
    public bool TakeNeedsBulk()
    {
        bool needs = Counters.NeedsBulk;
        Counters.NeedsBulk = false;
        return needs;
    }

    // ---------------------------------------------------------------- send side

    /// <summary>
    /// Queues a CT message. False (and counted) when every slot holds a message not yet sent
    /// (<see cref="FtfwCounters.QueueOverflows"/>; the owner should bulk-send later) or when the entry
    /// cannot be encoded (<see cref="FtfwCounters.Unrepresentable"/>). Room is made by dropping the oldest
    /// unacknowledged message first, as conntrackd does when its resend queue is full.
    /// </summary>
    public bool Enqueue(SyncMessageType type, in KernelConnection c)
    {
        int slot = Allocate(ControlReserve);
        if (slot < 0)
        {
            Counters.QueueOverflows++;
            Counters.NeedsBulk = true;
            return false;
        }
        int n = SyncCodec.WriteConnection(Slot(slot), type, c);
        if (n == 0)
        {
            _free[_freeCount++] = slot;
            Counters.Unrepresentable++;
            return false;
        }
        _slotLength[slot] = (ushort)n;
        _slotKey[slot] = c.Original;
        _slotHasKey[slot] = true;
        TxAdd(slot);
        return true;
    }

    /// <summary>Sends everything queued, packed into datagrams of at most MTU − 28 bytes.</summary>
    public void Flush(long nowMs, IDatagramSink sink)
    {
        _lastNowMs = nowMs;
        if (_txCount == 0)
            return;
        while (_txCount > 0)
        {
            int slot = _tx[_txHead];
            _txHead = (_txHead + 1) % _tx.Length;
            _txCount--;
            Transmit(slot, sink);
        }
        SendDatagram(sink);
        _lastXmitMs = nowMs;
    }

    /// <summary>The 1 s timer: with nothing sent for the alive interval, an ACK of what arrived since the last one, else ALIVE.</summary>
    public void Tick(long nowMs, IDatagramSink sink)
    {
        _lastNowMs = nowMs;
        if (_lastXmitMs != long.MinValue && nowMs - _lastXmitMs < _options.AliveIntervalMs)
            return;
        if (_ackFromSet && _seqSet)
        {
            QueueControl(SyncWire.FlagAck, _ackFrom, _lastSeqRecv);
            _ackFromSet = false;
            _window = Math.Max(1, _options.AckWindow);
        }
        else
        {
            QueueControl(SyncWire.FlagAlive, 0, 0);
        }
        Flush(nowMs, sink);
    }

    /// <summary>Asks the peer for a bulk send of its table (conntrackd -n): a RESYNC control message, sent now.</summary>
    public void RequestResync(IDatagramSink sink)
    {
        QueueControl(SyncWire.FlagResync, 0, 0);
        Flush(_lastNowMs, sink);
    }

    private void Transmit(int slot, IDatagramSink sink)
    {
        Span<byte> m = Slot(slot);
        int len = _slotLength[slot];
        uint seq = _nextSeq++;
        byte flags = (byte)(m[1] & ~SyncWire.DataFlags);
        if (_hello == HelloState.Init)
            _hello = HelloState.Say;
        if (_hello == HelloState.Say)
            flags |= SyncWire.FlagHello;
        if (_sayHelloBack)
        {
            flags |= SyncWire.FlagHelloBack;
            _sayHelloBack = false;
        }
        m[1] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(m[4..], seq);
        _slotSeq[slot] = seq;
        if (_slotHasKey[slot])
            _lastSent[_slotKey[slot]] = seq;

        if (_datagramLength + len > _datagram.Length)
            SendDatagram(sink);
        m[..len].CopyTo(_datagram.AsSpan(_datagramLength));
        _datagramLength += len;
        Counters.MessagesSent++;

        bool isControl = SyncWire.TypeOf(m) == SyncWire.TypeControl;
        if (isControl && (flags & SyncWire.FlagAlive) != 0 && (flags & (SyncWire.FlagAck | SyncWire.FlagNack | SyncWire.FlagResync)) == 0)
            _free[_freeCount++] = slot;   // ALIVE is not kept for resending (conntrackd frees it too)
        else
            RsAdd(slot);
    }

    private void SendDatagram(IDatagramSink sink)
    {
        if (_datagramLength == 0)
            return;
        sink.Send(_datagram.AsSpan(0, _datagramLength));
        Counters.DatagramsSent++;
        Counters.BytesSent += _datagramLength;
        _datagramLength = 0;
    }

    private void QueueControl(byte flags, uint from, uint to)
    {
        int slot = Allocate(0);
        if (slot < 0)
            return;   // unreachable: the reserve keeps slots for control messages unless they alone fill it
        bool range = (flags & (SyncWire.FlagAck | SyncWire.FlagNack | SyncWire.FlagResync)) != 0;
        int len = range ? SyncWire.AckSize : SyncWire.HeaderSize;
        Span<byte> m = Slot(slot);
        SyncWire.WriteHeader(m, SyncWire.TypeControl, flags, len, 0);
        if (range)
        {
            BinaryPrimitives.WriteUInt32BigEndian(m[8..], from);
            BinaryPrimitives.WriteUInt32BigEndian(m[12..], to);
        }
        _slotLength[slot] = (ushort)len;
        _slotHasKey[slot] = false;
        TxAdd(slot);
        if ((flags & SyncWire.FlagAck) != 0)
            Counters.AcksSent++;
        else if ((flags & SyncWire.FlagNack) != 0)
            Counters.NacksSent++;
        else if ((flags & SyncWire.FlagResync) != 0)
            Counters.ResyncsSent++;
        else
            Counters.AlivesSent++;
    }

    /// <summary>A free slot, leaving <paramref name="reserve"/> free; else the oldest unacknowledged message's slot; else −1.</summary>
    private int Allocate(int reserve)
    {
        if (_freeCount > reserve)
            return _free[--_freeCount];
        while (_rsLive > 0)
        {
            int slot = _rs[_rsHead];
            _rsHead = (_rsHead + 1) % _rs.Length;
            _rsCount--;
            if (slot == Hole)
                continue;
            _rsLive--;
            _purgedAny = true;
            _lastPurgedSeq = _slotSeq[slot];
            Counters.ResendPurged++;
            Forget(slot);
            return slot;
        }
        return -1;
    }

    private Span<byte> Slot(int slot) => _slots.AsSpan(slot * SlotSize, SlotSize);

    private void TxAdd(int slot)
    {
        _tx[(_txHead + _txCount) % _tx.Length] = slot;
        _txCount++;
    }

    private void RsAdd(int slot)
    {
        if (_rsCount == _rs.Length)
            RsCompact();
        _rs[(_rsHead + _rsCount) % _rs.Length] = slot;
        _rsCount++;
        _rsLive++;
    }

    private void RsCompact()
    {
        int write = 0;
        int length = _rs.Length;
        for (int i = 0; i < _rsCount; i++)
        {
            int slot = _rs[(_rsHead + i) % length];
            if (slot != Hole)
                _rs[(_rsHead + write++) % length] = slot;
        }
        _rsCount = write;
    }

    private void RsTrimHead()
    {
        while (_rsCount > 0 && _rs[_rsHead] == Hole)
        {
            _rsHead = (_rsHead + 1) % _rs.Length;
            _rsCount--;
        }
    }

    /// <summary>ACK: frees the messages in [from, to]. NACK: moves them to the tx queue. The queue is in sequence order.</summary>
    private void RsRange(uint from, uint to, bool resend)
    {
        int length = _rs.Length;
        for (int i = 0; i < _rsCount; i++)
        {
            int pos = (_rsHead + i) % length;
            int slot = _rs[pos];
            if (slot == Hole)
                continue;
            uint seq = _slotSeq[slot];
            if (SyncWire.Before(seq, from))
                continue;
            if (SyncWire.Before(to, seq))
                break;
            _rs[pos] = Hole;
            _rsLive--;
            if (resend && !Superseded(slot))
            {
                TxAdd(slot);
                Counters.Resent++;
            }
            else
            {
                if (resend)
                    Counters.Superseded++;
                Release(slot);
            }
        }
        RsTrimHead();
    }

    /// <summary>A later message about the same connection has been sent since this one.</summary>
    private bool Superseded(int slot) =>
        _slotHasKey[slot] && _lastSent.TryGetValue(_slotKey[slot], out uint last) && last != _slotSeq[slot];

    /// <summary>The slot's message leaves the resend queue: if it was the last sent about its connection, forget that.</summary>
    private void Forget(int slot)
    {
        if (_slotHasKey[slot] && _lastSent.TryGetValue(_slotKey[slot], out uint last) && last == _slotSeq[slot])
            _lastSent.Remove(_slotKey[slot]);
        _slotHasKey[slot] = false;
    }

    private void Release(int slot)
    {
        Forget(slot);
        _free[_freeCount++] = slot;
    }

    private void RsClear()
    {
        int length = _rs.Length;
        for (int i = 0; i < _rsCount; i++)
        {
            int slot = _rs[(_rsHead + i) % length];
            if (slot != Hole)
                Release(slot);
        }
        _rsHead = 0;
        _rsCount = 0;
        _rsLive = 0;
        _purgedAny = false;
    }

    // ---------------------------------------------------------------- receive side

    /// <summary>
    /// Takes one datagram from the peer: every message in it is checked, sequence-tracked and digested;
    /// CT messages go to <paramref name="receiver"/>. The ACKs, NACKs and resends it causes are sent before
    /// returning. Malformed input is counted (<see cref="FtfwCounters.Dropped"/>) and dropped.
    /// </summary>
    public void Receive(ReadOnlySpan<byte> datagram, long nowMs, ISyncReceiver receiver, IDatagramSink sink)
    {
        _lastNowMs = nowMs;
        Counters.DatagramsReceived++;
        Counters.BytesReceived += datagram.Length;
        ReadOnlySpan<byte> rest = datagram;
        if (rest.IsEmpty)
            Counters.Drop(SyncError.Truncated, malformed: true);
        while (!rest.IsEmpty)
        {
            // channel handler checks (sync-mode.c): a bad length ends the datagram, there is no resynchronising.
            if (rest.Length < SyncWire.HeaderSize)
            {
                Counters.Drop(SyncError.Truncated, malformed: true);
                break;
            }
            int len = SyncWire.LengthOf(rest);
            if (len < SyncWire.HeaderSize || len > rest.Length)
            {
                Counters.Drop(SyncError.BadLength, malformed: true);
                break;
            }
            if (SyncWire.TypeOf(rest) == SyncWire.TypeControl
                && (SyncWire.FlagsOf(rest) & (SyncWire.FlagAck | SyncWire.FlagNack | SyncWire.FlagResync)) != 0
                && len < SyncWire.AckSize)
            {
                Counters.Drop(SyncError.BadLength, malformed: true);
                break;
            }
            ReadOnlySpan<byte> message = rest[..len];
            rest = rest[len..];
            HandleMessage(message, nowMs, receiver);
        }
        if (_txCount > 0)
            Flush(nowMs, sink);
    }

    private void HandleMessage(ReadOnlySpan<byte> m, long nowMs, ISyncReceiver receiver)
    {
        Counters.MessagesReceived++;
        if (SyncWire.VersionOf(m) != SyncWire.Version)
        {
            Counters.Drop(SyncError.BadVersion, malformed: true);
            return;
        }
        uint seq = SyncWire.SeqOf(m);
        byte flags = SyncWire.FlagsOf(m);
        int windowSize = Math.Max(1, _options.AckWindow);

        if ((flags & SyncWire.FlagHelloBack) != 0 && _hello == HelloState.Say)
        {
            _hello = HelloState.Done;
            Counters.PeerUp = true;
        }

        Kind kind;
        if ((flags & SyncWire.FlagHello) != 0)
        {
            // The peer (re)started: answer HELLO_BACK, restart the ACK window at its number, and forget
            // our resend queue, which it knows nothing about. Its seq is taken whatever it is.
            _sayHelloBack = true;
            Counters.PeerHellos++;
            if (_ackFromSet && SyncWire.Before(seq, _ackFrom))
            {
                _window = windowSize - 1;
                _ackFrom = seq;
            }
            RsClear();
            kind = Digest(m, out SyncError bad);
            if (kind == Kind.Bad)
            {
                Counters.Drop(bad, malformed: true);
                return;
            }
            InWindow(seq, windowSize);
        }
        else if (!_seqSet || seq == unchecked(_lastSeqRecv + 1))
        {
            kind = Digest(m, out SyncError bad);
            if (kind == Kind.Bad)
            {
                Counters.Drop(bad, malformed: true);
                return;
            }
            InWindow(seq, windowSize);
        }
        else if (SyncWire.Before(unchecked(_lastSeqRecv + 1), seq))
        {
            uint expected = unchecked(_lastSeqRecv + 1);
            kind = Digest(m, out SyncError bad);
            if (kind == Kind.Bad)
            {
                Counters.Drop(bad, malformed: true);
                return;
            }
            Counters.SequenceLost += unchecked(seq - expected);
            if (_ackFromSet)
                QueueControl(SyncWire.FlagAck, _ackFrom, unchecked(expected - 1));
            QueueControl(SyncWire.FlagNack, expected, unchecked(seq - 1));
            _window = windowSize - 1;
            _ackFrom = seq;
            _ackFromSet = true;
        }
        else
        {
            Counters.SequenceDelayed++;
            return;
        }

        _seqSet = true;
        _lastSeqRecv = seq;
        Counters.PeerSeen = true;
        Counters.LastReceiveMs = nowMs;

        if (kind == Kind.Resync)
        {
            receiver.OnResyncRequest();
        }
        else if (kind == Kind.Data)
        {
            SyncParse parse = SyncCodec.TryReadConnection(m, out SyncMessageType type, out KernelConnection c, out SyncError error);
            if (parse == SyncParse.Ok)
            {
                Counters.ConnectionsReceived++;
                receiver.OnConnection(type, c);
            }
            else
            {
                Counters.Drop(error, parse == SyncParse.Malformed);
            }
        }
    }

    private void InWindow(uint seq, int windowSize)
    {
        if (!_ackFromSet)
        {
            _ackFromSet = true;
            _ackFrom = seq;
        }
        if (--_window <= 0)
        {
            QueueControl(SyncWire.FlagAck, _ackFrom, seq);
            _window = windowSize;
            _ackFromSet = false;
        }
    }

    /// <summary>sync-ftfw.c digest_msg: what the message is, acting at once on ACK and NACK.</summary>
    private Kind Digest(ReadOnlySpan<byte> m, out SyncError bad)
    {
        bad = SyncError.None;
        byte type = SyncWire.TypeOf(m);
        byte flags = SyncWire.FlagsOf(m);
        if (type <= SyncWire.TypeExpDel && (flags & ~SyncWire.DataFlags) == 0)
            return Kind.Data;
        if (type != SyncWire.TypeControl)
        {
            bad = type <= SyncWire.TypeExpDel ? SyncError.BadFlags : SyncError.BadType;
            return Kind.Bad;
        }
        if ((flags & (SyncWire.FlagAck | SyncWire.FlagNack)) != 0)
        {
            uint from = BinaryPrimitives.ReadUInt32BigEndian(m[8..]);
            uint to = BinaryPrimitives.ReadUInt32BigEndian(m[12..]);
            if (SyncWire.Before(to, from))
            {
                bad = SyncError.BadAckRange;
                return Kind.Bad;
            }
            if ((flags & SyncWire.FlagAck) != 0)
            {
                Counters.AcksReceived++;
                RsRange(from, to, resend: false);
                return Kind.Ack;
            }
            Counters.NacksReceived++;
            if (_purgedAny && !SyncWire.Before(_lastPurgedSeq, from))
                Counters.NeedsBulk = true;
            RsRange(from, to, resend: true);
            return Kind.Nack;
        }
        if ((flags & SyncWire.FlagResync) != 0)
        {
            Counters.ResyncsReceived++;
            return Kind.Resync;
        }
        if ((flags & SyncWire.FlagAlive) != 0)
        {
            Counters.AlivesReceived++;
            return Kind.Alive;
        }
        bad = SyncError.BadFlags;
        return Kind.Bad;
    }
}
