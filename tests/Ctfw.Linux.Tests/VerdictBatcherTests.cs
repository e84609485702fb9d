using System.Buffers.Binary;
using Ctfw.Linux.Nfqueue;

namespace Ctfw.Linux.Tests;

public sealed class VerdictBatcherTests
{
    private const ushort Queue = 0x1234;

    [Fact]
    public void Flush_ConsecutiveIdsSameVerdict_SendsOneVerdictBatchWithTheLastId()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        for (uint id = 10; id <= 14; id++)
            batcher.Accept(id);

        Assert.Equal(Errno.None, batcher.Flush());

        Assert.Equal([new Decoded(0x0303, Queue, 1, 14, null)], Assert.Single(sender.Datagrams));
        Assert.Equal(32, sender.Raw[0].Length);
        Assert.False(batcher.HasPending);
    }

    [Fact]
    public void Flush_AlternatingVerdicts_SendsSinglesInPacketOrder()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        batcher.Accept(1);
        batcher.Drop(2);
        batcher.Accept(3);

        batcher.Flush();

        Assert.Equal(
            [new Decoded(0x0301, Queue, 1, 1, null), new Decoded(0x0301, Queue, 0, 2, null), new Decoded(0x0301, Queue, 1, 3, null)],
            Assert.Single(sender.Datagrams));
    }

    [Fact]
    public void Flush_MarksSplitRuns_AndTravelAsNfqaMark()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        batcher.Add(1, NfVerdict.Accept, 7);
        batcher.Add(2, NfVerdict.Accept, 7);
        batcher.Add(3, NfVerdict.Accept, 8);
        batcher.Add(4, NfVerdict.Accept);
        batcher.Add(5, NfVerdict.Accept, 0); // an explicit zero mark is still a mark

        batcher.Flush();

        Assert.Equal(
            [
                new Decoded(0x0303, Queue, 1, 2, 7),
                new Decoded(0x0301, Queue, 1, 3, 8),
                new Decoded(0x0301, Queue, 1, 4, null),
                new Decoded(0x0301, Queue, 1, 5, 0),
            ],
            Assert.Single(sender.Datagrams));
    }

    [Fact]
    public void Flush_GapInIds_StartsANewRun()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        foreach (uint id in (uint[])[1, 2, 4, 5, 6])
            batcher.Drop(id);

        batcher.Flush();

        Assert.Equal([new Decoded(0x0303, Queue, 0, 2, null), new Decoded(0x0303, Queue, 0, 6, null)], Assert.Single(sender.Datagrams));
    }

    [Fact]
    public void Flush_RunAcrossIdWraparound_IsOneBatch()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        batcher.Accept(uint.MaxValue - 1);
        batcher.Accept(uint.MaxValue);
        batcher.Accept(0);

        batcher.Flush();

        Assert.Equal([new Decoded(0x0303, Queue, 1, 0, null)], Assert.Single(sender.Datagrams));
    }

    [Fact]
    public void Flush_OutOfOrderIds_SendsOnlySinglesAndCountsThem()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        batcher.Accept(5);
        batcher.Accept(6);
        batcher.Accept(3); // a batch "≤ 6" would also have swept 3's predecessors

        batcher.Flush();

        Assert.Equal(
            [new Decoded(0x0301, Queue, 1, 5, null), new Decoded(0x0301, Queue, 1, 6, null), new Decoded(0x0301, Queue, 1, 3, null)],
            Assert.Single(sender.Datagrams));
        var stats = new NfqueueStatistics();
        batcher.AddCounters(ref stats);
        Assert.Equal(1, stats.OutOfOrderVerdicts);
    }

    [Fact]
    public void Flush_BatchVerdictsDisabled_SendsSingles()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create(batchVerdicts: false);
        batcher.Accept(1);
        batcher.Accept(2);

        batcher.Flush();

        Assert.Equal([new Decoded(0x0301, Queue, 1, 1, null), new Decoded(0x0301, Queue, 1, 2, null)], Assert.Single(sender.Datagrams));
    }

    [Fact]
    public void Add_AtCapacity_FlushesBeforeQueueing()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create(capacity: 4);
        for (uint id = 1; id <= 10; id++)
            batcher.Drop(id);

        Assert.Equal(2, sender.Datagrams.Count);
        Assert.Equal(2, batcher.PendingCount);
        batcher.Flush();

        Assert.Equal(
            [[new Decoded(0x0303, Queue, 0, 4, null)], [new Decoded(0x0303, Queue, 0, 8, null)], [new Decoded(0x0303, Queue, 0, 10, null)]],
            sender.Datagrams);
    }

    [Fact]
    public void Add_VerdictTheKernelRejects_IsRefused()
    {
        (VerdictBatcher batcher, _) = Create();

        Assert.False(batcher.Add(1, (NfVerdict)2)); // NF_STOLEN
        Assert.False(batcher.Add(1, (NfVerdict)6));
        Assert.True(batcher.Add(1, NfVerdicts.QueueTo(9, bypass: true)));
        Assert.Equal(1, batcher.PendingCount);
    }

    [Fact]
    public void Flush_QueueVerdict_CarriesTheTargetQueueInTheUpperBits()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        batcher.Add(1, NfVerdicts.QueueTo(9, bypass: false));

        batcher.Flush();

        Assert.Equal([new Decoded(0x0301, Queue, (9u << 16) | 3, 1, null)], Assert.Single(sender.Datagrams));
    }

    [Fact]
    public void Flush_NothingPending_SendsNothing()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();

        Assert.Equal(Errno.None, batcher.Flush());

        Assert.Empty(sender.Datagrams);
    }

    [Fact]
    public void Flush_SendFails_RetriesTransientOnceThenCountsTheLoss()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        sender.Failures.Enqueue(Errno.ENOBUFS);
        batcher.Accept(1);
        Assert.Equal(Errno.None, batcher.Flush()); // retried once, succeeded
        Assert.Equal(2, sender.Attempts);

        sender.Failures.Enqueue(Errno.EBADF);
        batcher.Accept(2);
        batcher.Accept(3);
        Assert.Equal(Errno.EBADF, batcher.Flush());

        var stats = new NfqueueStatistics();
        batcher.AddCounters(ref stats);
        Assert.Equal((1L, 2L, Errno.EBADF), (stats.SendErrors, stats.LostVerdicts, stats.LastSendError));
        Assert.Equal((2L, 3L), (stats.Flushes, stats.SendSyscalls)); // the retry is a second sendmsg
        Assert.False(batcher.HasPending);
    }

    [Fact]
    public void Encode_EveryMessage_HasRequestFlagSequenceZeroAndAlignedLength()
    {
        (VerdictBatcher batcher, FakeSender sender) = Create();
        batcher.Add(1, NfVerdict.Accept, 3);
        batcher.Drop(2);
        batcher.Flush();

        byte[] wire = sender.Raw[0];
        Assert.Equal(40 + 32, wire.Length);
        for (int at = 0; at < wire.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(wire.AsSpan(at));
            Assert.Equal(0x1, BinaryPrimitives.ReadUInt16LittleEndian(wire.AsSpan(at + 6)));   // NLM_F_REQUEST only
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(wire.AsSpan(at + 8)));    // sequence 0 = verdict
            Assert.Equal(0, wire[at + 16]);                                                    // AF_UNSPEC
            Assert.Equal(0, length % 4);
            at += length;
        }
    }

    private static (VerdictBatcher, FakeSender) Create(int capacity = 64, bool batchVerdicts = true)
    {
        var sender = new FakeSender();
        return (new VerdictBatcher(sender, Queue, capacity, batchVerdicts), sender);
    }

    internal readonly record struct Decoded(ushort Type, ushort Queue, uint Verdict, uint Id, uint? Mark);

    /// <summary>Records each datagram and decodes it with its own reading of the wire format.</summary>
    private sealed class FakeSender : IDatagramSender
    {
        public List<byte[]> Raw { get; } = [];

        public List<List<Decoded>> Datagrams { get; } = [];

        public Queue<Errno> Failures { get; } = new();

        public int Attempts { get; private set; }

        public Errno Send(ReadOnlySpan<byte> datagram)
        {
            Attempts++;
            if (Failures.TryDequeue(out Errno failure))
                return failure;
            Raw.Add(datagram.ToArray());
            Datagrams.Add(Decode(datagram));
            return Errno.None;
        }

        private static List<Decoded> Decode(ReadOnlySpan<byte> wire)
        {
            List<Decoded> messages = [];
            while (!wire.IsEmpty)
            {
                int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(wire);
                ushort type = BinaryPrimitives.ReadUInt16LittleEndian(wire[4..]);
                ushort queue = BinaryPrimitives.ReadUInt16BigEndian(wire[18..]);
                uint verdict = 0, id = 0;
                uint? mark = null;
                for (int at = 20; at < length;)
                {
                    int attrLength = BinaryPrimitives.ReadUInt16LittleEndian(wire[at..]);
                    ushort attrType = BinaryPrimitives.ReadUInt16LittleEndian(wire[(at + 2)..]);
                    if (attrType == 2)
                    {
                        Assert.Equal(12, attrLength);
                        verdict = BinaryPrimitives.ReadUInt32BigEndian(wire[(at + 4)..]);
                        id = BinaryPrimitives.ReadUInt32BigEndian(wire[(at + 8)..]);
                    }
                    else if (attrType == 3)
                    {
                        Assert.Equal(8, attrLength);
                        mark = BinaryPrimitives.ReadUInt32BigEndian(wire[(at + 4)..]);
                    }
                    else
                    {
                        Assert.Fail($"unexpected attribute {attrType}");
                    }
                    at += (attrLength + 3) & ~3;
                }
                messages.Add(new Decoded(type, queue, verdict, id, mark));
                wire = wire[length..];
            }
            return messages;
        }
    }
}
