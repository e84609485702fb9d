using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Ctfw.Conntrack;
using Ctfw.Packets;

namespace Ctfw.Bench.Fixtures;

/// <summary>
/// A tracker holding <c>flows</c> ESTABLISHED TCP/IPv4 connections and a replay trace that keeps
/// them that way forever. One <em>round</em> of the trace carries, for every flow, a client data
/// segment (ACK|PSH, <see cref="PayloadBytes"/> bytes) and the server's pure ACK of it, both with
/// NOP,NOP,TS options as Linux sends them. The 2 × flows packets are interleaved at random, with
/// each flow's data segment placed before its ACK (an ACK of unseen data is INVALID).
///
/// <para>All packets live in one byte array, addressed by (offset, length). When the replay wraps,
/// <see cref="NextRound"/> advances every client sequence number and every server ACK number by
/// <see cref="PayloadBytes"/> in place, fixing the TCP checksum incrementally (RFC 1624), so each
/// round is new, in-window data rather than a retransmission: the tracker takes its main path
/// (window advance, max-ack update) and never the "ignore" or retransmission paths.</para>
/// </summary>
internal sealed class EstablishedTrace
{
    public const int PayloadBytes = 64;
    private const int Ipv4HeaderLength = 20;
    private const int TcpSeqOffset = 4;
    private const int TcpAckOffset = 8;
    private const int TcpChecksumOffset = 16;
    private const ushort ClientWindow = 502;   // × 2^7 = 64 256 bytes
    private const ushort ServerWindow = 509;   // × 2^7 = 65 152 bytes
    private const sbyte WindowScale = 7;

    [StructLayout(LayoutKind.Sequential)]
    public struct Slot
    {
        public int Offset;
        public ushort Length;
        /// <summary>True for the client's data segment (ORIGINAL), false for the server's ACK (REPLY).</summary>
        public bool FromClient;
    }

    public readonly ConntrackEngine Engine;
    public readonly ConntrackWorker Worker;
    public readonly int Flows;
    public readonly byte[] Buffer;
    public readonly Slot[] Slots;

    /// <summary>Clock (ms) passed with every packet; moves 1 ms per round.</summary>
    public long Now;
    public int Rounds;
    private int _cursor;

    public EstablishedTrace(int flows, int seed = 1, int? max = null)
    {
        Flows = flows;
        Now = 1_000_000;
        var settings = new ConntrackSettings();
        Check(settings.Set("nf_conntrack_max", (max ?? Math.Max(262_144, flows * 2)).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Engine = new ConntrackEngine(settings, Now, maxWorkers: 2, hashSeed: (ulong)seed);
        Worker = Engine.CreateWorker();

        Handshake();
        Engine.Maintain(Now); // arm the timer wheel now, not during the measurement

        // Packet sizes: 20 IP + 32 TCP (20 + NOP,NOP,TS) [+ payload].
        int dataLength = Ipv4HeaderLength + 32 + PayloadBytes;
        int ackLength = Ipv4HeaderLength + 32;
        Buffer = GC.AllocateArray<byte>(flows * (dataLength + ackLength), pinned: true);
        Slots = new Slot[flows * 2];

        var rng = new Random(seed);
        int[] order = new int[flows * 2];
        for (int i = 0; i < order.Length; i++)
            order[i] = i >> 1;
        rng.Shuffle(order);
        bool[] dataPlaced = new bool[flows];
        int offset = 0;
        for (int i = 0; i < order.Length; i++)
        {
            int f = order[i];
            bool fromClient = !dataPlaced[f];
            dataPlaced[f] = true;
            int n = fromClient
                ? Build(Buffer.AsSpan(offset), f, fromClient: true, ClientIsn(f) + 1, ServerIsn(f) + 1, PayloadBytes)
                : Build(Buffer.AsSpan(offset), f, fromClient: false, ServerIsn(f) + 1, ClientIsn(f) + 1 + PayloadBytes, 0);
            Slots[i] = new Slot { Offset = offset, Length = (ushort)n, FromClient = fromClient };
            offset += n;
        }
    }

    public int PacketsPerRound => Slots.Length;

    public ReadOnlySpan<byte> Packet(int slot)
    {
        Slot s = Slots[slot];
        return new ReadOnlySpan<byte>(Buffer, s.Offset, s.Length);
    }

    /// <summary>
    /// Moves the trace to the next round: client SEQ and server ACK numbers advance by one
    /// payload, checksums are patched incrementally, and the clock moves 1 ms.
    /// </summary>
    public void NextRound()
    {
        Span<byte> buffer = Buffer;
        foreach (Slot s in Slots)
        {
            int tcp = s.Offset + Ipv4HeaderLength;
            AddToField(buffer, tcp + (s.FromClient ? TcpSeqOffset : TcpAckOffset), tcp + TcpChecksumOffset, PayloadBytes);
        }
        Now++;
        Rounds++;
    }

    /// <summary>
    /// Classifies the next <paramref name="packets"/> packets of the endless replay inside one epoch
    /// (as the daemon does per receive batch) and returns how many were ESTABLISHED. This loop is
    /// the measured code of the classify benchmarks and the quick run.
    /// </summary>
    public int Replay(int packets, in PacketContext ctx)
    {
        ConntrackWorker worker = Worker;
        byte[] buffer = Buffer;
        Slot[] slots = Slots;
        int cursor = _cursor;
        int established = 0;
        worker.Enter();
        for (int i = 0; i < packets; i++)
        {
            if (cursor == slots.Length)
            {
                NextRound();
                cursor = 0;
            }
            Slot s = slots[cursor++];
            worker.Process(new ReadOnlySpan<byte>(buffer, s.Offset, s.Length), Now, ctx, out Classification r);
            established += r.State == CtState.Established ? 1 : 0;
        }
        worker.Exit();
        _cursor = cursor;
        return established;
    }

    private PacketSlice[]? _slices;
    private Classification[]? _results;

    /// <summary>
    /// As <see cref="Replay"/>, through <see cref="ConntrackWorker.ProcessBatch"/> in receive-sized
    /// batches of <see cref="ConntrackWorker.MaxBatch"/> packets.
    /// </summary>
    public int ReplayBatched(int packets, in PacketContext ctx)
    {
        if (_slices == null)
        {
            _slices = new PacketSlice[Slots.Length];
            for (int i = 0; i < Slots.Length; i++)
                _slices[i] = new PacketSlice(Slots[i].Offset, Slots[i].Length);
            _results = new Classification[ConntrackWorker.MaxBatch];
        }
        ConntrackWorker worker = Worker;
        int cursor = _cursor;
        int established = 0;
        worker.Enter();
        while (packets > 0)
        {
            if (cursor == _slices.Length)
            {
                NextRound();
                cursor = 0;
            }
            int n = Math.Min(Math.Min(packets, ConntrackWorker.MaxBatch), _slices.Length - cursor);
            worker.ProcessBatch(Buffer, _slices.AsSpan(cursor, n), Now, ctx, _results);
            for (int i = 0; i < n; i++)
                established += _results![i].State == CtState.Established ? 1 : 0;
            cursor += n;
            packets -= n;
        }
        worker.Exit();
        _cursor = cursor;
        return established;
    }

    /// <summary>Position in the current round (for benchmarks that walk the trace themselves).</summary>
    public ref int Cursor => ref _cursor;

    /// <summary>
    /// Processes one full round and checks every packet: ESTABLISHED, in the expected direction,
    /// TCP state ESTABLISHED, taken by the tracker's main path (not "ignored"). Leaves the trace at
    /// the start of the next round. Throws on the first deviation.
    /// </summary>
    public void ValidateRound(bool verifyChecksums)
    {
        if (_cursor != 0)
            throw new InvalidOperationException("validate only at a round boundary");
        var ctx = new PacketContext { VerifyChecksums = verifyChecksums };
        Worker.Enter();
        try
        {
            for (int i = 0; i < Slots.Length; i++)
            {
                Worker.Process(Packet(i), Now, ctx, out Classification r);
                CtDirection expected = Slots[i].FromClient ? CtDirection.Original : CtDirection.Reply;
                if (r.State != CtState.Established || r.Direction != expected || r.TcpState != TcpState.Established || r.Ignored)
                {
                    throw new InvalidOperationException(
                        $"round {Rounds}, packet {i}: expected ESTABLISHED/{expected.Name()}/tcp ESTABLISHED, got " +
                        $"{r.State.Name()}/{r.Direction.Name()}/tcp {r.TcpState.Name()} ignored={r.Ignored} reason={r.Reason.Name()}");
                }
            }
        }
        finally
        {
            Worker.Exit();
        }
        NextRound();
    }

    private static uint ClientIsn(int flow) => unchecked((uint)flow * 2654435761u);

    private static uint ServerIsn(int flow) => ~ClientIsn(flow) * 40503u;

    private void Handshake()
    {
        Span<byte> buf = stackalloc byte[128];
        var ctx = new PacketContext { VerifyChecksums = true };
        Worker.Enter();
        try
        {
            for (int f = 0; f < Flows; f++)
            {
                uint c = ClientIsn(f), s = ServerIsn(f);
                Expect(Send(buf, f, true, TcpFlags.Syn, c, 0, ctx), CtState.New, TcpState.SynSent, f);
                Expect(Send(buf, f, false, TcpFlags.Syn | TcpFlags.Ack, s, c + 1, ctx), CtState.Established, TcpState.SynRecv, f);
                Expect(Send(buf, f, true, TcpFlags.Ack, c + 1, s + 1, ctx), CtState.Established, TcpState.Established, f);
            }
        }
        finally
        {
            Worker.Exit();
        }
        if (Engine.Count != Flows)
            throw new InvalidOperationException($"expected {Flows} entries after the handshakes, found {Engine.Count}");
    }

    private Classification Send(Span<byte> buf, int flow, bool fromClient, TcpFlags flags, uint seq, uint ack, in PacketContext ctx)
    {
        TcpSpec spec = Spec(flow, fromClient, flags, seq, ack, 0);
        if ((flags & TcpFlags.Syn) != 0)
        {
            spec.Mss = 1460;
            spec.SackPermitted = true;
            spec.WindowScale = WindowScale;
            spec.Window = 64240;
        }
        int n = PacketBuilder.Tcp(buf, spec);
        Worker.Process(buf[..n], Now, ctx, out Classification r);
        return r;
    }

    private static int Build(Span<byte> buf, int flow, bool fromClient, uint seq, uint ack, int payload) =>
        PacketBuilder.Tcp(buf, Spec(flow, fromClient, fromClient ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack, seq, ack, payload));

    private static TcpSpec Spec(int flow, bool fromClient, TcpFlags flags, uint seq, uint ack, int payload) => new()
    {
        Src = fromClient ? SyntheticFlows.Client(flow) : SyntheticFlows.Server(flow),
        Dst = fromClient ? SyntheticFlows.Server(flow) : SyntheticFlows.Client(flow),
        SrcPort = fromClient ? SyntheticFlows.ClientPort(flow) : SyntheticFlows.ServerPort,
        DstPort = fromClient ? SyntheticFlows.ServerPort : SyntheticFlows.ClientPort(flow),
        Seq = seq,
        Ack = ack,
        Flags = flags,
        Window = fromClient ? ClientWindow : ServerWindow,
        PayloadLength = payload,
        PayloadFill = 0x5A,
        Timestamp = true,
        TsVal = (uint)(fromClient ? 1000 + flow : 5000 + flow),
        TsEcr = (uint)(fromClient ? 5000 + flow : 1000 + flow),
    };

    private static void Expect(in Classification r, CtState state, TcpState tcp, int flow)
    {
        if (r.State != state || r.TcpState != tcp)
            throw new InvalidOperationException($"handshake of flow {flow}: expected {state.Name()}/{tcp.Name()}, got {r.State.Name()}/{r.TcpState.Name()} ({r.Reason.Name()})");
    }

    private static void Check(string? error)
    {
        if (error != null)
            throw new InvalidOperationException(error);
    }

    /// <summary>Adds <paramref name="delta"/> to a big-endian 32-bit field and patches the checksum (RFC 1624 eqn. 3).</summary>
    private static void AddToField(Span<byte> buffer, int field, int checksum, uint delta)
    {
        uint old = BinaryPrimitives.ReadUInt32BigEndian(buffer[field..]);
        uint updated = old + delta;
        BinaryPrimitives.WriteUInt32BigEndian(buffer[field..], updated);
        // HC' = ~(~HC + ~m + m') over the two 16-bit words of the field.
        uint sum = (ushort)~BinaryPrimitives.ReadUInt16BigEndian(buffer[checksum..]);
        sum += (~old >> 16) + (~old & 0xFFFF) + (updated >> 16) + (updated & 0xFFFF);
        sum = (sum & 0xFFFF) + (sum >> 16);
        sum = (sum & 0xFFFF) + (sum >> 16);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[checksum..], (ushort)~sum);
    }
}
