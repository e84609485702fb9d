using Ctfw.Lab.Network;

namespace Ctfw.Lab.Traffic;

/// <summary>A program a workload runs, and the Debian package that provides it.</summary>
public sealed record TrafficProgram(string Name, string DebianPackage, Workloads UsedBy);

/// <summary>The programs behind <see cref="TrafficMix"/>, and their installation from Debian's archive.</summary>
public static class TrafficTools
{
    public static IReadOnlyList<TrafficProgram> Programs { get; } =
    [
        new("nsenter", "util-linux", Workloads.All),
        new("ss", "iproute2", Workloads.Http | Workloads.TcpBulkV4 | Workloads.UdpV6),
        new("nginx", "nginx", Workloads.Http),
        new("wrk", "wrk", Workloads.Http),
        new("iperf3", "iperf3", Workloads.TcpBulkV4 | Workloads.UdpV6),
        new("ping", "iputils-ping", Workloads.Ping),
    ];

    private static readonly TimeSpan s_aptTimeout = TimeSpan.FromMinutes(10);
    private static readonly ChildProcessOptions s_apt = new() { Environment = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" } };

    /// <summary>The programs that <paramref name="workloads"/> need.</summary>
    public static IReadOnlyList<TrafficProgram> Needed(Workloads workloads) =>
        [.. Programs.Where(p => (p.UsedBy & workloads) != 0)];

    /// <summary>The programs <paramref name="workloads"/> need that are not on PATH (nor in /usr/sbin, /sbin).</summary>
    public static IReadOnlyList<TrafficProgram> Missing(Workloads workloads = Workloads.All) =>
        [.. Needed(workloads).Where(p => Tool.Find(p.Name) is null)];

    /// <summary>One line naming what is missing and the command that installs it.</summary>
    public static string Describe(IReadOnlyList<TrafficProgram> missing) =>
        $"missing traffic programs: {string.Join(", ", missing.Select(p => p.Name))} "
        + $"(apt-get install -y --no-install-recommends {string.Join(' ', Packages(missing))})";

    /// <summary>
    /// Installs the Debian packages of the programs that <paramref name="workloads"/> need and lack.
    /// <c>apt-get update</c> runs only when the install fails for want of package lists (a fresh
    /// image ships none), so a machine that has them makes no index download. Needs root.
    /// </summary>
    public static void EnsureInstalled(TextWriter log, Workloads workloads = Workloads.All)
    {
        IReadOnlyList<TrafficProgram> missing = Missing(workloads);
        if (missing.Count == 0)
            return;
        if (Interop.Geteuid() != 0)
            throw new InvalidOperationException($"{Describe(missing)}; installing needs root");
        if (Tool.Find("apt-get") is null)
            throw new InvalidOperationException($"{Describe(missing)}; apt-get is not available here, install them by other means");

        string[] install = ["apt-get", "install", "-y", "--no-install-recommends", .. Packages(missing)];
        log.WriteLine($"traffic: installing {string.Join(' ', Packages(missing))}");
        (int code, string output) = Apt(install);
        if (code != 0 && IsMissingListsError(output))
        {
            log.WriteLine("traffic: apt has no usable package lists; running apt-get update");
            (int updateCode, string updateOutput) = Apt(["apt-get", "update"]);
            if (updateCode != 0)
                throw new InvalidOperationException($"apt-get update exited with {updateCode}:\n{Tail(updateOutput)}");
            (code, output) = Apt(install);
        }
        if (code != 0)
            throw new InvalidOperationException($"`{string.Join(' ', install)}` exited with {code}:\n{Tail(output)}");

        IReadOnlyList<TrafficProgram> still = Missing(workloads);
        if (still.Count != 0)
            throw new InvalidOperationException($"apt-get reported success but {Describe(still)}");
    }

    /// <summary>
    /// Whether apt-get failed because its package lists are absent or stale (what <c>apt-get update</c>
    /// cures), rather than for a reason an update would not fix (no space, a held package, a broken dpkg).
    /// </summary>
    public static bool IsMissingListsError(string aptOutput) =>
        aptOutput.Contains("Unable to locate package", StringComparison.Ordinal)
        || aptOutput.Contains("has no installation candidate", StringComparison.Ordinal)
        || aptOutput.Contains("Failed to fetch", StringComparison.Ordinal);

    private static IEnumerable<string> Packages(IEnumerable<TrafficProgram> programs) =>
        programs.Select(p => p.DebianPackage).Distinct(StringComparer.Ordinal);

    private static (int Code, string Output) Apt(string[] args)
    {
        // No debconf prompts (iperf3 asks whether to start a daemon); the defaults start nothing.
        using ChildProcess process = ChildProcess.Start(args, s_apt);
        if (process.WaitForExit(s_aptTimeout) is not int exit)
            throw new TimeoutException($"`{string.Join(' ', args)}` did not finish within {s_aptTimeout.TotalMinutes} min"); // Dispose kills it
        return (exit, process.StdOut + process.StdErr);
    }

    private static string Tail(string text)
    {
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 8)));
    }
}
