using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;

namespace Ctfw.Conntrack.Tests;

/// <summary>The tombstone store on its own: capacity, eviction order, window expiry, counters, concurrency.</summary>
public class TombstoneStoreTests
{
    private static readonly TupleHasher s_hasher = new(7);

    private static ConnTuple Key(int i)
    {
        ConnTuple t = default;
        t.Src = IpAddress.FromV4(0x0A000001);
        t.Dst = IpAddress.FromV4(0x0A000002);
        t.SrcId = (ushort)(10000 + i);
        t.DstId = 443;
        t.Protocol = IpProto.Tcp;
        t.IpVersion = 4;
        return t;
    }

    private static TcpConn Conn(uint serial)
    {
        TcpConn c = default;
        c.Seen0.TdEnd = serial * 31;
        c.Seen0.TdMaxEnd = serial * 37;
        c.Seen1.TdEnd = serial ^ 0xDEADBEEF;
        c.Seen1.TdMaxAck = ~serial;
        c.LastSeq = serial;
        c.State = TcpState.Established;
        return c;
    }

    private static void Add(TombstoneStore store, int key, long expiredAt, long now) =>
        store.Add(Key(key), s_hasher.Hash(Key(key)), Conn((uint)key), expiredAt, now);

    private static bool Find(TombstoneStore store, int key, long now, out int slot, out long tag, out Tombstone ts) =>
        store.TryFind(Key(key), s_hasher.Hash(Key(key)), now, out slot, out tag, out ts);

    [Fact]
    public void Sizes_TombstoneIs128Bytes()
    {
        Assert.Equal(128, Unsafe.SizeOf<Tombstone>());
        Assert.Equal(32, Unsafe.SizeOf<FlowAge>()); // two to a cache line, none straddles one
    }

    [Fact]
    public void Add_Find_ReturnsTheStoredState()
    {
        var store = new TombstoneStore(8, 120_000);
        Add(store, 3, expiredAt: 1000, now: 1000);
        Assert.True(Find(store, 3, 1500, out _, out _, out Tombstone ts));
        Assert.Equal(Key(3), ts.Orig);
        Assert.Equal(Conn(3), ts.Tcp);
        Assert.Equal(1000, ts.ExpiredAtMs);
        Assert.False(Find(store, 4, 1500, out _, out _, out _));
        Assert.Equal(1, store.Live);
        Assert.Equal(1, store.Stored);
    }

    [Fact]
    public void Full_EvictsOldestFirst_Counted()
    {
        var store = new TombstoneStore(4, 120_000);
        for (int i = 0; i < 6; i++)
            Add(store, i, expiredAt: 1000 + i, now: 1000 + i);
        Assert.Equal(6, store.Stored);
        Assert.Equal(2, store.Evicted);
        Assert.Equal(4, store.Live);
        Assert.Equal(0, store.Expired);
        for (int i = 0; i < 6; i++)
            Assert.Equal(i >= 2, Find(store, i, 2000, out _, out _, out _));
    }

    [Fact]
    public void Full_ConsumedHeadFreedWithoutCountingAnEviction()
    {
        var store = new TombstoneStore(2, 120_000);
        Add(store, 0, 1000, 1000);
        Add(store, 1, 1001, 1001);
        Assert.True(Find(store, 0, 1002, out int slot, out long tag, out _));
        Assert.True(store.TryTake(slot, tag));
        Add(store, 2, 1002, 1002); // the ring's head is the consumed hole
        Assert.Equal(0, store.Evicted);
        Assert.Equal(2, store.Live);
        Assert.True(Find(store, 1, 1003, out _, out _, out _));
        Assert.True(Find(store, 2, 1003, out _, out _, out _));
    }

    [Fact]
    public void Window_OlderThanWindow_InvisibleAndTrimmedAsExpired()
    {
        var store = new TombstoneStore(8, 10_000);
        Add(store, 0, 1000, 1000);
        Add(store, 1, 5000, 5000);
        Assert.True(Find(store, 0, 11_000, out _, out _, out _));  // exactly the window: inside
        Assert.False(Find(store, 0, 11_001, out _, out _, out _)); // readers check the age themselves
        store.Trim(11_001, int.MaxValue);
        Assert.Equal(1, store.Expired);
        Assert.Equal(1, store.Live);
        Assert.True(Find(store, 1, 11_001, out _, out _, out _));
        store.Trim(15_001, int.MaxValue);
        Assert.Equal(2, store.Expired);
        Assert.Equal(0, store.Live);
        Assert.Equal(0, store.Occupied);
    }

    [Fact]
    public void Trim_Budget_Respected()
    {
        var store = new TombstoneStore(8, 10);
        for (int i = 0; i < 5; i++)
            Add(store, i, 1000, 1000);
        store.Trim(2000, 2);
        Assert.Equal(2, store.Expired);
        store.Trim(2000, int.MaxValue);
        Assert.Equal(5, store.Expired);
    }

    [Fact]
    public void Add_AlreadyPastTheWindow_NotStored()
    {
        var store = new TombstoneStore(8, 10_000);
        Add(store, 0, expiredAt: 1000, now: 11_001);
        Assert.Equal(0, store.Stored);
        Assert.Equal(0, store.Occupied);
    }

    [Fact]
    public void Take_OnlyOnce_ThenInvisible()
    {
        var store = new TombstoneStore(8, 120_000);
        Add(store, 1, 1000, 1000);
        Assert.True(Find(store, 1, 1000, out int slot, out long tag, out _));
        Assert.True(store.TryTake(slot, tag));
        Assert.False(store.TryTake(slot, tag));
        Assert.False(Find(store, 1, 1000, out _, out _, out _));
        Assert.Equal(0, store.Live);
        store.Trim(1_000_000, int.MaxValue);
        Assert.Equal(0, store.Expired); // a consumed hole is not an expiry
    }

    [Fact]
    public void Take_AfterTheSlotWasEvictedAndReused_Fails()
    {
        var store = new TombstoneStore(1, 120_000);
        Add(store, 1, 1000, 1000);
        Assert.True(Find(store, 1, 1000, out int slot, out long tag, out _));
        Add(store, 2, 1001, 1001); // evicts 1 and reuses its slot
        Assert.False(store.TryTake(slot, tag));
        Assert.True(Find(store, 2, 1001, out _, out _, out _));
    }

    [Fact]
    public void SameTuple_StoredTwice_NewestFound()
    {
        var store = new TombstoneStore(8, 120_000);
        store.Add(Key(1), s_hasher.Hash(Key(1)), Conn(100), 1000, 1000);
        store.Add(Key(1), s_hasher.Hash(Key(1)), Conn(200), 2000, 2000);
        Assert.True(Find(store, 1, 2000, out _, out _, out Tombstone ts));
        Assert.Equal(200u, ts.Tcp.LastSeq);
    }

    [Fact]
    public void Chains_ManyKeysSmallStore_EveryLiveOneFoundAfterChurn()
    {
        var store = new TombstoneStore(64, 1_000_000);
        for (int i = 0; i < 1000; i++)
            Add(store, i, i, i);
        for (int i = 0; i < 1000; i++)
            Assert.Equal(i >= 936, Find(store, i, 1000, out _, out _, out _));
        Assert.Equal(936, store.Evicted);
    }

    /// <summary>
    /// One housekeeper rewrites a small store as fast as it can while readers look up and take:
    /// every copy a reader gets must be whole (all fields from one Add), and each stored tombstone
    /// must be taken at most once. Without the tag re-check or with a plain store for taking,
    /// this fails within the run.
    /// </summary>
    [Fact]
    public void Concurrent_OneWriterManyReaders_CopiesWholeAndEachTakenOnce()
    {
        const int Keys = 96;
        var store = new TombstoneStore(32, long.MaxValue / 4);
        var taken = new ConcurrentDictionary<uint, int>();
        long torn = 0, found = 0, takes = 0;
        int stop = 0;
        var writer = new Thread(() =>
        {
            uint serial = 0;
            var deadline = DateTime.UtcNow.AddSeconds(1.5);
            while (DateTime.UtcNow < deadline)
            {
                for (int i = 0; i < 1000; i++)
                {
                    serial++;
                    int k = (int)(serial % Keys);
                    store.Add(Key(k), s_hasher.Hash(Key(k)), Conn(serial), serial, serial);
                }
            }
            Volatile.Write(ref stop, 1);
        });
        var readers = new Thread[2];
        for (int r = 0; r < readers.Length; r++)
        {
            int seed = r;
            readers[r] = new Thread(() =>
            {
                var rng = new Random(seed);
                while (Volatile.Read(ref stop) == 0)
                {
                    int k = rng.Next(Keys);
                    if (!store.TryFind(Key(k), s_hasher.Hash(Key(k)), 0, out int slot, out long tag, out Tombstone ts))
                        continue;
                    Interlocked.Increment(ref found);
                    uint serial = ts.Tcp.LastSeq;
                    if (!ts.Orig.Equals(Key(k)) || serial % Keys != (uint)k || !ts.Tcp.Equals(Conn(serial)) || ts.ExpiredAtMs != serial)
                        Interlocked.Increment(ref torn);
                    if (rng.Next(2) == 0 && store.TryTake(slot, tag))
                    {
                        Interlocked.Increment(ref takes);
                        taken.AddOrUpdate(serial, 1, (_, n) => n + 1);
                    }
                }
            });
        }
        writer.Start();
        foreach (Thread t in readers)
            t.Start();
        writer.Join();
        foreach (Thread t in readers)
            t.Join();

        Assert.True(found > 1000, $"only {found} lookups found something");
        Assert.True(takes > 100, $"only {takes} takes");
        Assert.Equal(0, torn);
        Assert.All(taken, kv => Assert.Equal(1, kv.Value));
        Assert.Equal(store.Stored - store.Evicted - store.Expired - takes, store.Live);
    }

    /// <summary>
    /// The housekeeper reaps expired entries (leaving tombstones) while a worker sends each flow's
    /// late FIN: whichever wins, the FIN must be rescued — by revival before the reaping, by the
    /// tombstone after it. This fails if the tombstone were stored after the entry is marked dying.
    /// </summary>
    [Fact]
    public void Concurrent_ReapingWhileFinsArrive_EveryFinRescued()
    {
        const int Flows = 20_000;
        var settings = Harness.With("nf_conntrack_tcp_timeout_established=60");
        var engine = new ConntrackEngine(settings, 0, hashSeed: 5, rescue: new RescueOptions { Mode = RescueMode.Tombstone });
        using var w = engine.CreateWorker();
        var fins = new byte[Flows][];
        var buf = new byte[128];
        long now = 1000;
        for (int f = 0; f < Flows; f++)
        {
            ushort port = (ushort)(1024 + f);
            Send(Packet(true, port, Syn, 100, 0));
            Send(Packet(false, port, Syn | Ack, 500, 101));
            Send(Packet(true, port, Ack, 101, 501));
            fins[f] = Packet(f % 2 == 0, port, Fin | Ack, f % 2 == 0 ? 101u : 501u, f % 2 == 0 ? 501u : 101u);
        }
        engine.Maintain(now);
        Assert.Equal(Flows, engine.Count);

        long late = now + 61_000;
        int stop = 0;
        var housekeeper = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
                engine.Maintain(late, budget: 16);
        });
        housekeeper.Start();
        int rescued = 0;
        w.Enter();
        for (int f = 0; f < Flows; f++)
        {
            w.Process(fins[f], late, PacketContext.Forwarded, out Classification r);
            if (r.State == CtState.Established && r.Rescued && r.TcpState == TcpState.FinWait)
                rescued++;
        }
        w.Exit();
        Volatile.Write(ref stop, 1);
        housekeeper.Join();

        RescueCounters c = engine.RescueStats;
        Assert.Equal(Flows, rescued);
        Assert.Equal(Flows, c.RescuedFin);
        Assert.True(c.TombstonesStored > 0, "the housekeeper never got ahead of the worker: the race was not exercised");

        byte[] Packet(bool fromClient, ushort port, TcpFlags flags, uint seq, uint ack)
        {
            int n = PacketBuilder.Tcp(buf, new TcpSpec
            {
                Src = fromClient ? Harness.Client4 : Harness.Server4,
                Dst = fromClient ? Harness.Server4 : Harness.Client4,
                SrcPort = fromClient ? port : (ushort)80,
                DstPort = fromClient ? (ushort)80 : port,
                Seq = seq, Ack = ack, Flags = flags, Window = 65000,
            });
            return buf[..n];
        }

        void Send(byte[] p)
        {
            w.Enter();
            w.Process(p, now, PacketContext.Forwarded, out Classification r);
            w.Exit();
            Assert.NotEqual(CtState.Invalid, r.State);
        }
    }
}
