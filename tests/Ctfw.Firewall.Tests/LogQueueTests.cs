using System.Text;
using Ctfw.Firewall.Logging;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall.Tests;

/// <summary>The consumer side of a <see cref="LogQueue"/> as tests play it (the daemon's log writer thread otherwise).</summary>
internal static class QueuedLines
{
    public static void DrainInto(LogQueue queue, StringBuilder text)
    {
        while (queue.TryPeek(out ReadOnlySpan<char> line))
        {
            text.Append(line).Append('\n');
            queue.Release();
        }
    }

    public static string Drain(LogQueue queue)
    {
        var text = new StringBuilder();
        DrainInto(queue, text);
        return text.ToString();
    }

    public static List<string> Lines(LogQueue queue)
    {
        var lines = new List<string>();
        while (queue.TryPeek(out ReadOnlySpan<char> line))
        {
            lines.Add(line.ToString());
            queue.Release();
        }
        return lines;
    }
}

public sealed class LogQueueTests
{
    [Fact]
    public void TryEnqueue_QueueFull_RefusesAtOnceAndCountsLost()
    {
        var queue = new LogQueue(4);
        for (int i = 0; i < 4; i++)
            Assert.True(queue.TryEnqueue($"line {i}".AsSpan()));
        Assert.False(queue.TryEnqueue("one too many"));
        Assert.False(queue.TryEnqueue("two too many".AsSpan()));

        Assert.Equal(2, queue.Lost);
        Assert.Equal(4, queue.Pending);
        Assert.Equal(["line 0", "line 1", "line 2", "line 3"], QueuedLines.Lines(queue));
        Assert.Equal(0, queue.Pending);
        Assert.Equal(4, queue.Taken);
    }

    [Fact]
    public void TryEnqueue_ManyLaps_KeepsOrderOfSpanAndStringLines()
    {
        var queue = new LogQueue(8);
        var expected = new List<string>();
        var got = new List<string>();
        for (int i = 0; i < 8 * 50; i++)
        {
            string line = $"line {i}";
            Assert.True(i % 3 == 0 ? queue.TryEnqueue(line) : queue.TryEnqueue(line.AsSpan()));
            expected.Add(line);
            if (i % 5 == 4)
                got.AddRange(QueuedLines.Lines(queue)); // drained at odd moments, so slots are reused at every offset
        }
        got.AddRange(QueuedLines.Lines(queue));
        Assert.Equal(expected, got);
        Assert.Equal(0, queue.Lost);
    }

    [Fact]
    public void Release_AfterFull_SlotsTakeLinesAgain()
    {
        var queue = new LogQueue(2);
        Assert.True(queue.TryEnqueue("a"));
        Assert.True(queue.TryEnqueue("b"));
        Assert.False(queue.TryEnqueue("c"));
        Assert.True(queue.TryPeek(out ReadOnlySpan<char> first));
        Assert.Equal("a", first.ToString());
        Assert.False(queue.TryEnqueue("d")); // peeked is not released: the slot is still the consumer's
        queue.Release();
        Assert.True(queue.TryEnqueue("e"));
        Assert.Equal(["b", "e"], QueuedLines.Lines(queue));
        Assert.Equal(2, queue.Lost);
    }

    [Fact]
    public void TryEnqueue_SpanLongerThanASlot_IsCut_StringIsKeptWhole()
    {
        var queue = new LogQueue(2);
        string longLine = new('x', LogQueue.MaxLineLength + 100);
        Assert.True(queue.TryEnqueue(longLine.AsSpan()));
        Assert.True(queue.TryEnqueue(longLine));
        List<string> lines = QueuedLines.Lines(queue);
        Assert.Equal(LogQueue.MaxLineLength, lines[0].Length);
        Assert.Equal(longLine, lines[1]);
        Assert.True(LogFormatter.MaxLineLength <= LogQueue.MaxLineLength, "a LOG line must fit a slot whole");
    }

    [Fact]
    public void TryEnqueue_Span_AllocatesNothing()
    {
        var queue = new LogQueue(64);
        Span<char> line = stackalloc char[200];
        line.Fill('x');
        queue.TryEnqueue(line);
        QueuedLines.Lines(queue); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200; i++)
            queue.TryEnqueue(line); // 64 taken, the rest lost: both paths
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(64, queue.Pending);
        Assert.Equal(200 - 64, queue.Lost);
    }

    [Fact]
    public void LogSink_LogHit_AllocatesNothing()
    {
        var buffer = new byte[128];
        int n = PacketBuilder.Tcp(buffer, new TcpSpec
        {
            Src = IpAddress.FromV4(0x0A630102),
            Dst = IpAddress.FromV4(0x0A630202),
            SrcPort = 40001,
            DstPort = 25,
            Seq = 1000,
            Flags = TcpFlags.Syn,
            Window = 64240,
        });
        Assert.Equal(InvalidReason.None, PacketParser.Parse(buffer.AsSpan(0, n), out ParsedPacket p));
        var facts = new PacketFacts(Hook.Forward, in p, buffer.AsSpan(0, n), InvalidReason.None) { Length = n };
        var options = new LogOptions { Prefix = "smtp: ", Flags = LogFlags.TcpSequence | LogFlags.TcpOptions };
        var queue = new LogQueue(64);
        var sink = new LogSink(queue);
        sink.Write(facts, options, now: 0); // warm up (JIT)
        QueuedLines.Lines(queue);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 80; i++)
            sink.Write(facts, options, now: 0); // within the burst: 64 queued, 16 lost to the full queue
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(1 + 64, sink.Written);
        Assert.Equal(16, queue.Lost);
        string first = QueuedLines.Lines(queue)[0];
        Assert.StartsWith("smtp: IN=", first, StringComparison.Ordinal);
        Assert.Contains(" SRC=10.99.1.2 DST=10.99.2.2 ", first, StringComparison.Ordinal);
    }

    [Fact]
    public void RateLimitedLines_NoticeRefusedByAFullQueue_IsAnnouncedWithTheNextLine()
    {
        var queue = new LogQueue(2);
        var lines = new RateLimitedLines(queue, "ctfw: ", "LOG lines", perSecond: 1, burst: 1);
        Assert.True(lines.TryAcquire(0));
        lines.WriteLine("first");
        Assert.False(lines.TryAcquire(0));
        Assert.True(queue.TryEnqueue("filler")); // the queue is full now
        Assert.True(lines.TryAcquire(1000));
        lines.WriteLine("second"); // refused, and so is the notice
        Assert.Equal(1, lines.Written);
        QueuedLines.Lines(queue);

        Assert.True(lines.TryAcquire(2000));
        lines.WriteLine("third");
        Assert.Equal(["ctfw: 1 LOG lines suppressed (rate limit 1/s)", "third"], QueuedLines.Lines(queue));
        Assert.Equal(2, lines.Written);
        Assert.Equal(2, queue.Lost);
    }

    /// <summary>
    /// Producers racing each other and a consumer over a small queue: every line comes out whole and
    /// once, each producer's lines in the order it queued them, and every refused line is counted.
    /// A broken publication (sequence stored before the text, two producers given one slot) shows
    /// as a torn or duplicated line.
    /// </summary>
    [Fact]
    public void TryEnqueue_ConcurrentProducersAndConsumer_EveryLineWholeOnceInOrder()
    {
        const int Producers = 4, PerProducer = 40_000;
        var queue = new LogQueue(64);
        long accepted = 0;
        var start = new Barrier(Producers + 1);
        var threads = new Thread[Producers];
        for (int t = 0; t < Producers; t++)
        {
            int id = t;
            threads[t] = new Thread(() =>
            {
                Span<char> line = stackalloc char[64];
                start.SignalAndWait();
                for (int i = 0; i < PerProducer; i++)
                {
                    // "p<id> <i> " then the id's letter to a length that varies with i: a torn line mixes them.
                    int length = Format(line, id, i);
                    bool ok = i % 2 == 0 ? queue.TryEnqueue(line[..length]) : queue.TryEnqueue(line[..length].ToString());
                    if (ok)
                        Interlocked.Increment(ref accepted);
                }
            });
            threads[t].Start();
        }

        int[] next = new int[Producers];
        long consumed = 0;
        var done = false;
        Span<char> expected = stackalloc char[64];
        start.SignalAndWait();
        while (true)
        {
            while (queue.TryPeek(out ReadOnlySpan<char> line))
            {
                int id = line[1] - '0';
                int space = line[3..].IndexOf(' ') + 3;
                int i = int.Parse(line[3..space], provider: null);
                Assert.True(i >= next[id], $"producer {id}: line {i} after {next[id] - 1}");
                int length = Format(expected, id, i);
                Assert.Equal(expected[..length].ToString(), line.ToString());
                next[id] = i + 1;
                consumed++;
                queue.Release();
            }
            if (done)
                break;
            done = threads.All(t => !t.IsAlive); // one more pass after the producers ended
        }

        Assert.Equal(Interlocked.Read(ref accepted), consumed);
        Assert.Equal((long)Producers * PerProducer, consumed + queue.Lost);
        Assert.True(consumed > 0 && queue.Lost > 0, $"consumed {consumed}, lost {queue.Lost}: the race did not fill the queue");
    }

    private static int Format(Span<char> line, int id, int i)
    {
        line[0] = 'p';
        line[1] = (char)('0' + id);
        line[2] = ' ';
        i.TryFormat(line[3..], out int digits, provider: null);
        int n = 3 + digits;
        line[n++] = ' ';
        int end = n + i % 40;
        line[n..end].Fill((char)('a' + id));
        return end;
    }
}
