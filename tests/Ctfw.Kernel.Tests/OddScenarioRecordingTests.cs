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
    public void OddTcpScenarios_RecordedLive_MatchCtfwAndStoredRecordings() => ScenarioSubset.RecordAndCompare(Names, output);
}
