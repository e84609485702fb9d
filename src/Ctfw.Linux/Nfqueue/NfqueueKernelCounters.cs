using System.Buffers.Text;

namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// One line of <c>/proc/net/netfilter/nfnetlink_queue</c> (per network namespace), as
/// nfnetlink_queue.c seq_show prints it: queue, portid, queued, copy_mode, copy_range,
/// queue_dropped, user_dropped, id_sequence, 1.
/// </summary>
public readonly record struct NfqueueKernelCounters(
    ushort Queue,
    uint PortId,
    uint Queued,
    byte CopyMode,
    uint CopyRange,
    uint QueueDropped,
    uint UserDropped,
    uint LastPacketId)
{
    /// <summary>Finds <paramref name="queue"/> in the file's text. Malformed lines are skipped.</summary>
    public static bool TryFind(ReadOnlySpan<byte> text, ushort queue, out NfqueueKernelCounters counters)
    {
        counters = default;
        while (!text.IsEmpty)
        {
            int newline = text.IndexOf((byte)'\n');
            ReadOnlySpan<byte> line = newline < 0 ? text : text[..newline];
            text = newline < 0 ? default : text[(newline + 1)..];
            if (TryParseLine(line, out NfqueueKernelCounters parsed) && parsed.Queue == queue)
            {
                counters = parsed;
                return true;
            }
        }
        return false;
    }

    internal static bool TryParseLine(ReadOnlySpan<byte> line, out NfqueueKernelCounters counters)
    {
        counters = default;
        Span<uint> columns = stackalloc uint[8];
        for (int i = 0; i < columns.Length; i++)
        {
            line = line.TrimStart((byte)' ');
            if (!Utf8Parser.TryParse(line, out uint value, out int consumed) || consumed == 0)
                return false;
            columns[i] = value;
            line = line[consumed..];
        }
        if (columns[0] > ushort.MaxValue || columns[3] > byte.MaxValue)
            return false;
        counters = new NfqueueKernelCounters(
            (ushort)columns[0], columns[1], columns[2], (byte)columns[3], columns[4], columns[5], columns[6], columns[7]);
        return true;
    }
}
