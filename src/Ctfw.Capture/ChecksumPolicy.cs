namespace Ctfw.Capture;

/// <summary>
/// Which recorded packets replay verifies the TCP/UDP/ICMP checksum of, as the kernel does at
/// PRE_ROUTING when <c>nf_conntrack_checksum</c> is 1. A record cut by the snap length is never
/// verified in any mode: its bytes are missing, and the kernel, which had them all, did not see a
/// bad packet.
/// </summary>
public enum ChecksumPolicy
{
    /// <summary>
    /// Verify every datagram captured whole, except one whose checksum field still holds the
    /// checksum-offload placeholder (see <see cref="CapturedDatagram.ChecksumPending"/>): the kernel
    /// does not verify such a packet either (CHECKSUM_PARTIAL). The default.
    /// </summary>
    Auto,
    /// <summary>Verify every datagram captured whole, placeholders included (they count as bad).</summary>
    Verify,
    /// <summary>
    /// Verify nothing: captures whose checksums are stale for a reason <see cref="Auto"/> cannot see,
    /// e.g. rewritten or anonymised by a tool, or taken on a sender whose driver leaves zero or
    /// garbage in the field (tcpdump shows "cksum incorrect" on packets the network delivered).
    /// </summary>
    Off,
}

/// <summary>The command-line names of <see cref="ChecksumPolicy"/>: <c>auto</c>, <c>verify</c>, <c>off</c>.</summary>
public static class ChecksumPolicyNames
{
    public const string Choices = "auto, verify or off";

    public static bool TryParse(string text, out ChecksumPolicy policy)
    {
        (bool known, policy) = text switch
        {
            "auto" => (true, ChecksumPolicy.Auto),
            "verify" => (true, ChecksumPolicy.Verify),
            "off" => (true, ChecksumPolicy.Off),
            _ => (false, ChecksumPolicy.Auto),
        };
        return known;
    }

    public static string Name(this ChecksumPolicy policy) => policy switch
    {
        ChecksumPolicy.Verify => "verify",
        ChecksumPolicy.Off => "off",
        _ => "auto",
    };
}
