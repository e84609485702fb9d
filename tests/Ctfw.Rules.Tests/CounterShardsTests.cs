using Ctfw.Rules;
using Ctfw.Rules.Compilation;

namespace Ctfw.Rules.Tests;

public class CounterShardsTests
{
    [Fact]
    public void Add_ManyThreadsOnOneShard_LosesNoUpdate()
    {
        // One shard: every thread hits the same two longs, so a non-atomic add would lose updates.
        var counters = new CounterShards(slots: 3, shards: 1);
        const int threads = 8, perThread = 200_000;
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() =>
        {
            start.SignalAndWait();
            for (int i = 0; i < perThread; i++)
                counters.Add(1, 3);
        })).ToList();
        workers.ForEach(t => t.Start());
        workers.ForEach(t => t.Join());
        Assert.Equal(new PacketCounters(threads * perThread, 3L * threads * perThread), counters.Read(1));
        Assert.Equal(new PacketCounters(0, 0), counters.Read(0));
        Assert.Equal(new PacketCounters(0, 0), counters.Read(2));
    }

    [Fact]
    public void SeedAndReset_SetAndClearEveryShard()
    {
        var counters = new CounterShards(slots: 2, shards: 4);
        counters.Seed(0, 5, 500);
        counters.Add(0, 10);
        Assert.Equal(new PacketCounters(6, 510), counters.Read(0));
        counters.Reset();
        Assert.Equal(new PacketCounters(0, 0), counters.Read(0));
    }
}
