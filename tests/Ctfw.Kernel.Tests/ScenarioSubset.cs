using System.Globalization;
using System.Text;
using Ctfw.Kernel.Tests.Recording;
using Xunit.Abstractions;

namespace Ctfw.Kernel.Tests;

/// <summary>Records a few scenarios through the live kernel without re-recording the whole corpus.</summary>
internal static class ScenarioSubset
{
    /// <summary>
    /// Records <paramref name="names"/> through the live kernel; ctfw must classify every recorded
    /// packet as the kernel did, and so must the stored recording unless CTFW_RECORD=1 rewrites it
    /// (then INDEX.md is regenerated from all stored recordings).
    /// </summary>
    public static void RecordAndCompare(IReadOnlyList<string> names, ITestOutputHelper output)
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged kernel tests cannot run: {why}.");

        string stored = KernelData.Directory;
        string scratch = Path.Combine(Path.GetTempPath(), $"ctfw-subset-{Environment.ProcessId}-{Guid.NewGuid():N}");
        string outputDirectory = KernelData.RecordMode ? stored : Path.Combine(scratch, "out");
        var diff = new StringBuilder();
        try
        {
            List<ScenarioRecording> live = [];
            using (var lab = new KernelLab())
            {
                var recorder = new KernelRecorder(lab, Path.Combine(scratch, "work"));
                foreach (string name in names)
                    live.Add(recorder.Record(KernelScenarios.Get(name), outputDirectory));
            }
            foreach (ScenarioRecording r in live)
            {
                IReadOnlyList<KernelVerdict> ours = CtfwVerdicts.Classify(r);
                KernelScenario scenario = KernelScenarios.Get(r.Name);
                for (int i = 0; i < r.Rows.Count; i++)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{r.Name} #{i + 1}: kernel {r.Rows[i].Verdict}, spec {scenario.Packets[i].Spec}, ctfw {ours[i]} ({r.Diagnostics[i].KernelLog})"));
                    if (CtfwVerdicts.Disagreement(r, ours, i) is { } differs)
                        diff.AppendLine(CultureInfo.InvariantCulture, $"{r.Name} #{i + 1}: {differs}");
                    if (!KernelData.RecordMode && ScenarioRecording.Exists(stored, r.Name))
                    {
                        KernelVerdict kept = ScenarioRecording.Load(stored, r.Name).Rows[i].Verdict;
                        if (!kept.SameClassification(r.Rows[i].Verdict))
                            diff.AppendLine(CultureInfo.InvariantCulture, $"{r.Name} #{i + 1}: stored {kept}, live {r.Rows[i].Verdict}");
                    }
                }
            }
            if (KernelData.RecordMode)
            {
                List<ScenarioRecording> all = [.. KernelScenarios.All.Where(s => ScenarioRecording.Exists(stored, s.Name))
                    .Select(s => ScenarioRecording.Load(stored, s.Name))];
                ScenarioIndex.Write(stored, KernelScenarios.All, all, File.ReadAllText("/proc/sys/kernel/osrelease").Trim());
            }
        }
        finally
        {
            if (Directory.Exists(scratch))
                Directory.Delete(scratch, recursive: true);
        }
        Assert.True(diff.Length == 0, "ctfw or the stored recordings disagree with the live kernel:\n" + diff);
    }
}
