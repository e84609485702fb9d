using System.Globalization;
using System.Text;

namespace Ctfw.Lab.Bench;

/// <summary>The markdown report of a <see cref="BenchRun"/>: header, results, ratios, targets, profile, soak.</summary>
public static class BenchReport
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static string Render(BenchRun run)
    {
        var summary = new BenchSummary(run);
        var w = new StringBuilder();
        IReadOnlyList<BenchSetup> setups = run.Options.Setups;
        IReadOnlyList<BenchWorkload> workloads = run.Options.Workloads;

        Line(w, $"# ctfw bench — {run.Machine.StartedUtc:yyyy-MM-dd HH:mm} UTC");
        Line(w);
        Line(w, $"| | |");
        Line(w, $"|---|---|");
        Line(w, $"| kernel | {run.Machine.Kernel} |");
        Line(w, $"| CPU | {run.Machine.CpuModel} |");
        Line(w, $"| nproc | {run.Machine.Processors} |");
        Line(w, $"| .NET | {run.Machine.DotnetVersion} |");
        Line(w, $"| runs | {run.Options.Reps} rep(s) × {run.Options.Seconds.TotalSeconds:0.#} s per measurement, set-ups rotated per rep; queue {run.Options.Queue}; copy range {(run.Options.CopyRange is int c ? c.ToString(s_inv) + " B" : "whole packet")} (C loop and ctfw) |");
        Spread? steal = Spread.Of(run.Measurements.Select(m => m.StealPercent));
        Line(w, $"| steal | {(steal is { } s ? $"median {s.Median:0.0} %, max {s.Max:0.0} % over {s.Count} measurements" : "-")} |");
        Line(w);

        Line(w, $"## Results");
        Line(w);
        Line(w, $"Median over reps, [min–max] when more than one rep.");
        Line(w);
        Line(w, $"| workload | unit | {string.Join(" | ", setups.Select(BenchNames.Of))} |");
        Line(w, $"|---|---|{string.Concat(setups.Select(_ => "---:|"))}");
        foreach (BenchWorkload wl in workloads)
        {
            foreach ((string label, string unit, Func<BenchMeasurement, double?> figure, string format) in Rows(wl))
                Line(w, $"| {label} | {unit} | {string.Join(" | ", setups.Select(s => Cell(summary.Of(s, wl, figure), format)))} |");
        }
        Line(w);

        if (workloads.Contains(BenchWorkload.Lat) && setups.Contains(BenchSetup.Plain))
        {
            Line(w, $"Added latency (set-up − plain, medians):");
            Line(w);
            Line(w, $"| | {string.Join(" | ", setups.Where(s => s != BenchSetup.Plain).Select(BenchNames.Of))} |");
            Line(w, $"|---|{string.Concat(setups.Where(s => s != BenchSetup.Plain).Select(_ => "---:|"))}");
            foreach (bool p99 in (bool[])[false, true])
                Line(w, $"| added {(p99 ? "p99" : "p50")} µs | {string.Join(" | ", setups.Where(s => s != BenchSetup.Plain).Select(s => Num(summary.AddedLatency(s, p99), "0")))} |");
            Line(w);
        }

        Line(w, $"## Ratios");
        Line(w);
        Line(w, $"Of the medians; for lat, of the added p99 latency (lower is better).");
        Line(w);
        (BenchSetup Setup, BenchSetup Reference)[] ratios =
        [
            (BenchSetup.Ctfw1, BenchSetup.CLoop), (BenchSetup.Ctfw2, BenchSetup.CLoop), (BenchSetup.Offload, BenchSetup.CLoop),
            (BenchSetup.Ctfw1, BenchSetup.Kernel), (BenchSetup.Ctfw2, BenchSetup.Kernel), (BenchSetup.Offload, BenchSetup.Kernel),
        ];
        Line(w, $"| workload | {string.Join(" | ", ratios.Select(r => $"{BenchNames.Of(r.Setup)}÷{BenchNames.Of(r.Reference)}"))} |");
        Line(w, $"|---|{string.Concat(ratios.Select(_ => "---:|"))}");
        foreach (BenchWorkload wl in workloads)
            Line(w, $"| {BenchNames.Of(wl)} | {string.Join(" | ", ratios.Select(r => BenchSummary.Format(summary.Ratio(r.Setup, r.Reference, wl))))} |");
        Line(w);

        Line(w, $"## Targets");
        Line(w);
        foreach (TargetResult t in summary.Targets())
        {
            string status = t.Status switch { TargetStatus.Met => "met", TargetStatus.Missed => "MISSED", _ => "unknown" };
            Line(w, $"- {t.Name}: **{status}** — {t.Detail}");
        }
        Line(w);

        List<BenchSetup> daemons = [.. setups.Where(BenchNames.HasDaemon)];
        if (daemons.Count > 0)
        {
            Line(w, $"## Profile");
            Line(w);
            Line(w, $"Daemon set-ups, medians over reps. CPU µs per packet: whole process (user / sys), and its queue worker threads alone;");
            Line(w, $"syscalls = recvmmsg + verdict sendmsg calls; batch = packets per verdict message; drops = kernel queue drops.");
            // Offload's per-packet figures divide by the packets ctfw saw; the ones the kernel forwarded
            // without it are a column of their own, so the bypass shows.
            bool offload = daemons.Contains(BenchSetup.Offload);
            if (offload)
                Line(w, $"offloaded = packets the kernel forwarded without ctfw (offload.packets), with their share of all the packets through the gateway.");
            Line(w);
            Line(w, $"| set-up | workload | packets | {(offload ? "offloaded | " : "")}user µs/pkt | sys µs/pkt | worker user/sys µs/pkt | syscalls/pkt | batch | worker B/pkt | drops |");
            Line(w, $"|---|---|---:|{(offload ? "---:|" : "")}---:|---:|---:|---:|---:|---:|---:|");
            foreach (BenchWorkload wl in workloads)
            {
                foreach (BenchSetup d in daemons)
                {
                    string P(Func<DaemonProfile, double?> f, string format) => Num(summary.Of(d, wl, m => m.Profile is { } p ? f(p) : null)?.Median, format);
                    string workers = P(p => p.WorkerUserUsPerPacket, "0.000") + " / " + P(p => p.WorkerSysUsPerPacket, "0.000");
                    string offloaded = !offload ? "" : d != BenchSetup.Offload ? "- | "
                        : $"{P(p => p.OffloadedPackets, "0")} ({Percent(summary.Of(d, wl, m => m.Profile?.OffloadedShare)?.Median)}) | ";
                    Line(w, $"| {BenchNames.Of(d)} | {BenchNames.Of(wl)} | {P(p => p.Packets, "0")} | {offloaded}{P(p => p.UserUsPerPacket, "0.000")} | {P(p => p.SysUsPerPacket, "0.000")} | {(workers == "- / -" ? "-" : workers)} | {P(p => p.SyscallsPerPacket, "0.000")} | {P(p => p.AverageBatch, "0.0")} | {P(p => p.AllocatedBytesPerPacket, "0.00")} | {P(p => p.KernelQueueDrops, "0")} |");
                }
            }
            Line(w);
        }

        if (run.Soak is { } soak)
        {
            Line(w, $"## Soak (ctfw1, mixed load, {soak.Duration.TotalSeconds:0} s)");
            Line(w);
            if (soak.Failure is not null)
            {
                Line(w, $"FAILED: {soak.Failure}");
            }
            else
            {
                Line(w, $"| packets | gc gen0 / gen1 / gen2 | gc pause | worker alloc | worker B/pkt | process alloc | user / sys µs/pkt | RSS | steal |");
                Line(w, $"|---:|---|---:|---:|---:|---:|---:|---:|---:|");
                Line(w, $"| {soak.Packets} | {L(soak.Gen0)} / {L(soak.Gen1)} / {L(soak.Gen2)} | {(soak.GcPauseUs is long p ? p.ToString(s_inv) + " µs" : "-")} | {Bytes(soak.WorkerAllocatedBytes)} | {Num(soak.WorkerBytesPerPacket, "0.00")} | {Bytes(soak.ProcessAllocatedBytes)} | {Num(soak.UserUsPerPacket, "0.000")} / {Num(soak.SysUsPerPacket, "0.000")} | {Bytes(soak.RssBytes)} | {soak.StealPercent:0.0} % |");
                if (soak.Load.Length > 0)
                {
                    Line(w);
                    Line(w, $"Load: {soak.Load}");
                }
            }
            Line(w);
        }

        if (run.Scale is { } scale)
        {
            Line(w, $"## Scale (ctfw1 with {scale.Flows:N0} concurrent UDP flows)");
            Line(w);
            if (scale.Failure is not null)
            {
                Line(w, $"FAILED: {scale.Failure}");
            }
            else
            {
                Line(w, $"| flows sent | seen by ctfw | table entries | RSS before | RSS with the flows | of which private | per flow | managed heap | fill rate |");
                Line(w, $"|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                Line(w, $"| {scale.Sent} | {scale.DaemonPackets} | {L(scale.TableEntries)} | {Bytes(scale.RssBeforeBytes)} | {Bytes(scale.RssAfterBytes)} ({Num(scale.RssAfterBytes / 1e6, "0.0")} MB) | {Bytes(scale.RssAnonAfterBytes)} ({Num(scale.RssAnonAfterBytes / 1e6, "0.0")} MB) | {Num(scale.BytesPerFlow, "0")} B | {Bytes(scale.HeapBytes)} | {scale.FillPacketsPerSecond / 1000:0} kpps |");
                bool million = scale.Flows >= 1_000_000;
                string Verdict(long? bytes) => bytes is not long b ? "unknown" : b <= 200_000_000 ? "**met**" : "**MISSED**";
                Line(w);
                Line(w, $"Target (1 M flows at ≤ 200 MB of process memory): {(!million ? "not evaluated (fewer than 1 M flows)" : $"RSS {Num(scale.RssAfterBytes / 1e6, "0.0")} MB: {Verdict(scale.RssAfterBytes)}; private (anonymous) memory {Num(scale.RssAnonAfterBytes / 1e6, "0.0")} MB, without the shared file-backed runtime images: {Verdict(scale.RssAnonAfterBytes)}")}");
            }
            Line(w);
        }

        List<string> failures = [.. run.Measurements.Where(m => m.Failure is not null)
            .Select(m => $"{BenchNames.Of(m.Setup)} {BenchNames.Of(m.Workload)} rep {m.Rep}: {m.Failure}"), .. run.Problems];
        if (failures.Count > 0)
        {
            Line(w, $"## Failures");
            Line(w);
            foreach (string f in failures)
                Line(w, $"- {f}");
            Line(w);
        }
        return w.ToString();
    }

    /// <summary>The result rows of one workload: label, unit, figure, number format.</summary>
    private static IEnumerable<(string, string, Func<BenchMeasurement, double?>, string)> Rows(BenchWorkload workload)
    {
        switch (workload)
        {
            case BenchWorkload.Tcp:
                yield return ("tcp", "Gbit/s", m => m.Value, "0.00");
                break;
            case BenchWorkload.Udp:
                yield return ("udp", "kpps", m => m.Value / 1000, "0.0");
                yield return ("udp loss", "%", m => m.LossPercent, "0.0");
                break;
            case BenchWorkload.Conn:
                yield return ("conn", "conn/s", m => m.Value, "0");
                yield return ("conn errors", "count", m => m.Errors, "0");
                break;
            case BenchWorkload.Lat:
                yield return ("lat p50", "µs", m => m.P50Us, "0");
                yield return ("lat p99", "µs", m => m.P99Us, "0");
                yield return ("lat max", "µs", m => m.MaxUs, "0");
                break;
        }
    }

    private static string Cell(Spread? s, string format)
    {
        if (s is not { } v)
            return "-";
        string median = v.Median.ToString(format, s_inv);
        return v.Count > 1 ? $"{median} [{v.Min.ToString(format, s_inv)}–{v.Max.ToString(format, s_inv)}]" : median;
    }

    private static string Num(double? v, string format) => v is double d ? d.ToString(format, s_inv) : "-";

    /// <summary>A share (0..1) as a percentage with one decimal, or "-".</summary>
    internal static string Percent(double? share) => share is double s ? (s * 100).ToString("0.0", s_inv) + " %" : "-";

    private static string L(long? v) => v?.ToString(s_inv) ?? "-";

    internal static string Bytes(long? b) => b switch
    {
        null => "-",
        >= 10L << 20 => (b.Value / 1048576.0).ToString("0.0", s_inv) + " MiB",
        >= 10L << 10 => (b.Value / 1024.0).ToString("0.0", s_inv) + " KiB",
        _ => b.Value.ToString(s_inv) + " B",
    };

    private static void Line(StringBuilder w) => w.Append('\n');

    /// <summary>Every number in the report is formatted invariantly, whatever the machine's locale.</summary>
    private static void Line(StringBuilder w, FormattableString text) => w.Append(text.ToString(s_inv)).Append('\n');
}
