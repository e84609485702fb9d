using System.Globalization;
using System.Text;
using Ctfw.Lab.Bench;

namespace Ctfw.Lab.Flood;

/// <summary>
/// <c>ctfw bench --workloads flood</c>: the hostile-load run (<see cref="HostileRun"/>, case a of the
/// suite: IPv4 random-source SYN flood + 64-byte UDP overload for 15 s at nf_conntrack_max=5000) under
/// each set-up that has a conntrack — kernel, ctfw1, ctfw2 (default settings) — each on a fresh
/// <see cref="HostileLab"/>, and the figures side by side; once with the floods in bursts (the
/// suite's load, <see cref="HostileLoad.DefaultBurst"/>) and once as one steady flat-out stream
/// (what the machine's limit does to each). Plain forwarding and the C loop have no table and no
/// rules to hold, so they are skipped.
/// </summary>
public static class HostileBench
{
    public static IReadOnlyList<BenchSetup> Setups { get; } = [BenchSetup.Kernel, BenchSetup.Ctfw1, BenchSetup.Ctfw2];

    /// <summary>One set-up's run: its figures, or why it failed.</summary>
    public sealed record Entry(BenchSetup Setup, HostileLoad Load, HostileResult? Result, string? Failure);

    /// <summary>The two loads, in the order they run.</summary>
    public static IReadOnlyList<HostileLoad> Loads { get; } = [new HostileLoad(), new HostileLoad().Steady()];

    /// <summary>Runs the set-ups of <paramref name="setups"/> that have a conntrack, in the canonical order.</summary>
    /// <param name="ctfwCommand">The argv prefix that runs ctfw.</param>
    /// <param name="firstQueue">ctfw1's queue; ctfw2 uses it and the next.</param>
    public static IReadOnlyList<Entry> Run(IReadOnlyList<BenchSetup> setups, IReadOnlyList<string> ctfwCommand,
        Func<string, IReadOnlyDictionary<string, long>?> readStats, int firstQueue, TextWriter progress, CancellationToken token)
    {
        ArgumentNullException.ThrowIfNull(setups);
        ArgumentNullException.ThrowIfNull(progress);
        List<Entry> entries = [];
        foreach (HostileLoad load in Loads)
        {
            foreach (BenchSetup setup in Setups.Where(setups.Contains))
                entries.Add(RunOne(setup, load, ctfwCommand, readStats, firstQueue, progress, token));
        }
        return entries;
    }

    private static Entry RunOne(BenchSetup setup, HostileLoad load, IReadOnlyList<string> ctfwCommand,
        Func<string, IReadOnlyDictionary<string, long>?> readStats, int firstQueue, TextWriter progress, CancellationToken token)
    {
        token.ThrowIfCancellationRequested();
        HostileFirewall firewall = setup switch
        {
            BenchSetup.Kernel => new HostileFirewall { Name = "kernel", Kind = HostileFirewallKind.Kernel },
            _ => new HostileFirewall
            {
                Name = BenchNames.Of(setup),
                CtfwCommand = ctfwCommand,
                ReadStats = readStats,
                FirstQueue = firstQueue,
                QueueCount = setup == BenchSetup.Ctfw2 ? 2 : 1,
            },
        };
        progress.WriteLine($"flood: {BenchNames.Of(setup)}: building the hostile-load namespaces (ctfwh-*)");
        try
        {
            using var lab = new HostileLab();
            HostileResult result = HostileRun.RunAsync(lab, firewall, load, progress, token).GetAwaiter().GetResult();
            progress.WriteLine($"flood: {result.Summary()}");
            return new Entry(setup, load, result, null);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or TimeoutException && !token.IsCancellationRequested)
        {
            progress.WriteLine($"flood: {BenchNames.Of(setup)} FAILED: {e.Message}");
            return new Entry(setup, load, null, e.Message);
        }
    }

    /// <summary>A markdown section: per load a table with one column per set-up and one row per figure, then each run's full report.</summary>
    public static string Render(IReadOnlyList<Entry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var md = new StringBuilder();
        md.Append("## Hostile load (flood)\n\n");
        foreach (IGrouping<HostileLoad, Entry> group in entries.GroupBy(e => e.Load))
            Table(md, group.Key, [.. group]);
        foreach (Entry e in entries)
        {
            md.Append("### flood, ").Append(BenchNames.Of(e.Setup)).Append(", ").Append(e.Load.Burst is null ? "steady" : "bursts").Append("\n\n```\n");
            md.Append(e.Result?.Report() ?? "FAILED: " + e.Failure + "\n").Append("```\n\n");
        }
        return md.ToString();
    }

    private static void Table(StringBuilder md, HostileLoad load, IReadOnlyList<Entry> entries)
    {
        md.Append(load.Describe()).Append(", nf_conntrack_max 5000.\n\n");
        md.Append("| figure |").AppendJoin("", entries.Select(e => $" {BenchNames.Of(e.Setup)} |")).Append('\n');
        md.Append("|---|").AppendJoin("", entries.Select(_ => "---:|")).Append('\n');
        Row(md, entries, "forbidden packets passed", r => r.ForbiddenPassed.ToString(CultureInfo.InvariantCulture));
        Row(md, entries, "conversations survived", r => $"{r.ConversationsSurvived}/{r.Conversations.Count}");
        Row(md, entries, "new connections (100 ms slots)", r => r.Probe is { } p ? $"{p.Successes}/{p.Attempts} ({p.SuccessPercent:F1} %)" : "-");
        Row(md, entries, "longest run of failed slots", r => r.Probe?.LongestFailedRun.ToString(CultureInfo.InvariantCulture) ?? "-");
        Row(md, entries, "table max sampled / max", r => $"{HostileResult.Num(r.TableEntriesMax)} / {HostileResult.Num(r.Samples.LastOrDefault(s => s.TableMax is not null)?.TableMax)}");
        Row(md, entries, "SYN flood sent", r => HostileResult.Flood(r.Syn));
        Row(md, entries, "UDP overload sent", r => HostileResult.Flood(r.Udp));
        Row(md, entries, "flood SYNs at the server", r => r.Arrived.Syn.ToString(CultureInfo.InvariantCulture));
        Row(md, entries, "overload datagrams at the server", r => r.Arrived.Udp.ToString(CultureInfo.InvariantCulture));
        Row(md, entries, "unjudged_dropped", r => HostileResult.Num(r.Stat("unjudged_dropped")));
        Row(md, entries, "table.early_drops", r => HostileResult.Num(r.Stat("table.early_drops")));
        Row(md, entries, "table.full_drops", r => HostileResult.Num(r.Stat("table.full_drops")));
        Row(md, entries, "daemon RSS before → max", r => r.RssBeforeBytes is null ? "-" : $"{HostileResult.Mb(r.RssBeforeBytes)} → {HostileResult.Mb(r.RssMaxBytes)}");
        Row(md, entries, "SIGTERM to exit", r => r.StopSeconds is double s ? $"{s:F2} s" : r.FinalStats is null ? "-" : "> 5 s");
        md.Append('\n');
    }

    private static void Row(StringBuilder md, IReadOnlyList<Entry> entries, string name, Func<HostileResult, string> figure)
    {
        md.Append("| ").Append(name).Append(" |");
        foreach (Entry e in entries)
            md.Append(' ').Append(e.Result is null ? "failed" : figure(e.Result)).Append(" |");
        md.Append('\n');
    }
}
