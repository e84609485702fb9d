using Xunit.Abstractions;

namespace Ctfw.Kernel.Tests;

/// <summary>
/// Privileged tier, for the FTP and TFTP scenarios of issue 17 (with the lab's helpers on ports 21 and 69, without
/// on 2121 and 6969): records them through the live kernel as <see cref="KernelRecordingTests"/> records the corpus;
/// ctfw must agree with the kernel on every packet (ctstate, direction, TCP state, and where a helper drops a
/// packet), and so must the stored recordings. With <c>CTFW_RECORD=1</c> their files go to <c>tests/data/kernel</c>.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(KernelDataCollection.Name)]
public sealed class HelperScenarioRecordingTests(ITestOutputHelper output)
{
    public static readonly IReadOnlyList<string> Names =
    [
        "ftp_active_port", "ftp_passive_pasv", "ftp_epsv", "ftp6_eprt", "ftp_split_command", "ftp_foreign_address",
        "ftp_second_port_replaces", "ftp_wrong_source", "ftp_without_helper", "tftp_rrq_wrq", "tftp_without_expectation",
    ];

    [Fact]
    public void HelperScenarios_RecordedLive_MatchCtfwAndStoredRecordings() => ScenarioSubset.RecordAndCompare(Names, output);
}
