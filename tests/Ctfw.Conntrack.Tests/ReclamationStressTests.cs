using System.Diagnostics;
using Ctfw.Packets;
using static Ctfw.Packets.TcpFlags;
using Xunit.Abstractions;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// Multi-threaded tests of the table's lock-free index and its epoch-based reclamation: workers churn
/// flows and hold entries they looked up across the housekeeper's unlink/retire/reuse, and must
/// never see an entry change identity under them. With <see cref="ConnTable.UnsafeReuseImmediately"/>
/// the same stress must see it, which proves the check can fail. Every thread is bounded in time.
/// </summary>
[Collection(StressCollection.Name)]
public class ReclamationStressTests(ITestOutputHelper output)
{
    private const long Start = 1_000_000;
    private const int KeysPerWorker = 8;

    /// <summary>One run of the stress: two workers on their own threads, the calling thread as housekeeper.</summary>
    private sealed class Stress
    {
        public readonly ConntrackEngine Engine;
        public readonly ConnTable Table;
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly ConnTuple[][] _tcpKeys = new ConnTuple[2][];
        private readonly ConnTuple[][] _udpKeys = new ConnTuple[2][];
        private readonly bool _stopAtFirstViolation;
        private int _stop;

        public long Maintains;
        public long Checks;
        public long Violations;
        public long HeldAcrossRetire;
        public long TcpFlows;
        public long UdpPackets;
        public long TcpUnexpected;
        public long Dropped;
        public string? FirstViolation;

        public Stress(bool unsafeReuse)
        {
            // TCP entries die only by worker kills (RST before reply, reopen after RST); UDP entries
            // only by expiry in the housekeeper (1-2 s at 20× real time). The table never fills.
            Engine = new ConntrackEngine(Harness.With("nf_conntrack_max=4096", "nf_conntrack_udp_timeout=1", "nf_conntrack_udp_timeout_stream=2",
                "nf_conntrack_tcp_timeout_close=3600", "nf_conntrack_tcp_timeout_syn_sent=3600",
                "nf_conntrack_tcp_timeout_syn_recv=3600"), Start, maxWorkers: 4, hashSeed: 99);
            Table = Engine.Table;
            Table.UnsafeReuseImmediately = unsafeReuse;
            _stopAtFirstViolation = unsafeReuse;
            for (int w = 0; w < 2; w++)
            {
                _tcpKeys[w] = new ConnTuple[KeysPerWorker];
                _udpKeys[w] = new ConnTuple[KeysPerWorker];
                for (int k = 0; k < KeysPerWorker; k++)
                {
                    _tcpKeys[w][k] = Tuple(IpProto.Tcp, (ushort)(10_000 + (w * 1000) + k));
                    _udpKeys[w][k] = Tuple(IpProto.Udp, (ushort)(20_000 + (w * 1000) + k));
                }
            }
        }

        private static ConnTuple Tuple(byte proto, ushort sport)
        {
            ConnTuple t = default;
            t.Src = Harness.Client4;
            t.Dst = Harness.Server4;
            t.SrcId = sport;
            t.DstId = 80;
            t.Protocol = proto;
            t.IpVersion = 4;
            return t;
        }

        /// <summary>Virtual milliseconds: 20× real time, shared by all threads.</summary>
        public long Now() => Start + (_clock.ElapsedTicks * 20 * 1000 / Stopwatch.Frequency);

        public bool Stopped => Volatile.Read(ref _stop) != 0;

        public void Stop() => Volatile.Write(ref _stop, 1);

        /// <summary>
        /// Runs for at least <paramref name="min"/>, then until <paramref name="enough"/> says the run
        /// exercised what it should, and never longer than <paramref name="max"/>.
        /// </summary>
        public void Run(TimeSpan min, TimeSpan max, Func<Stress, bool> enough)
        {
            var workers = new Thread[2];
            var errors = new Exception?[2];
            for (int w = 0; w < 2; w++)
            {
                int id = w;
                workers[w] = new Thread(() =>
                {
                    try
                    {
                        WorkerLoop(id);
                    }
                    catch (Exception e)
                    {
                        errors[id] = e;
                        Stop();
                    }
                }) { IsBackground = true, Name = $"ct-stress-{w}" };
                workers[w].Start();
            }

            long t0 = Stopwatch.GetTimestamp();
            long minEnd = t0 + (long)(min.TotalSeconds * Stopwatch.Frequency);
            long maxEnd = t0 + (long)(max.TotalSeconds * Stopwatch.Frequency);
            while (!Stopped)
            {
                Table.Maintain(Now());
                Interlocked.Increment(ref Maintains);
                long ts = Stopwatch.GetTimestamp();
                if (ts > maxEnd || (ts > minEnd && enough(this)))
                    break;
                // Leave CPU to the workers: on a small machine a spinning housekeeper starves them.
                Thread.Yield();
            }
            Stop();
            Elapsed = Stopwatch.GetElapsedTime(t0);
            foreach (Thread t in workers)
                Assert.True(t.Join(TimeSpan.FromSeconds(10)), "a stress worker did not stop");
            foreach (Exception? e in errors)
            {
                if (e != null)
                    throw new Xunit.Sdk.XunitException("stress worker failed: " + e);
            }
        }

        public TimeSpan Elapsed;

        private void WorkerLoop(int id)
        {
            using ConntrackWorker worker = Engine.CreateWorker();
            var rng = new Random(1234 + id);
            var buf = new byte[256];
            uint isn = (uint)(id * 100_000_000);
            while (!Stopped)
            {
                int dice = rng.Next(24);
                if (dice < 3)
                {
                    // Reader: hold an entry of the *other* worker (whose flows churn meanwhile).
                    ConnTuple[] keys = dice == 0 ? _udpKeys[id ^ 1] : _tcpKeys[id ^ 1];
                    Check(worker, keys[rng.Next(KeysPerWorker)]);
                }
                else if (dice < 5)
                {
                    ConnTuple t = _udpKeys[id][rng.Next(KeysPerWorker)];
                    Send(worker, buf, PacketBuilder.Udp(buf, false, t.Src, t.Dst, t.SrcId, t.DstId, 8));
                    if (rng.Next(2) == 0)
                        Send(worker, buf, PacketBuilder.Udp(buf, false, t.Dst, t.Src, t.DstId, t.SrcId, 8));
                    Interlocked.Increment(ref UdpPackets);
                }
                else
                {
                    TcpCycle(worker, buf, _tcpKeys[id][rng.Next(KeysPerWorker)], isn += 1_000, rstBeforeReply: rng.Next(4) == 0);
                }
            }
        }

        private Classification Send(ConntrackWorker worker, byte[] buf, int len)
        {
            worker.Enter();
            worker.Process(buf.AsSpan(0, len), Now(), PacketContext.Forwarded, out Classification r);
            worker.Exit();
            if (r.State == CtState.Dropped)
                Interlocked.Increment(ref Dropped);
            return r;
        }

        /// <summary>
        /// SYN (NEW, reopening the key's previous entry, which dies), then either RST (no reply: the
        /// entry dies) or SYN/ACK, ACK, exact RST (CLOSE, killed by the next cycle's SYN).
        /// </summary>
        private void TcpCycle(ConntrackWorker w, byte[] buf, ConnTuple t, uint cisn, bool rstBeforeReply)
        {
            const uint sisn = 77_000;
            Expect(Send(w, buf, Tcp(buf, t, true, Syn, cisn, 0)), CtState.New);
            if (rstBeforeReply)
            {
                Expect(Send(w, buf, Tcp(buf, t, true, Rst, cisn + 1, 0)), CtState.New);
            }
            else
            {
                Expect(Send(w, buf, Tcp(buf, t, false, Syn | Ack, sisn, cisn + 1)), CtState.Established);
                Expect(Send(w, buf, Tcp(buf, t, true, Ack, cisn + 1, sisn + 1)), CtState.Established);
                Expect(Send(w, buf, Tcp(buf, t, true, Rst, cisn + 1, 0)), CtState.Established);
            }
            Interlocked.Increment(ref TcpFlows);
        }

        private void Expect(Classification r, CtState state)
        {
            if (r.State != state && r.State != CtState.Dropped)
                Interlocked.Increment(ref TcpUnexpected);
        }

        private static int Tcp(byte[] buf, ConnTuple t, bool fromClient, TcpFlags flags, uint seq, uint ack) =>
            PacketBuilder.Tcp(buf, new TcpSpec
            {
                Src = fromClient ? t.Src : t.Dst,
                Dst = fromClient ? t.Dst : t.Src,
                SrcPort = fromClient ? t.SrcId : t.DstId,
                DstPort = fromClient ? t.DstId : t.SrcId,
                Seq = seq,
                Ack = ack,
                Flags = flags,
                Window = 64240,
            });

        /// <summary>
        /// Looks <paramref name="t"/> up inside an epoch and holds the index: until the entry has been
        /// killed and the housekeeper has completed two passes since (so it was unlinked and retired),
        /// plus a little longer for workers to allocate; or 150 µs if nobody kills it. Then compares
        /// the entry's tuple with the one looked up: an entry reused under a reader shows another tuple.
        /// </summary>
        private void Check(ConntrackWorker worker, ConnTuple t)
        {
            worker.Enter();
            try
            {
                int idx = Table.Lookup(t, Table.Hash(t), Now(), out int dir);
                if (idx < 0)
                    return;
                t.TryInvert(out ConnTuple inv);
                ConnTuple expected = dir == 0 ? t : inv;
                ref ConnEntry e = ref Table.Entries[idx];
                long t0 = Stopwatch.GetTimestamp();
                long limit = t0 + (Stopwatch.Frequency / 3_333);          // 300 µs if nobody kills it
                long hardLimit = t0 + (Stopwatch.Frequency / 500);        // 2 ms in any case
                long maintainsAtKill = -1;
                bool retired = false;
                while (true)
                {
                    long ts = Stopwatch.GetTimestamp();
                    if (ts > hardLimit || (maintainsAtKill < 0 && ts > limit))
                        break;
                    if (maintainsAtKill < 0 && (Volatile.Read(ref e.Status) & (uint)CtStatus.Dying) != 0)
                        maintainsAtKill = Volatile.Read(ref Maintains);
                    if (maintainsAtKill >= 0 && !retired && Volatile.Read(ref Maintains) >= maintainsAtKill + 2)
                    {
                        retired = true;                                    // unlinked and retired by now
                        hardLimit = Math.Min(hardLimit, ts + (Stopwatch.Frequency / 10_000)); // 100 µs more for reuse
                    }
                    // Still inside the epoch; give the CPU to the threads that churn and reclaim.
                    Thread.Yield();
                }
                ConnTuple seen = e.Orig;
                Interlocked.Increment(ref Checks);
                if (retired)
                    Interlocked.Increment(ref HeldAcrossRetire);
                if (!seen.Equals(expected))
                {
                    if (Interlocked.Increment(ref Violations) == 1)
                        FirstViolation = $"looked up {expected}, entry {idx} now holds {seen}";
                    if (_stopAtFirstViolation)
                        Stop();
                }
            }
            finally
            {
                worker.Exit();
            }
        }

        public string Summary() =>
            $"maintains={Maintains} checks={Checks} heldAcrossRetire={HeldAcrossRetire} violations={Violations} " +
            $"tcpFlows={TcpFlows} udpPackets={UdpPackets} tcpUnexpected={TcpUnexpected} dropped={Dropped} " +
            $"count={Engine.Count} retired={Table.RetiredCount} elapsed={Elapsed.TotalSeconds:F1}s first={FirstViolation}";
    }

    [Fact]
    public void Epochs_ChurnWhileReadersHoldEntries_NoEntryReusedUnderAReader()
    {
        var s = new Stress(unsafeReuse: false);
        s.Run(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(15), x => Volatile.Read(ref x.HeldAcrossRetire) >= 200);
        string summary = s.Summary();
        output.WriteLine(summary);
        Assert.True(s.Violations == 0, "entry reused under a reader: " + summary);
        // The check must have been exercised where reuse would have bitten.
        Assert.True(s.HeldAcrossRetire >= 50, "too few holds across a retire to mean anything: " + summary);
        Assert.True(s.TcpFlows >= 2_000, "too little churn: " + summary);
        Assert.True(s.TcpUnexpected == 0, "TCP classifications went wrong: " + summary);
        Assert.Equal(0, s.Dropped);

        // Quiesce: every TCP entry is alive (CLOSE, 1 h) or dead; all UDP entries expire; nothing leaks.
        long end = s.Now() + 3_000 + TimerWheel.HorizonMs;
        s.Engine.Maintain(end);
        s.Engine.Maintain(end);
        int live = s.Engine.Snapshot(end).Count;
        Assert.Equal(live, s.Engine.Count);
        Assert.InRange(live, 0, 2 * KeysPerWorker);
        Assert.Equal(0, s.Table.RetiredCount);
    }

    [Fact]
    public void UnsafeReuseImmediately_SameStress_DetectsEntryReusedUnderAReader()
    {
        var s = new Stress(unsafeReuse: true);
        s.Run(TimeSpan.Zero, TimeSpan.FromSeconds(15), x => Volatile.Read(ref x.Violations) > 0);
        output.WriteLine(s.Summary());
        Assert.True(s.Violations > 0, "the stress did not catch immediate reuse: " + s.Summary());
    }

    // ---------------- Expiry racing a kill ----------------

    [Fact]
    public void Maintain_ExpiryRacingConcurrentKill_EntryRetiredOnce()
    {
        // The housekeeper expires an entry under its lock (read Status for Dying, then set it) while a
        // worker may Kill the same entry without the lock: EarlyDrop kills expired neighbours, and the
        // RST-before-reply / reopen paths kill after unlocking. Exactly one of them may retire it; a
        // second retire decrements the count twice and puts the entry on the free stack twice.
        const int n = 20_000;
        var engine = new ConntrackEngine(Harness.With("nf_conntrack_max=32768", "nf_conntrack_udp_timeout=1"), Start, hashSeed: 5);
        ConnTable table = engine.Table;
        using ConntrackWorker creator = engine.CreateWorker();
        using ConntrackWorker killerSlot = engine.CreateWorker();
        var buf = new byte[128];
        var order = new int[n];
        // Until the killer has met the housekeeper inside an expiry check often enough (it needs both
        // threads on a CPU at once, so this adapts to machine load), bounded in time.
        long stopAt = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        long now = Start;
        long sawLocked = 0;
        for (int round = 1; Interlocked.Read(ref sawLocked) < 20_000 && Stopwatch.GetTimestamp() < stopAt; round++)
        {
            creator.Enter();
            for (int i = 0; i < n; i++)
            {
                ConnTuple t = default;
                t.Src = IpAddress.FromV4(0x0A000000u + (uint)i);
                t.Dst = Harness.Server4;
                t.SrcId = (ushort)(1_000 + round);
                t.DstId = 53;
                t.Protocol = IpProto.Udp;
                t.IpVersion = 4;
                int len = PacketBuilder.Udp(buf, false, t.Src, t.Dst, t.SrcId, t.DstId, 8);
                creator.Process(buf.AsSpan(0, len), now, PacketContext.Forwarded, out Classification r);
                Assert.Equal(CtState.New, r.State);
                order[i] = table.Lookup(t, table.Hash(t), now, out _);
            }
            creator.Exit();
            engine.Maintain(now);                          // arms all in one slot, in creation order
            Assert.Equal(n, engine.Count);

            // The killer holds an epoch like any worker that calls Kill (so nothing it may touch is
            // reused), follows the entries in creation order and kills each one the moment it sees
            // the housekeeper holding its lock: inside the expiry check.
            int ready = 0, go = 0, hkDone = 0;
            var killer = new Thread(() =>
            {
                killerSlot.Enter();
                Volatile.Write(ref ready, 1);
                while (Volatile.Read(ref go) == 0)
                {
                }
                foreach (int idx in order)
                {
                    ref uint status = ref table.Entries[idx].Status;
                    for (int spin = 1; ; spin++)
                    {
                        uint st = Volatile.Read(ref status);
                        if ((st & (uint)CtStatus.Locked) != 0)
                        {
                            Interlocked.Increment(ref sawLocked);
                            table.Kill(idx);
                            break;
                        }
                        if ((st & (uint)CtStatus.Dying) != 0 || Volatile.Read(ref hkDone) != 0)
                            break;
                        if ((spin & 1023) == 0)
                            Thread.Yield();
                    }
                }
                killerSlot.Exit();
            }) { IsBackground = true };
            killer.Start();
            while (Volatile.Read(ref ready) == 0)
                Thread.Yield();
            now += 1_000 + TimerWheel.HorizonMs;
            Volatile.Write(ref go, 1);
            try
            {
                engine.Maintain(now);
            }
            finally
            {
                Volatile.Write(ref hkDone, 1);
                Assert.True(killer.Join(TimeSpan.FromSeconds(20)), "killer thread did not finish");
            }
            engine.Maintain(now);                          // the kill stack
            engine.Maintain(now + 1);                      // reclaim
            if (engine.Count != 0 || Interlocked.Read(ref sawLocked) >= 20_000)
                output.WriteLine($"round {round}: housekeeper lock seen {Interlocked.Read(ref sawLocked)} times so far, count {engine.Count}");
            Assert.True(engine.Count == 0, $"round {round}: count {engine.Count} after all {n} entries died: entries retired twice");
            now += 2;
        }
        Assert.True(sawLocked >= 20, $"the killer met the housekeeper inside an expiry check only {sawLocked} times");
    }

    // ---------------- Two directions on two threads ----------------

    [Fact]
    public void TwoWorkers_ClientAndServerPacketsOnDifferentThreads_AllFlowsAssuredNoInvalid()
    {
        const int flows = 512;
        const int keepalives = 40;
        var engine = new ConntrackEngine(new ConntrackSettings(), Start, maxWorkers: 4, hashSeed: 17);
        var clock = Stopwatch.StartNew();
        long Now() => Start + clock.ElapsedMilliseconds;
        // step[f]: 0 client SYN, 1 server SYN/ACK, 2 client ACK, 3 server data, 4 client ACK of it, 5 both sides keep-alive.
        var step = new int[flows];
        var done = new int[2];
        long invalid = 0, wrong = 0;
        string? firstProblem = null;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        CancellationToken token = cts.Token;

        void Note(string what, Classification r)
        {
            Interlocked.Increment(ref r.State == CtState.Invalid ? ref invalid : ref wrong);
            Interlocked.CompareExchange(ref firstProblem, $"{what}: {r.State.Name()} {r.Reason.Name()} {r.TcpState.Name()}", null);
        }

        void Side(bool client)
        {
            using ConntrackWorker worker = engine.CreateWorker();
            var buf = new byte[256];
            var sent = new int[flows];                     // keep-alives sent in step 5
            int finished = 0;
            while (finished < flows && !token.IsCancellationRequested)
            {
                finished = 0;
                for (int f = 0; f < flows; f++)
                {
                    int s = Volatile.Read(ref step[f]);
                    ushort port = (ushort)(30_000 + f);
                    const uint c = 1_000, sv = 9_000;
                    int len;
                    CtState expect = CtState.Established;
                    CtDirection dir = client ? CtDirection.Original : CtDirection.Reply;
                    if (s == 5)
                    {
                        if (sent[f] == keepalives)
                        {
                            finished++;
                            continue;
                        }
                        sent[f]++;
                        // Pure ACKs at the current edges are valid in any interleaving of the two sides.
                        len = client ? Seg(buf, port, true, Ack, c + 1, sv + 101) : Seg(buf, port, false, Ack, sv + 101, c + 1);
                    }
                    else if (client && s is 0 or 2 or 4)
                    {
                        len = s switch
                        {
                            0 => Seg(buf, port, true, Syn, c, 0),
                            2 => Seg(buf, port, true, Ack, c + 1, sv + 1),
                            _ => Seg(buf, port, true, Ack, c + 1, sv + 101),
                        };
                        if (s == 0)
                            expect = CtState.New;
                    }
                    else if (!client && s is 1 or 3)
                    {
                        len = s == 1 ? Seg(buf, port, false, Syn | Ack, sv, c + 1) : Seg(buf, port, false, Ack | Psh, sv + 1, c + 1, 100);
                    }
                    else
                    {
                        continue;                          // the other side's turn
                    }
                    worker.Enter();
                    worker.Process(buf.AsSpan(0, len), Now(), PacketContext.Forwarded, out Classification r);
                    worker.Exit();
                    if (r.State != expect || r.Direction != dir)
                        Note($"flow {f} step {s} from {(client ? "client" : "server")}", r);
                    if (s < 5)
                        Volatile.Write(ref step[f], s + 1);
                }
            }
            Volatile.Write(ref done[client ? 0 : 1], 1);
        }

        var tc = new Thread(() => Side(true)) { IsBackground = true };
        var ts = new Thread(() => Side(false)) { IsBackground = true };
        tc.Start();
        ts.Start();
        while ((Volatile.Read(ref done[0]) == 0 || Volatile.Read(ref done[1]) == 0) && !token.IsCancellationRequested)
            engine.Maintain(Now());
        Assert.True(tc.Join(TimeSpan.FromSeconds(10)) && ts.Join(TimeSpan.FromSeconds(10)), "worker threads hung");
        Assert.False(token.IsCancellationRequested, "timed out");
        Assert.True(invalid == 0 && wrong == 0, $"invalid={invalid} wrong={wrong} first: {firstProblem}");

        List<FlowInfo> all = engine.Snapshot(Now());
        Assert.Equal(flows, all.Count);
        foreach (FlowInfo f in all)
        {
            Assert.Equal(TcpState.Established, f.TcpState);
            Assert.Equal(CtStatus.Confirmed | CtStatus.SeenReply | CtStatus.Assured, f.Status);
        }
    }

    private static int Seg(byte[] buf, ushort clientPort, bool fromClient, TcpFlags flags, uint seq, uint ack, int len = 0) =>
        PacketBuilder.Tcp(buf, new TcpSpec
        {
            Src = fromClient ? Harness.Client4 : Harness.Server4,
            Dst = fromClient ? Harness.Server4 : Harness.Client4,
            SrcPort = fromClient ? clientPort : (ushort)443,
            DstPort = fromClient ? (ushort)443 : clientPort,
            Seq = seq,
            Ack = ack,
            Flags = flags,
            Window = 64240,
            PayloadLength = len,
        });
}

/// <summary>Timing-sensitive stress tests run alone, not beside the rest of the assembly.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StressCollection
{
    public const string Name = "Stress";
}
