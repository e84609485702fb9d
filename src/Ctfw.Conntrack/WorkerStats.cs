using System.Runtime.InteropServices;

namespace Ctfw.Conntrack;

/// <summary>
/// One worker's `conntrack -S` counters (the kernel keeps them per CPU in `struct ip_conntrack_stat`;
/// ctfw per worker, one worker per queue). What each means for ctfw:
/// <list type="bullet">
/// <item>found — packets whose lookup found a live entry (the kernel's pre-4.10 meaning; since then
/// it counts only NAT's tuple checks).</item>
/// <item>invalid — packets this worker classified INVALID (the error ones included, as the kernel).</item>
/// <item>insert — entries this worker confirmed into the table.</item>
/// <item>insert_failed — confirms refused because another worker inserted the same tuple first (TCP, ICMP: the packet is dropped).</item>
/// <item>drop — new flows refused: table full and nothing early-droppable near the bucket, or no spare entry.</item>
/// <item>early_drop — unassured entries this worker killed to make room.</item>
/// <item>error — packets INVALID before any lookup: unparsable, bad checksum, bad ICMP error.</item>
/// <item>search_restart — lookups repeated because the entry died between lookup and lock, or a rescue raced.</item>
/// <item>clash_resolve — UDP/GRE/generic confirms that lost the insert race and joined the entry already there.</item>
/// <item>chaintoolong — always 0: ctfw's chains have no length limit (SipHash keyed per process).</item>
/// </list>
/// Written only by the worker that owns it (plain increments on its own cache lines); read by the
/// control thread without a lock as whole 64-bit values (a benign race: the set may be a few packets apart).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal sealed class WorkerStats
{
    // Padding before and after: the counters share no cache line with other workers' data.
    private readonly PaddedLong _padBefore;
    public long Found;
    public long Invalid;
    public long Insert;
    public long InsertFailed;
    public long Drop;
    public long EarlyDrop;
    public long Error;
    public long SearchRestart;
    public long ClashResolve;
    private readonly PaddedLong _padAfter;

    public WorkerStats(int id) => Id = id;

    public int Id { get; }

    public WorkerCounters Read() => new(Id,
        Volatile.Read(ref Found), Volatile.Read(ref Invalid), Volatile.Read(ref Insert), Volatile.Read(ref InsertFailed),
        Volatile.Read(ref Drop), Volatile.Read(ref EarlyDrop), Volatile.Read(ref Error), Volatile.Read(ref SearchRestart),
        Volatile.Read(ref ClashResolve));

    /// <summary>Keeps the analyzers from calling the padding unused.</summary>
    internal long Padding => _padBefore.Value + _padAfter.Value;
}

/// <summary>A copy of one worker's `conntrack -S` counters (see <see cref="WorkerStats"/> for their meaning).</summary>
public readonly record struct WorkerCounters(int Worker, long Found, long Invalid, long Insert, long InsertFailed,
    long Drop, long EarlyDrop, long Error, long SearchRestart, long ClashResolve);
