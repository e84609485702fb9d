using System.Diagnostics;
using Ctfw.Packets;

namespace Ctfw.Conntrack.Tests;

/// <summary>
/// The hierarchical timer wheel on its own (arm/advance/pop on a bare entry array) and as the
/// table's expiry engine (lazy re-arm, budgeted maintenance).
/// </summary>
public class TimerWheelTests
{
    private const long Start = 1_000_000;
    private const long H = TimerWheel.HorizonMs;

    private static ConnEntry[] Entries(int n)
    {
        var e = new ConnEntry[n];
        for (int i = 0; i < n; i++)
        {
            e[i].TimerPrev = -1; // "not in the wheel", as ConnTable initialises them
            e[i].TimerNext = -1;
        }
        return e;
    }

    /// <summary>
    /// Arms one entry per deadline now+1 … now+H (H = horizon) at clock phase <paramref name="phase"/>,
    /// then advances 1 ms at a time and returns, per entry, the first time it came off the due list.
    /// </summary>
    private static long[] FireTimes(long phase, out long start)
    {
        start = Start + phase;
        ConnEntry[] entries = Entries((int)H);
        var wheel = new TimerWheel(entries, start);
        for (int d = 1; d <= H; d++)
        {
            entries[d - 1].Deadline = start + d;
            wheel.Arm(d - 1);
        }
        var fired = new long[H];
        int left = (int)H;
        for (long t = start + 1; left > 0 && t <= start + (2 * H); t++)
        {
            wheel.Advance(t);
            for (int idx; (idx = wheel.PopDue()) >= 0;)
            {
                Assert.Equal(0, fired[idx]);               // each entry fires exactly once
                fired[idx] = t;
                left--;
            }
        }
        Assert.Equal(0, left);
        Assert.Equal(0, wheel.Count);
        return fired;
    }

    // Every residue of the clock modulo the coarsest granule used within the horizon (512 ms),
    // simulated once and shared by the three timing tests (≈ 4 s).
    private static readonly Lazy<(long Phase, long Start, long[] Fired)[]> s_simulations = new(() =>
        Enumerable.Range(0, 512).Select(p => ((long)p, Start + p, FireTimes(p, out _))).ToArray());

    [Fact]
    public void Fire_EveryDeadlineUpToHorizonAtEveryPhase_NeverBeforeDeadline()
    {
        foreach ((long phase, long start, long[] fired) in s_simulations.Value)
        {
            for (int d = 1; d <= H; d++)
            {
                long deadline = start + d;
                Assert.True(fired[d - 1] >= deadline, $"phase {phase}: deadline +{d} ms fired {deadline - fired[d - 1]} ms early");
            }
        }
    }

    [Fact]
    public void Fire_EveryDeadlineUpToHorizonAtEveryPhase_AtMostOneSlotGranuleLate()
    {
        // Level L (granule 8^L ms) holds deltas ≥ 62·8^(L−1): lateness < granule < delta·8/62 (12.9 %).
        foreach ((long phase, long start, long[] fired) in s_simulations.Value)
        {
            for (int d = 1; d <= H; d++)
            {
                long late = fired[d - 1] - (start + d);
                Assert.True(late * 62 < 8L * d || late == 0,
                    $"phase {phase}: deadline +{d} ms fired {late} ms late (> 8/62 of the delay)");
            }
        }
    }

    [Fact]
    public void Arm_DeadlinePastOrNow_FiresOnNextMillisecond()
    {
        ConnEntry[] entries = Entries(2);
        var wheel = new TimerWheel(entries, Start);
        entries[0].Deadline = Start;
        entries[1].Deadline = Start - 5_000;
        wheel.Arm(0);
        wheel.Arm(1);
        wheel.Advance(Start);                              // time did not move: nothing fires
        Assert.Equal(-1, wheel.PopDue());
        wheel.Advance(Start + 1);
        Assert.Equal(2, Drain(wheel).Count);
    }

    [Fact]
    public void Arm_DeadlineBeyondHorizon_FiresAtHorizonThenReArmsUpToDeadline()
    {
        // Long deadlines are armed at the horizon only; the owner re-arms ("lazy re-arm") until due.
        ConnEntry[] entries = Entries(1);
        var wheel = new TimerWheel(entries, Start);
        long deadline = Start + 3_600_000;
        entries[0].Deadline = deadline;
        wheel.Arm(0);
        int fires = 0;
        long firedAt = 0;
        for (long t = Start + 1; t <= deadline + H; t++)
        {
            wheel.Advance(t);
            if (wheel.PopDue() < 0)
                continue;
            fires++;
            if (fires == 1)
                Assert.InRange(t, Start + H, Start + H + (H / 8) + 1);
            if (entries[0].Deadline - t > 0)
            {
                wheel.Arm(0);
                continue;
            }
            firedAt = t;
            break;
        }
        Assert.InRange(firedAt, deadline, deadline + (H / 8) + 1);
        Assert.InRange(fires, 3_600_000 / (H + (H / 8) + 1), (3_600_000 / H) + 2);
    }

    [Fact]
    public void Remove_ArmedEntry_NeverFiresAndCountDrops()
    {
        ConnEntry[] entries = Entries(3);
        var wheel = new TimerWheel(entries, Start);
        for (int i = 0; i < 3; i++)
        {
            entries[i].Deadline = Start + 100;             // same slot: a list of three
            wheel.Arm(i);
        }
        wheel.Remove(1);                                   // the middle of the list
        Assert.Equal(2, wheel.Count);
        Assert.False(TimerWheel.IsArmed(entries[1]));
        wheel.Remove(1);                                   // not armed: no-op
        Assert.Equal(2, wheel.Count);
        wheel.Advance(Start + 200);
        List<int> fired = Drain(wheel);
        Assert.Equal(new[] { 0, 2 }, fired.Order());
    }

    [Fact]
    public void Remove_EntryOnDueList_TakenOut()
    {
        ConnEntry[] entries = Entries(3);
        var wheel = new TimerWheel(entries, Start);
        for (int i = 0; i < 3; i++)
        {
            entries[i].Deadline = Start + 10 + i;
            wheel.Arm(i);
        }
        wheel.Advance(Start + 50);                         // all three fired, none processed
        wheel.Remove(0);
        wheel.Remove(2);
        Assert.Equal(new[] { 1 }, Drain(wheel));
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void Remove_200kEntriesOfOneSlotInRandomOrder_ConstantTimeEach()
    {
        // One slot list of 200 000 entries; an O(n) unlink would walk ~10^10 links here.
        const int n = 200_000;
        ConnEntry[] entries = Entries(n);
        var wheel = new TimerWheel(entries, Start);
        for (int i = 0; i < n; i++)
        {
            entries[i].Deadline = Start + 1_000;
            wheel.Arm(i);
        }
        int[] order = Enumerable.Range(0, n).ToArray();
        new Random(7).Shuffle(order);
        var sw = Stopwatch.StartNew();
        foreach (int i in order)
            wheel.Remove(i);
        sw.Stop();
        Assert.Equal(0, wheel.Count);
        wheel.Advance(Start + 2_000);
        Assert.Equal(-1, wheel.PopDue());
        Assert.True(sw.ElapsedMilliseconds < 2_000, $"200k removals took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Advance_TenHourJump_FiresEverythingArmed()
    {
        const int n = 20_000;
        ConnEntry[] entries = Entries(n);
        var wheel = new TimerWheel(entries, Start);
        var rng = new Random(11);
        for (int i = 0; i < n; i++)
        {
            entries[i].Deadline = Start + rng.NextInt64(1, 2 * H);
            wheel.Arm(i);
        }
        wheel.Advance(Start + (10L * 3_600_000));
        Assert.Equal(n, Drain(wheel).Distinct().Count());
        Assert.Equal(0, wheel.Count);
    }

    [Fact]
    public void Advance_HugeJump_VisitsBoundedSlotsAndStaysUsable()
    {
        // 10^12 ms ahead: a wheel that visited every elapsed slot would never return.
        ConnEntry[] entries = Entries(100);
        var wheel = new TimerWheel(entries, Start);
        for (int i = 0; i < 100; i++)
        {
            entries[i].Deadline = Start + 1 + (i * 97);
            wheel.Arm(i);
        }
        var sw = Stopwatch.StartNew();
        long later = Start + 1_000_000_000_000;
        wheel.Advance(later);
        sw.Stop();
        Assert.True(sw.ElapsedMilliseconds < 1_000, $"Advance took {sw.ElapsedMilliseconds} ms");
        Assert.Equal(100, Drain(wheel).Count);
        Assert.Equal(later, wheel.Now);

        // And it keeps time afterwards.
        entries[0].Deadline = later + 5;
        wheel.Arm(0);
        wheel.Advance(later + 4);
        Assert.Equal(-1, wheel.PopDue());
        wheel.Advance(later + 5);
        Assert.Equal(0, wheel.PopDue());
    }

    private static List<int> Drain(TimerWheel wheel)
    {
        var list = new List<int>();
        for (int idx; (idx = wheel.PopDue()) >= 0;)
            list.Add(idx);
        return list;
    }

    // ---------------- The wheel inside the table ----------------

    [Fact]
    public void Maintain_DeadlineMovedLater_LazilyReArmedNotExpired()
    {
        using var h = new Harness();
        h.Udp(true);                                       // deadline t0 + 30 s
        long t0 = h.Now;
        h.SleepMs(20_000);
        h.Udp(true);                                       // refreshed: deadline t0 + 50 s
        long deadline = t0 + 50_000;
        for (long t = h.Now; t < deadline; t += 97)
        {
            h.Engine.Maintain(t);
            Assert.Equal(1, h.Engine.Count);
            Assert.Equal(1, h.Engine.Table.Wheel.Count);   // still armed: re-armed when its old slot fired
        }
        h.Now = deadline + H;
        h.Engine.Maintain(h.Now);
        Assert.Equal(0, h.Engine.Count);
        Assert.Equal(0, h.Engine.Table.Wheel.Count);
    }

    [Fact]
    public void Maintain_Budget1000_100kSimultaneousExpiriesDrainOverSeveralCalls()
    {
        const int n = 100_000;
        long now = Start;
        var engine = new ConntrackEngine(Harness.With("nf_conntrack_max=131072", "nf_conntrack_udp_timeout=5"), now, hashSeed: 3);
        using ConntrackWorker w = engine.CreateWorker();
        var buf = new byte[128];
        w.Enter();
        for (int i = 0; i < n; i++)
        {
            int len = PacketBuilder.Udp(buf, false, IpAddress.FromV4(0x0A000000u + (uint)(i >> 8)), Harness.Server4,
                (ushort)(10_000 + (i & 0xFF)), 53, 8);
            w.Process(buf.AsSpan(0, len), now, PacketContext.Forwarded, out Classification r);
            Assert.Equal(CtState.New, r.State);
        }
        w.Exit();
        Assert.Equal(0, engine.Maintain(now));             // arms all 100k for now + 5 s
        Assert.Equal(n, engine.Count);
        Assert.Equal(0, engine.Maintain(now + 4_999));      // none before the deadline

        long reap = now + 5_000 + H;
        int calls = 0, total = 0;
        while (true)
        {
            int expired = engine.Maintain(reap, budget: 1_000);
            if (expired == 0)
                break;
            calls++;
            total += expired;
            Assert.True(expired <= 1_000, $"call {calls} expired {expired} > budget");
            Assert.Equal(n - total, engine.Count);
            Assert.True(calls <= 200, "not drained after 200 budgeted calls");
        }
        Assert.Equal(n, total);
        Assert.Equal(100, calls);
        Assert.Equal(0, engine.Count);
        Assert.Equal(0, engine.Table.Wheel.Count);
    }
}
