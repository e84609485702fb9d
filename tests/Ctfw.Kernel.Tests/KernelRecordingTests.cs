using System.Diagnostics;
using System.Globalization;
using System.Text;
using Ctfw.Kernel.Tests.Lab;
using Ctfw.Kernel.Tests.Recording;

using Xunit.Abstractions;

namespace Ctfw.Kernel.Tests;

/// <summary>
/// Privileged tier: plays every scenario against the live kernel. Normally the fresh recording goes
/// to a temp directory and must classify every packet exactly as the stored one (guards against
/// kernel drift and recorder bugs). With <c>CTFW_RECORD=1</c> it rewrites <c>tests/data/kernel</c>.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(KernelDataCollection.Name)]
public sealed class KernelRecordingTests(ITestOutputHelper output)
{
    [Fact]
    public void Scenarios_RecordedLive_MatchStoredRecordingsAndCtfw()
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged kernel tests cannot run: {why}.");

        bool record = KernelData.RecordMode;
        string stored = KernelData.Directory;
        RemoveStaleScratch();
        string scratch = Path.Combine(Path.GetTempPath(), $"{ScratchPrefix}{Environment.ProcessId}-{Guid.NewGuid():N}");
        string outputDirectory = record ? stored : Path.Combine(scratch, "out");
        Directory.CreateDirectory(outputDirectory);
        var total = Stopwatch.StartNew();
        List<ScenarioRecording> recordings = [];
        try
        {
            using (var lab = new KernelLab())
            {
                var recorder = new KernelRecorder(lab, Path.Combine(scratch, "work"));
                foreach (KernelScenario scenario in KernelScenarios.All)
                {
                    ScenarioRecording r = recorder.Record(scenario, outputDirectory);
                    recordings.Add(r);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{scenario.Name,-45} {r.Rows.Count,3} packets {r.Elapsed.TotalSeconds,6:0.00} s{(r.Attempts > 1 ? $" ({r.Attempts} attempts)" : "")}"));
                }
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{recordings.Count} scenarios, {recordings.Sum(r => r.Rows.Count)} packets, {total.Elapsed.TotalSeconds:0.0} s in all"));

            if (record)
            {
                ScenarioIndex.Write(stored, KernelScenarios.All, recordings, File.ReadAllText("/proc/sys/kernel/osrelease").Trim());
                output.WriteLine($"recordings written to {stored}");
                return;
            }

            var diff = new StringBuilder();
            foreach (ScenarioRecording live in recordings)
            {
                // A/B: ctfw's classifier on exactly the packets the live kernel just classified.
                IReadOnlyList<KernelVerdict> ours = CtfwVerdicts.Classify(live);
                for (int i = 0; i < live.Rows.Count; i++)
                {
                    if (CtfwVerdicts.Disagreement(live, ours, i) is { } differs)
                        diff.AppendLine(CultureInfo.InvariantCulture, $"{live.Name} #{i + 1}: {differs}");
                }

                if (!ScenarioRecording.Exists(stored, live.Name))
                {
                    diff.AppendLine(CultureInfo.InvariantCulture, $"{live.Name}: no stored recording in {stored}");
                    continue;
                }
                ScenarioRecording kept = ScenarioRecording.Load(stored, live.Name);
                KernelScenario scenario = KernelScenarios.Get(live.Name);
                if (kept.Rows.Count != live.Rows.Count)
                    diff.AppendLine(CultureInfo.InvariantCulture, $"{live.Name}: stored {kept.Rows.Count} packets, live {live.Rows.Count}");
                for (int i = 0; i < Math.Min(kept.Rows.Count, live.Rows.Count); i++)
                {
                    if (!kept.Rows[i].Verdict.SameClassification(live.Rows[i].Verdict))
                    {
                        diff.AppendLine(CultureInfo.InvariantCulture,
                            $"{live.Name} #{i + 1} ({scenario.Packets[i].Packet.Describe()}): stored {kept.Rows[i].Verdict}, live {live.Rows[i].Verdict} (kernel log: {live.Diagnostics[i].KernelLog})");
                    }
                }
            }
            Assert.True(diff.Length == 0,
                "ctfw disagrees with the live kernel, or the live kernel no longer classifies the scenarios as recorded " +
                "(kernel change, or a recorder bug). " +
                "If the kernel changed on purpose, re-record with CTFW_RECORD=1 and review the diff:\n" + diff);
        }
        finally
        {
            if (Directory.Exists(scratch))
                Directory.Delete(scratch, recursive: true);
        }
    }

    private const string ScratchPrefix = "ctfw-kernel-";

    /// <summary>Scratch directories of runs that were killed (their pid is gone), like <see cref="KernelLab.RemoveLeftovers"/>.</summary>
    private static void RemoveStaleScratch()
    {
        foreach (string dir in Directory.EnumerateDirectories(Path.GetTempPath(), ScratchPrefix + "*"))
        {
            string[] parts = Path.GetFileName(dir)[ScratchPrefix.Length..].Split('-');
            if (int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && !Directory.Exists($"/proc/{pid}"))
                Directory.Delete(dir, recursive: true);
        }
    }
}
