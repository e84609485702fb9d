namespace Ctfw.Linux.Nfqueue;

/// <summary>What a queued packet message carried, beyond the always-present header.</summary>
[Flags]
public enum PacketFlags : ushort
{
    None = 0,

    /// <summary>NFQA_MARK was present (the kernel sends it only for a non-zero mark).</summary>
    HasMark = 1 << 0,

    /// <summary>NFQA_CT was present (queue flag CONNTRACK and the packet has a conntrack entry).</summary>
    HasConntrack = 1 << 1,

    /// <summary>NFQA_CT_INFO was present.</summary>
    HasConntrackInfo = 1 << 2,

    /// <summary>NFQA_SKB_INFO GSO: a super-packet larger than the MTU (queue flag GSO).</summary>
    Gso = 1 << 3,

    /// <summary>NFQA_SKB_INFO CSUMNOTREADY: the transport checksum is not yet computed (CHECKSUM_PARTIAL).</summary>
    ChecksumNotReady = 1 << 4,

    /// <summary>NFQA_SKB_INFO CSUM_NOTVERIFIED: nobody validated the checksum on receive.</summary>
    ChecksumNotVerified = 1 << 5,

    /// <summary>NFQA_CAP_LEN: the payload is shorter than the packet (copy range).</summary>
    PayloadTruncated = 1 << 6,

    /// <summary>The datagram did not fit its receive slot (MSG_TRUNC); trailing attributes may be missing.</summary>
    MessageTruncated = 1 << 7,

    /// <summary>An attribute was too short for its type or ran past the message; it was skipped.</summary>
    Malformed = 1 << 8,

    /// <summary>NFQA_PAYLOAD was present.</summary>
    HasPayload = 1 << 9,
}
