namespace Ctfw.Lab.Bench;

/// <summary>
/// What the NFQUEUE consumer of a daemon set-up cost during one measurement. Per-packet figures
/// divide by <see cref="Packets"/> (packets the daemon handled in the interval); a null figure is a
/// counter this daemon does not report.
/// </summary>
public sealed record DaemonProfile
{
    public long Packets { get; init; }

    /// <summary>
    /// offload: packets the kernel forwarded without ctfw in the interval (<c>offload.packets</c>, the
    /// nftables element counters of the offloaded flows); null for the other set-ups, or a daemon
    /// without the counter.
    /// </summary>
    public long? OffloadedPackets { get; init; }

    /// <summary>The share of the packets through the gateway that bypassed ctfw: offloaded ÷ (offloaded + <see cref="Packets"/>).</summary>
    public double? OffloadedShare => OffloadedPackets is long o && o + Packets > 0 ? (double)o / (o + Packets) : null;

    /// <summary>Whole process, from /proc/PID/stat (utime, stime).</summary>
    public double? UserUsPerPacket { get; init; }
    public double? SysUsPerPacket { get; init; }

    /// <summary>Only the queue worker threads (ctfw: <c>ctfw-queue-N</c>), from /proc/PID/task/*/stat.</summary>
    public double? WorkerUserUsPerPacket { get; init; }
    public double? WorkerSysUsPerPacket { get; init; }

    /// <summary>recvmmsg calls plus verdict sendmsg calls, per packet.</summary>
    public double? SyscallsPerPacket { get; init; }

    /// <summary>Packets per verdict message (sendmsg) — the verdict batch size.</summary>
    public double? AverageBatch { get; init; }

    /// <summary>Packets the kernel dropped at the queue (queue full, or could not deliver to the socket).</summary>
    public long? KernelQueueDrops { get; init; }

    /// <summary>Worker-thread managed allocations per packet (ctfw only).</summary>
    public double? AllocatedBytesPerPacket { get; init; }
}

/// <summary>One workload under one set-up in one rep.</summary>
public sealed record BenchMeasurement(BenchSetup Setup, BenchWorkload Workload, int Rep)
{
    /// <summary>
    /// The headline figure: tcp Gbit/s received, udp packets/s received, conn connections/s, lat p99 RTT in µs.
    /// Null when the measurement failed.
    /// </summary>
    public double? Value { get; init; }

    /// <summary>udp: datagrams lost, in percent of those sent.</summary>
    public double? LossPercent { get; init; }

    /// <summary>conn: wrk socket errors, timeouts and non-2xx responses.</summary>
    public long? Errors { get; init; }

    /// <summary>lat: RTT percentiles and maximum, µs.</summary>
    public double? P50Us { get; init; }
    public double? P99Us { get; init; }
    public double? MaxUs { get; init; }

    public double StealPercent { get; init; }

    public DaemonProfile? Profile { get; init; }

    /// <summary>Why there is no figure, or null.</summary>
    public string? Failure { get; init; }
}

/// <summary>The ctfw1 steady-state soak under mixed load (paced TCP bulk, 64-byte UDP, HTTP churn).</summary>
public sealed record SoakResult
{
    public TimeSpan Duration { get; init; }
    public long Packets { get; init; }
    public long? Gen0 { get; init; }
    public long? Gen1 { get; init; }
    public long? Gen2 { get; init; }
    public long? GcPauseUs { get; init; }

    /// <summary>Managed bytes allocated by the queue worker threads over the soak.</summary>
    public long? WorkerAllocatedBytes { get; init; }

    /// <summary>Managed bytes allocated by the whole process over the soak.</summary>
    public long? ProcessAllocatedBytes { get; init; }

    public double? UserUsPerPacket { get; init; }
    public double? SysUsPerPacket { get; init; }
    public long? RssBytes { get; init; }
    public double StealPercent { get; init; }

    /// <summary>What the load achieved, one line (for the reader to judge how loaded ctfw was).</summary>
    public string Load { get; init; } = "";

    public string? Failure { get; init; }

    public double? WorkerBytesPerPacket => WorkerAllocatedBytes is long b && Packets > 0 ? (double)b / Packets : null;
}

/// <summary>
/// ctfw1's memory with <see cref="Flows"/> concurrent flows in its table: one UDP datagram per flow
/// from the client (distinct source address and port, allowed destination port), paced by ctfw's own
/// packet counter, then the table size and the process's resident memory from its control socket.
/// </summary>
public sealed record ScaleResult
{
    public int Flows { get; init; }
    public long Sent { get; init; }
    public long DaemonPackets { get; init; }
    public long? TableEntries { get; init; }
    public long? RssBeforeBytes { get; init; }
    public long? RssAfterBytes { get; init; }

    /// <summary>The private (anonymous) part of <see cref="RssAfterBytes"/>: without the shared, file-backed runtime images.</summary>
    public long? RssAnonAfterBytes { get; init; }
    public long? HeapBytes { get; init; }
    public double FillPacketsPerSecond { get; init; }
    public string? Failure { get; init; }

    /// <summary>Resident bytes per flow in the table, over the daemon's size before the fill.</summary>
    public double? BytesPerFlow => RssAfterBytes is long a && RssBeforeBytes is long b && TableEntries is long n && n > 0 ? (double)(a - b) / n : null;
}

/// <summary>The machine the run was on, for the report's header.</summary>
public sealed record BenchMachine(DateTime StartedUtc, string Kernel, string CpuModel, int Processors, string DotnetVersion)
{
    public static BenchMachine Current()
    {
        string kernel = "?";
        try
        {
            kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        string cpu = "?";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return new BenchMachine(DateTime.UtcNow, kernel, cpu, Environment.ProcessorCount, Environment.Version.ToString());
    }
}

/// <summary>Everything one run produced.</summary>
public sealed record BenchRun(BenchMachine Machine, BenchOptions Options, IReadOnlyList<BenchMeasurement> Measurements, SoakResult? Soak)
{
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>The 1 M-flow memory step, or null when skipped.</summary>
    public ScaleResult? Scale { get; init; }

    /// <summary>True when every measurement (and the soak and scale steps, if any) produced its figures.</summary>
    public bool Complete => Measurements.All(m => m.Failure is null && m.Value is not null) && Soak?.Failure is null && Scale?.Failure is null && Problems.Count == 0;
}
