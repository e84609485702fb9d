using System.Globalization;
using System.Text;
using Ctfw.Kernel.Tests.Recording;
using Xunit.Abstractions;

namespace Ctfw.Kernel.Tests;

/// <summary>
/// Privileged tier, for the odd-TCP scenarios of issue 11 only (tcp_overlapping_segments,
/// tcp_rst_with_data, tcp_one_sided_midstream): records them through the live kernel exactly as
/// <see cref="KernelRecordingTests"/> records the whole corpus, so they can be (re)recorded without
/// rewriting every other recording. With <c>CTFW_RECORD=1</c> their files go to
/// <c>tests/data/kernel</c> and <c>INDEX.md</c> is regenerated from all stored recordings.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(KernelDataCollection.Name)]
public sealed class OddScenarioRecordingTests(ITestOutputHelper output)
{
    public static readonly IReadOnlyList<string> Names = ["tcp_overlapping_segments", "tcp_rst_with_data", "tcp_one_sided_midstream"];

    [Fact]
    public void OddTcpScenarios_RecordedLive_MatchCtfwAndStoredRecordings()
    {
        string? why = Tool.WhyUnavailable();
        if (why is not null)
            Assert.Fail($"Privileged kernel tests cannot run: {why}.");

        string stored = KernelData.Directory;
        string scratch = Path.Combine(Path.GetTempPath(), $"ctfw-odd-{Environment.ProcessId}-{Guid.NewGuid():N}");
        string outputDirectory = KernelData.RecordMode ? stored : Path.Combine(scratch, "out");
        var diff = new StringBuilder();
        try
        {
            List<ScenarioRecording> live = [];
            using (var lab = new KernelLab())
            {
                var recorder = new KernelRecorder(lab, Path.Combine(scratch, "work"));
                foreach (string name in Names)
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
                    if (!r.Rows[i].Verdict.SameClassification(ours[i]))
                        diff.AppendLine(CultureInfo.InvariantCulture, $"{r.Name} #{i + 1}: kernel {r.Rows[i].Verdict}, ctfw {ours[i]} ({ours[i].Reason})");
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
