using Xunit.Abstractions;

namespace Ctfw.Kernel.Tests;

/// <summary>
/// Privileged tier, for the SCTP and UDP-Lite scenarios of issue 17: records them through the live kernel as
/// <see cref="KernelRecordingTests"/> records the corpus; ctfw and the stored recordings must agree
/// with the kernel on every packet (ctstate, direction and the SCTP state of the entry).
/// With <c>CTFW_RECORD=1</c> their files go to <c>tests/data/kernel</c>.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(KernelDataCollection.Name)]
public sealed class SctpScenarioRecordingTests(ITestOutputHelper output)
{
    public static readonly IReadOnlyList<string> Names =
        ["sctp_association_lifecycle", "sctp_stray_init_then_data", "sctp_invalid_chunks", "sctp_heartbeat_paths", "sctp6_association", "udplite_new_reply",
         "sctp_other_chunk_types", "sctp_init_collision", "sctp_shutdown_collision", "sctp_chunks_in_other_states",
         "sctp_cookie_echo_vtag", "sctp_abort_t_bit", "sctp_multihoming_secondary_path", "sctp_truncated_and_crc",
         "sctp_bad_crc_unchecked", "sctp_timeouts_per_state", "udplite_timeouts"];

    [Fact]
    public void SctpScenarios_RecordedLive_MatchCtfwAndStoredRecordings() => ScenarioSubset.RecordAndCompare(Names, output);
}
