namespace Ctfw.Lab.Bench;

/// <summary>What one <c>ctfw bench</c> run measures, and how long.</summary>
public sealed record BenchOptions
{
    public int Reps { get; init; } = 3;

    /// <summary>Length of each measurement (one workload under one set-up).</summary>
    public TimeSpan Seconds { get; init; } = TimeSpan.FromSeconds(10);

    public IReadOnlyList<BenchSetup> Setups { get; init; } = BenchNames.AllSetups;

    public IReadOnlyList<BenchWorkload> Workloads { get; init; } = BenchNames.AllWorkloads;

    /// <summary>Length of the ctfw1 steady-state soak under mixed load; zero skips it.</summary>
    public TimeSpan Soak { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Concurrent UDP flows put into ctfw1's table for the memory measurement; zero skips it.</summary>
    public int ScaleFlows { get; init; } = 1_000_000;

    /// <summary>
    /// NFQUEUE copy range given to both the C loop (<c>-r</c>) and ctfw (<c>--copy-range</c>); null keeps
    /// their common default, the whole packet.
    /// </summary>
    public int? CopyRange { get; init; }

    /// <summary>The first NFQUEUE number; ctfw2 and offload also use the next one.</summary>
    public int Queue { get; init; } = 7;

    /// <summary>Where the markdown report is also written, or null.</summary>
    public string? Output { get; init; }

    /// <summary>The <c>--quick</c> settings: one rep of 2 s per measurement, a 5 s soak and 50 000 flows for the scale step (for tests).</summary>
    public static BenchOptions Quick { get; } = new() { Reps = 1, Seconds = TimeSpan.FromSeconds(2), Soak = TimeSpan.FromSeconds(5), ScaleFlows = 50_000 };

    /// <summary>
    /// The set-ups in the order rep <paramref name="rep"/> (1-based) runs them: rotated by one place per
    /// rep, so that no set-up always runs first after a workload change or always last.
    /// </summary>
    public IReadOnlyList<BenchSetup> SetupOrder(int rep)
    {
        int n = Setups.Count;
        int shift = ((rep - 1) % n + n) % n;
        return [.. Setups.Skip(shift), .. Setups.Take(shift)];
    }
}
