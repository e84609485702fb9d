namespace Ctfw.Lab.Scenarios;

/// <summary>
/// The catalogue of scripted packet sequences recorded against the live kernel. Each scenario is
/// one small method: its summary says what it exercises and what kernel-conntrack.md predicts, and
/// every packet carries the spec's verdict next to it (and the kernel's, where the two differ).
/// Names are stable: they are the file names under <c>tests/data/kernel</c>.
/// </summary>
public static partial class KernelScenarios
{
    private static readonly Lazy<IReadOnlyList<KernelScenario>> s_all = new(() =>
    [
        // TCP: handshake, data, close
        TcpHandshakeDataClose(),
        TcpSynRetransmit(),
        TcpSynToClosedPortRst(),
        TcpClientRstBeforeReply(),
        TcpSimultaneousOpen(),
        TcpSimultaneousClose(),
        TcpHalfClose(),
        TcpTimeWaitReuse(),
        // TCP: window tracking
        TcpSeqAboveMaxEnd(),
        TcpAckAboveEnd(),
        TcpRetransmitAckedDataIgnored(),
        TcpWindowScaleBoth(),
        TcpWindowScaleClientOnly(),
        TcpWindowScaleServerOnly(),
        TcpTimestampsSack(),
        TcpSackWithoutPermission(),
        TcpWindowOverrunIgnored(),
        TcpAckBelowLowerBoundIgnored(),
        // TCP: expiry and mid-stream pickup
        TcpFinAfterEstablishedExpired(),
        TcpRstAfterEstablishedExpired(),
        TcpPickupAfterExpiryLoose(),
        TcpPickupAfterExpiryLooseOff(),
        TcpPickupServerFirst(),
        // TCP: resets
        TcpRstBeforeThirdAck(),
        TcpRstExactSeq(),
        TcpRstBelowMaxAck(),
        TcpRstBelowMaxAckIgnoreInvalidRst(),
        TcpRstInexactInWindow(),
        TcpRstFarOutOfWindow(),
        TcpRstInexactInCloseWait(),
        // TCP: odd packets, reuse, challenge ACKs
        TcpInvalidFlagCombinations(),
        TcpInvalidTransitions(),
        TcpSynAckWithoutEntry(),
        TcpSynAckOldInSynSent(),
        TcpSynChallengeAck(),
        TcpSynInEstablishedResync(),
        TcpSynAckReuseChallengeAck(),
        TcpSynAfterPeerRst(),
        TcpLastAckChallengeAck(),
        TcpBadChecksum(),
        TcpBadChecksumUnchecked(),
        // UDP
        UdpNewReplyStream(),
        UdpExpiry(),
        UdpChecksums(),
        // ICMP
        IcmpEcho(),
        IcmpEchoReplyWithoutRequest(),
        IcmpOtherTypes(),
        IcmpExpiry(),
        IcmpPortUnreachableForUdp(),
        IcmpTimeExceededForTcp(),
        IcmpErrorForUntrackedFlow(),
        IcmpErrorOriginalDirection(),
        IcmpErrorOuterDaddrMismatch(),
        // IPv6
        Tcp6HandshakeDataClose(),
        Udp6NewReply(),
        Icmpv6Echo(),
        Icmpv6PacketTooBigForTcp(),
        Icmpv6DestUnreachableForUdp(),
        Icmpv6NeighbourDiscoveryUntracked(),
        // Other protocols
        GenericProtocolNewReply(),
        GreV0NewReply(),
        // Lab corpus (issue 4)
        TcpSynFloodClosedPort(),
        TcpParallelHandshakes(),
        TcpRetransmittedFin(),
        TcpZeroWindowProbes(),
        Tcp6TimestampsSack(),
        TcpRstInexactChallengeAck(),
        IcmpErrorsForTcpAndUdp6(),
        // Odd TCP as public captures show it (issue 11)
        TcpOverlappingSegments(),
        TcpRstWithData(),
        TcpOneSidedMidstream(),
        // SCTP (issue 17)
        SctpAssociationLifecycle(),
        SctpStrayInitThenData(),
        SctpInvalidChunks(),
        SctpHeartbeatPaths(),
        Sctp6Association(),
        UdpLiteNewReply(),
        SctpOtherChunkTypes(),
        SctpInitCollision(),
        SctpShutdownCollision(),
        SctpChunksInOtherStates(),
        SctpCookieEchoVtag(),
        SctpAbortTBit(),
        SctpMultihomingSecondaryPath(),
        SctpTruncatedAndCrc(),
        SctpBadCrcUnchecked(),
        SctpTimeoutsPerState(),
        UdpLiteTimeouts(),
        // FTP and TFTP with and without helpers (issue 17)
        FtpActivePort(),
        FtpPassivePasv(),
        FtpEpsv(),
        Ftp6Eprt(),
        FtpSplitCommand(),
        FtpForeignAddress(),
        FtpSecondPortReplaces(),
        FtpWrongSource(),
        FtpWithoutHelper(),
        TftpRrqWrq(),
        TftpWithoutExpectation(),
    ]);

    /// <summary>Every scenario, in recording order.</summary>
    public static IReadOnlyList<KernelScenario> All => s_all.Value;

    public static KernelScenario Get(string name) =>
        All.FirstOrDefault(s => s.Name == name) ?? throw new KeyNotFoundException($"no kernel scenario '{name}'");

    private static KernelScenario Scenario(string name, string summary, Action<ScenarioBuilder> script)
    {
        var builder = new ScenarioBuilder();
        script(builder);
        return builder.Build(name, summary);
    }
}
