using System.Diagnostics;
using System.Text;
using Ctfw.Cli.Daemon;
using Ctfw.Firewall.Logging;

namespace Ctfw.Cli.Tests;

/// <summary>The daemon's stderr writer thread and its TextWriter face, over streams that drain, block or fail.</summary>
public sealed class LogWriterTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(10);

    [Fact]
    public void Stop_WritesEveryQueuedLineInOrder_AsUtf8WithNewlines()
    {
        var queue = new LogQueue(16);
        using var output = new MemoryStream();
        var writer = new LogWriter(queue, output);
        writer.Start();
        queue.TryEnqueue("ctfw: running");
        queue.TryEnqueue("smtp: IN=lan0 OUT=wan0 ".AsSpan());
        queue.TryEnqueue("ctfw: stopped après 1.0 s");

        Assert.True(writer.Stop(s_long));
        Assert.Equal("ctfw: running\nsmtp: IN=lan0 OUT=wan0 \nctfw: stopped après 1.0 s\n", Encoding.UTF8.GetString(output.ToArray()));
        Assert.Equal(3, writer.Written);
        Assert.Equal(0, queue.Pending);
    }

    [Fact]
    public void Writer_LinesQueuedWhileRunning_AreWrittenWithoutAStop()
    {
        var queue = new LogQueue(16);
        using var output = new GatedStream(open: true);
        var writer = new LogWriter(queue, output);
        writer.Start();
        queue.TryEnqueue("one");
        Assert.True(SpinWait.SpinUntil(() => writer.Written == 1, s_long));
        queue.TryEnqueue("two");
        Assert.True(SpinWait.SpinUntil(() => writer.Written == 2, s_long));
        Assert.True(writer.Stop(s_long));
        Assert.Equal("one\ntwo\n", output.Text);
    }

    [Fact]
    public void Writer_StreamBlocked_ProducersGoOn_FullQueueCountsLost()
    {
        var queue = new LogQueue(8);
        using var output = new GatedStream(open: false);
        var writer = new LogWriter(queue, output);
        writer.Start();
        queue.TryEnqueue("first");
        Assert.True(output.Entered.Wait(s_long), "the writer never wrote");

        // The writer sits in its write; producers fill the queue and then lose lines, none waits.
        var clock = Stopwatch.StartNew();
        int accepted = 0;
        for (int i = 0; i < 100; i++)
        {
            if (queue.TryEnqueue($"line {i}"))
                accepted++;
        }
        clock.Stop();
        Assert.Equal(8, accepted);
        Assert.Equal(92, queue.Lost);
        Assert.Equal(8, queue.Pending);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"100 lines took {clock.Elapsed}");

        output.Open();
        Assert.True(writer.Stop(s_long));
        Assert.Equal("first\n" + string.Concat(Enumerable.Range(0, 8).Select(i => $"line {i}\n")), output.Text);
        Assert.Equal(9, writer.Written);
    }

    [Fact]
    public void Stop_StreamNeverDrains_ReturnsAtTheDeadline_WriterFinishesLater()
    {
        var queue = new LogQueue(8);
        using var output = new GatedStream(open: false);
        var writer = new LogWriter(queue, output);
        writer.Start();
        queue.TryEnqueue("stuck");
        Assert.True(output.Entered.Wait(s_long));
        queue.TryEnqueue("counters at stop");

        var clock = Stopwatch.StartNew();
        bool finished = writer.Stop(TimeSpan.FromMilliseconds(300));
        clock.Stop();
        Assert.False(finished);
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(3));
        Assert.Equal(0, writer.Written);

        // Should the output drain after all, the writer finishes what was queued before the stop.
        output.Open();
        Assert.True(writer.Stop(s_long));
        Assert.Equal("stuck\ncounters at stop\n", output.Text);
    }

    [Fact]
    public void Writer_WriteFails_CountsTheBatchAsWriteErrors_AndGoesOn()
    {
        var queue = new LogQueue(8);
        using var output = new GatedStream(open: true) { FailNextWrites = 1 };
        var writer = new LogWriter(queue, output);
        queue.TryEnqueue("a");
        queue.TryEnqueue("b");
        writer.Start();
        Assert.True(SpinWait.SpinUntil(() => writer.WriteErrors == 2, s_long));
        queue.TryEnqueue("c");
        Assert.True(writer.Stop(s_long));
        Assert.Equal("c\n", output.Text);
        Assert.Equal(1, writer.Written);
    }

    [Fact]
    public void Writer_LineLongerThanItsBuffer_ArrivesWhole()
    {
        var queue = new LogQueue(4);
        using var output = new MemoryStream();
        var writer = new LogWriter(queue, output);
        string huge = string.Concat(Enumerable.Repeat("reload failed: é ", 20_000)); // 340 000 chars, 360 000 bytes
        queue.TryEnqueue("before");
        queue.TryEnqueue(huge);
        queue.TryEnqueue("after");
        writer.Start();
        Assert.True(writer.Stop(s_long));
        Assert.Equal($"before\n{huge}\nafter\n", Encoding.UTF8.GetString(output.ToArray()));
        Assert.Equal(3, writer.Written);
    }

    [Fact]
    public void LogQueueTextWriter_WholeLinesAndPieces_BecomeOneQueuedLineEach()
    {
        var queue = new LogQueue(16);
        using var text = new LogQueueTextWriter(queue);
        text.WriteLine("ctfw: running");
        text.Write("ctfw: reload");
        text.Write(':');
        text.WriteLine(" 3 rules\nsecond line");
        text.WriteLine();
        text.WriteLine("last".AsSpan());
        Assert.Equal(["ctfw: running", "ctfw: reload: 3 rules", "second line", "", "last"], Lines(queue));
    }

    [Fact]
    public void LogQueueTextWriter_QueueFull_LineLostNotWaitedFor()
    {
        var queue = new LogQueue(2);
        using var text = new LogQueueTextWriter(queue);
        for (int i = 0; i < 5; i++)
            text.WriteLine($"line {i}");
        Assert.Equal(3, queue.Lost);
        Assert.Equal(["line 0", "line 1"], Lines(queue));
    }

    private static List<string> Lines(LogQueue queue)
    {
        var lines = new List<string>();
        while (queue.TryPeek(out ReadOnlySpan<char> line))
        {
            lines.Add(line.ToString());
            queue.Release();
        }
        return lines;
    }

    /// <summary>A stream whose writes wait at a gate (stderr that nobody reads) and can be made to fail.</summary>
    private sealed class GatedStream(bool open) : Stream
    {
        private readonly ManualResetEventSlim _gate = new(open);
        private readonly MemoryStream _written = new();

        public ManualResetEventSlim Entered { get; } = new();

        public int FailNextWrites { get; set; }

        public string Text
        {
            get
            {
                lock (_written)
                    return Encoding.UTF8.GetString(_written.ToArray());
            }
        }

        public void Open() => _gate.Set();

        public override void Write(byte[] buffer, int offset, int count)
        {
            Entered.Set();
            _gate.Wait();
            if (FailNextWrites > 0)
            {
                FailNextWrites--;
                throw new IOException("Input/output error");
            }
            lock (_written)
                _written.Write(buffer, offset, count);
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _gate.Dispose();
                Entered.Dispose();
                _written.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
