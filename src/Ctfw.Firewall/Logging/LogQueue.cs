using System.Numerics;
using System.Runtime.InteropServices;

namespace Ctfw.Firewall.Logging;

/// <summary>
/// The bounded buffer between the threads that produce log lines (the packet workers' LOG, A/B and
/// rescue lines, the daemon's own lines) and the one thread that writes them out (the daemon's
/// LogWriter). A producer never waits: it claims a slot with one compare-and-swap, or, when all
/// <see cref="Capacity"/> slots hold lines not yet written, counts the line in <see cref="Lost"/>
/// and goes on. A stderr that is slow or not read at all therefore costs lines, never packets.
/// <para>
/// Algorithm: Dmitry Vyukov's bounded MPMC queue
/// (https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue), the one behind
/// the runtime's ConcurrentQueueSegment, with a single consumer. Each slot has a sequence number:
/// the slot of position p (index p mod Capacity) is free for the producer of p while its sequence
/// is p, holds that producer's published line when it is p + 1, and is handed to the producer of
/// p + Capacity when the consumer sets it to p + Capacity. Positions are 64-bit and never wrap.
/// Lock-free, not wait-free: a producer retries only when another producer claimed the same
/// position first.
/// </para>
/// <para>
/// Allocation: a line given as a span (a LOG line formatted on the stack) is copied into the
/// slot's own characters, allocated once (<see cref="MaxLineLength"/> per slot; longer lines are
/// cut); a line given as a string (already allocated by whoever built it) is kept by reference.
/// Neither allocates.
/// </para>
/// </summary>
public sealed class LogQueue
{
    /// <summary>Lines held for the writer: the bursts of the LOG, A/B and rescue rate limits (200) and ~20 s of their sustained 40 lines/s.</summary>
    public const int DefaultCapacity = 1024;

    /// <summary>Characters kept of a line given as a span; a LOG line (at most 1020, as the kernel cuts it) always fits.</summary>
    public const int MaxLineLength = 1024;

    private readonly Slot[] _slots;
    private readonly char[] _chars;
    private readonly long _mask;
    private Positions _positions;
    private long _lost;

    public LogQueue(int capacity = DefaultCapacity)
    {
        if (capacity < 2 || !BitOperations.IsPow2(capacity))
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "a power of two, at least 2");
        _slots = new Slot[capacity];
        _chars = new char[capacity * MaxLineLength];
        _mask = capacity - 1;
        for (int i = 0; i < capacity; i++)
            _slots[i].Sequence = i;
    }

    public int Capacity => _slots.Length;

    /// <summary>Lines refused because every slot was taken.</summary>
    public long Lost => Interlocked.Read(ref _lost); // statistic: a whole 64-bit read; orders nothing

    /// <summary>Lines taken by the consumer (written, or lost by the writer on an error).</summary>
    public long Taken => Volatile.Read(ref _positions.Head); // statistic: a whole 64-bit read

    /// <summary>Lines queued and not yet taken (a slot claimed but not yet filled counts too).</summary>
    // Benign race: two reads, not a snapshot; off by the lines moved in between (statistics).
    public long Pending => Math.Clamp(Volatile.Read(ref _positions.Tail) - Volatile.Read(ref _positions.Head), 0, Capacity);

    /// <summary>Queues a copy of <paramref name="line"/> (cut at <see cref="MaxLineLength"/>); false, and counted as lost, when the queue is full. Never blocks, never allocates.</summary>
    public bool TryEnqueue(ReadOnlySpan<char> line) => TryEnqueue(line, null);

    /// <summary>Queues <paramref name="line"/> by reference; false, and counted as lost, when the queue is full. Never blocks, never allocates.</summary>
    public bool TryEnqueue(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        return TryEnqueue(default, line);
    }

    private bool TryEnqueue(ReadOnlySpan<char> chars, string? text)
    {
        long position = Volatile.Read(ref _positions.Tail);
        while (true)
        {
            int index = (int)(position & _mask);
            ref Slot slot = ref _slots[index];
            // Acquire: pairs with the consumer's release in Release, so the consumer's reads of the
            // slot's previous line are done before this producer overwrites it.
            long diff = Volatile.Read(ref slot.Sequence) - position;
            if (diff == 0)
            {
                // Full fence; winning it makes the slot this producer's alone until it publishes.
                long seen = Interlocked.CompareExchange(ref _positions.Tail, position + 1, position);
                if (seen == position)
                {
                    if (text is null)
                    {
                        int length = Math.Min(chars.Length, MaxLineLength);
                        chars[..length].CopyTo(_chars.AsSpan(index * MaxLineLength, length));
                        slot.Length = length;
                    }
                    slot.Text = text;
                    // Release: publishes Text, Length and the characters; the consumer reads them
                    // only after it has seen this sequence (acquire in TryPeek).
                    Volatile.Write(ref slot.Sequence, position + 1);
                    return true;
                }
                position = seen;
            }
            else if (diff < 0)
            {
                // The slot still holds the line of the previous lap: every slot is taken.
                Interlocked.Increment(ref _lost);
                return false;
            }
            else
            {
                // Another producer claimed this position: try the tail it left.
                position = Volatile.Read(ref _positions.Tail);
            }
        }
    }

    /// <summary>
    /// Consumer side (one thread at a time): the oldest line, without its newline; false when none
    /// is published yet. The span stays valid until <see cref="Release"/>.
    /// </summary>
    public bool TryPeek(out ReadOnlySpan<char> line)
    {
        long position = _positions.Head; // written only by the consumer
        ref Slot slot = ref _slots[(int)(position & _mask)];
        // Acquire: pairs with the producer's release; the line is complete once this reads position + 1.
        if (Volatile.Read(ref slot.Sequence) != position + 1)
        {
            line = default;
            return false;
        }
        line = slot.Text is { } text ? text.AsSpan() : _chars.AsSpan((int)(position & _mask) * MaxLineLength, slot.Length);
        return true;
    }

    /// <summary>Consumer side: frees the slot of the line <see cref="TryPeek"/> returned.</summary>
    public void Release()
    {
        long position = _positions.Head;
        ref Slot slot = ref _slots[(int)(position & _mask)];
        slot.Text = null; // the string may be collected
        // For Pending/Taken only; the slot's hand-over is the sequence below.
        Volatile.Write(ref _positions.Head, position + 1);
        // Release: our reads of the line are done before the producer one lap ahead may refill it.
        Volatile.Write(ref slot.Sequence, position + _slots.Length);
    }

    private struct Slot
    {
        public long Sequence;
        public string? Text;
        public int Length;
    }

    // The producers' claim position and the consumer's position on cache lines of their own, so the
    // CAS of one and the stores of the other do not bounce a shared line.
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Positions
    {
        [FieldOffset(64)] public long Tail;
        [FieldOffset(128)] public long Head;
    }
}
