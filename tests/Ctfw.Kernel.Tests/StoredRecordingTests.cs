using System.Globalization;
using System.Text;
using Ctfw.Kernel.Tests.Recording;


namespace Ctfw.Kernel.Tests;

/// <summary>
/// Unit tier, no privileges: the stored recordings in <c>tests/data/kernel</c> are complete, agree with
/// the scenario definitions packet for packet, and agree with the spec wherever the scenario does not
/// document a kernel deviation.
/// </summary>
[Collection(KernelDataCollection.Name)]
public sealed class StoredRecordingTests
{
    public static TheoryData<string> ScenarioNames()
    {
        var data = new TheoryData<string>();
        foreach (KernelScenario s in KernelScenarios.All)
            data.Add(s.Name);
        return data;
    }

    [Fact]
    public void Catalog_Scenarios_AtLeast99WithUniqueFileNames()
    {
        IReadOnlyList<KernelScenario> all = KernelScenarios.All;
        Assert.True(all.Count >= 99, $"only {all.Count} scenarios");
        Assert.Equal(all.Count, all.Select(s => s.Name).Distinct(StringComparer.Ordinal).Count());
        Assert.All(all, s => Assert.Matches("^[a-z0-9_]+$", s.Name));
        Assert.All(all, s => Assert.NotEmpty(s.Packets));
    }

    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void StoredRecording_Scenario_HasOneRowAndOnePacketPerSentPacket(string name)
    {
        KernelScenario scenario = KernelScenarios.Get(name);
        Assert.True(ScenarioRecording.Exists(KernelData.Directory, name),
            $"no recording of {name} in {KernelData.Directory}; record with CTFW_RECORD=1 (privileged)");
        ScenarioRecording r = ScenarioRecording.Load(KernelData.Directory, name);

        Assert.Equal(scenario.Packets.Count, r.Rows.Count);
        Assert.Equal(scenario.Packets.Count, r.Packets.Count);
        Assert.Equal(Enumerable.Range(1, r.Rows.Count), r.Rows.Select(row => row.Index));
        for (int i = 0; i < scenario.Packets.Count; i++)
        {
            byte[] built = scenario.Packets[i].Packet.ToBytes();
            Assert.True(KernelRecorder.SamePacket(built, r.Packets[i].Packet),
                $"{name} #{i + 1}: stored packet differs from the scenario's ({scenario.Packets[i].Packet.Describe()}); re-record");
        }
        Assert.True(r.Packets.Zip(r.Packets.Skip(1)).All(p => p.First.TimestampNanoseconds <= p.Second.TimestampNanoseconds),
            "timestamps go backwards");
        Assert.Equal(scenario.EffectiveSysctls, r.Sysctls);
    }

    /// <summary>
    /// ctfw's classifier, with the lab's helper assignment (<see cref="LabHelpers"/>), on every stored packet: the
    /// kernel's ctstate, direction and protocol state, and a helper drop exactly where the kernel's helper logged one.
    /// </summary>
    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void StoredRecording_Scenario_CtfwAgreesWithKernelPerPacket(string name)
    {
        ScenarioRecording r = ScenarioRecording.Load(KernelData.Directory, name);
        IReadOnlyList<KernelVerdict> ours = CtfwVerdicts.Classify(r);
        Assert.Equal(r.Rows.Count, ours.Count);
        var diff = new StringBuilder();
        for (int i = 0; i < r.Rows.Count; i++)
        {
            if (CtfwVerdicts.Disagreement(r, ours, i) is { } differs)
                diff.AppendLine(CultureInfo.InvariantCulture, $"#{i + 1}: {differs}");
        }
        Assert.True(diff.Length == 0, $"{name}: ctfw disagrees with the stored kernel verdicts:\n{diff}");
    }

    [Fact]
    public void HelperRecordings_KernelLoggedHelperDrops_CtfwDropsTheSamePackets()
    {
        // The helper-drop comparison must have something to compare: the FTP corpus holds partial commands.
        int drops = 0;
        foreach (string name in HelperScenarioRecordingTests.Names)
        {
            ScenarioRecording r = ScenarioRecording.Load(KernelData.Directory, name);
            IReadOnlyList<KernelVerdict> ours = CtfwVerdicts.Classify(r);
            for (int i = 0; i < r.Rows.Count; i++)
            {
                if (CtfwVerdicts.KernelHelperDrop(r.Diagnostics[i]))
                {
                    drops++;
                    Assert.True(CtfwVerdicts.HelperDropped(ours[i]), $"{name} #{i + 1}: the kernel's helper dropped it, ctfw's did not");
                }
            }
        }
        Assert.True(drops >= 3, $"only {drops} helper drops in the stored FTP/TFTP recordings");
    }

    [Theory]
    [MemberData(nameof(ScenarioNames))]
    public void StoredRecording_Scenario_IdleGapsLastAtLeastTheScriptedSleeps(string name)
    {
        KernelScenario scenario = KernelScenarios.Get(name);
        ScenarioRecording r = ScenarioRecording.Load(KernelData.Directory, name);
        int packet = 0;
        TimeSpan pending = TimeSpan.Zero;
        foreach (ScenarioStep step in scenario.Steps)
        {
            if (step is SleepStep sleep)
            {
                pending += sleep.Duration;
                continue;
            }
            if (pending > TimeSpan.Zero && packet > 0)
            {
                long gap = r.Packets[packet].TimestampNanoseconds - r.Packets[packet - 1].TimestampNanoseconds;
                Assert.True(gap >= pending.Ticks * 100,
                    $"{name}: only {gap / 1e9:0.000} s between packets {packet} and {packet + 1}, script sleeps {pending.TotalSeconds} s");
            }
            pending = TimeSpan.Zero;
            packet++;
        }
    }

    /// <summary>
    /// Every recorded verdict is what the spec predicts, unless the scenario documents that the live
    /// kernel differs (and why). A new difference therefore fails here until someone has looked at it.
    /// </summary>
    [Fact]
    public void StoredRecordings_EveryPacket_MatchesSpecOrDocumentedKernelDeviation()
    {
        var diff = new StringBuilder();
        foreach (KernelScenario scenario in KernelScenarios.All)
        {
            if (!ScenarioRecording.Exists(KernelData.Directory, scenario.Name))
                continue; // reported by the per-scenario test
            ScenarioRecording r = ScenarioRecording.Load(KernelData.Directory, scenario.Name);
            for (int i = 0; i < Math.Min(r.Rows.Count, scenario.Packets.Count); i++)
            {
                SendStep step = scenario.Packets[i];
                if (!step.Expected.SameClassification(r.Rows[i].Verdict))
                {
                    diff.AppendLine(CultureInfo.InvariantCulture,
                        $"{scenario.Name} #{i + 1} {step.Packet.Describe()}: expected {step.Expected}" +
                        $"{(step.Kernel is null ? " (spec)" : " (documented kernel)")}, recorded {r.Rows[i].Verdict}" +
                        $"{(r.Diagnostics.Count > i ? $" [kernel log: {r.Diagnostics[i].KernelLog}]" : "")}");
                }
            }
        }
        Assert.True(diff.Length == 0, "Recorded kernel verdicts that neither the spec nor a documented deviation explain:\n" + diff);
    }
}
