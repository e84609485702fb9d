using Ctfw.Conntrack;

namespace Ctfw.Bench.Fixtures;

/// <summary>
/// Fills a <see cref="ConnTable"/> straight through its insert API (Allocate → initialise →
/// Insert), skipping the TCP tracker: lookup and expiry cost do not depend on how an entry was
/// created, and 1 M handshakes would make setup ten times slower.
/// </summary>
internal static class TableFill
{
    /// <summary>
    /// Inserts flows <paramref name="first"/> .. first+count-1 of <see cref="SyntheticFlows"/>, each with
    /// the deadline <paramref name="deadline"/>(flow), then runs one housekeeping pass at <paramref name="now"/>
    /// so the wheel holds them (arming is measured separately).
    /// </summary>
    public static void Fill(ConnTable table, int first, int count, long now, Func<int, long> deadline, bool arm = true)
    {
        for (int f = first; f < first + count; f++)
        {
            ConnTuple t = SyntheticFlows.Tuple(f);
            int idx = table.Allocate(table.Hash(t), now);
            if (idx < 0)
                throw new InvalidOperationException($"table full after {f - first} of {count} inserts (max {table.Max})");
            ref ConnEntry e = ref table.Entries[idx];
            e.Orig = t;
            e.Status = (uint)(CtStatus.SeenReply | CtStatus.Assured);
            e.Deadline = deadline(f);
            // As the packet path: every live flow has its ages (and counters, when counted) written (memory figures count their pages).
            table.Ages[idx].StateSinceMs = now;
            if (table.Acct is { } acct) // only with nf_conntrack_acct=1, as the packet path
                acct[idx] = new FlowAcct { Packets0 = 1, Bytes0 = 60, Packets1 = 1, Bytes1 = 60 };
            table.Insert(idx);
        }
        if (arm)
            table.Maintain(now, budget: 0);
    }
}
