using System.Buffers.Binary;

namespace Ctfw.Linux.Sync;

/// <summary>conntrackd's state message types (network.h <c>NET_T_STATE_CT_*</c>); ctfw syncs connections only.</summary>
public enum SyncMessageType : byte
{
    New = 0,
    Update = 1,
    Delete = 2,
}

/// <summary>What <see cref="SyncCodec.TryReadConnection(ReadOnlySpan{byte}, out SyncMessageType, out Ctfw.Conntrack.KernelConnection)"/> made of a message.</summary>
public enum SyncParse
{
    Ok,
    /// <summary>Not well formed by conntrackd's own rules (conntrackd would count it as malformed too).</summary>
    Malformed,
    /// <summary>Well formed, but not something ctfw takes (expectations, control messages, ICMP types with no inverse).</summary>
    Unsupported,
}

/// <summary>
/// Why a datagram or message was dropped; <see cref="SyncWire.Reason"/> names each for the counters.
/// The first group mirrors conntrackd's own malformed counters (sync-mode.c, channel handler).
/// </summary>
public enum SyncError : byte
{
    None = 0,
    Truncated,
    BadLength,
    BadVersion,
    BadFlags,
    BadType,
    BadAckRange,
    AttributeLength,
    UnknownAttribute,
    MissingAddress,
    MissingProtocol,
    MissingPorts,
    FamilyMismatch,
    BadTcpState,
    ZoneMismatch,
    /// <summary>Unsupported: an EXP_NEW/UPD/DEL message (ctfw has no expectations).</summary>
    Expectation,
    /// <summary>Unsupported: a control message handed to the connection decoder.</summary>
    Control,
    /// <summary>Unsupported: an ICMP tuple whose type has no reply type (no entry can exist).</summary>
    NotInvertible,
}

/// <summary>
/// conntrackd's message header (include/network.h), all fields big-endian:
/// <code>
///  0               1               2               3
///  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
/// +-------+-------+---------------+-------------------------------+
/// |version| type  |     flags     |  len (whole message, bytes)   |
/// +-------+-------+---------------+-------------------------------+
/// |                       seq (per sender)                        |
/// +---------------------------------------------------------------+
/// |          from   (ACK, NACK, RESYNC control messages only)     |
/// +---------------------------------------------------------------+
/// |          to     (ACK, NACK, RESYNC control messages only)     |
/// +---------------------------------------------------------------+
/// </code>
/// State messages carry TLV attributes after the 8-byte header (see <see cref="SyncCodec"/>).
/// </summary>
public static class SyncWire
{
    public const int Version = 1;
    public const int HeaderSize = 8;
    public const int AckSize = 16;

    public const byte TypeExpNew = 3;
    public const byte TypeExpDel = 5;
    public const byte TypeControl = 10;

    public const byte FlagResync = 1 << 1;
    public const byte FlagNack = 1 << 2;
    public const byte FlagAck = 1 << 3;
    public const byte FlagAlive = 1 << 4;
    public const byte FlagHello = 1 << 5;
    public const byte FlagHelloBack = 1 << 6;

    /// <summary>Flags a state message may carry (IS_DATA in network.h): only the handshake ones.</summary>
    public const byte DataFlags = FlagHello | FlagHelloBack;

    /// <summary>IPv4 + UDP headers: a datagram carries at most MTU − 28 bytes of messages (channel.c).</summary>
    public const int UdpOverhead = 28;

    public static byte TypeOf(ReadOnlySpan<byte> message) => (byte)(message[0] & 0x0F);

    public static int VersionOf(ReadOnlySpan<byte> message) => message[0] >> 4;

    public static byte FlagsOf(ReadOnlySpan<byte> message) => message[1];

    public static int LengthOf(ReadOnlySpan<byte> message) => BinaryPrimitives.ReadUInt16BigEndian(message[2..]);

    public static uint SeqOf(ReadOnlySpan<byte> message) => BinaryPrimitives.ReadUInt32BigEndian(message[4..]);

    public static void WriteHeader(Span<byte> dst, byte type, byte flags, int length, uint seq)
    {
        dst[0] = (byte)((Version << 4) | type);
        dst[1] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], (ushort)length);
        BinaryPrimitives.WriteUInt32BigEndian(dst[4..], seq);
    }

    /// <summary>The counter name of a drop reason (stable: used as a <c>key: value</c> status line).</summary>
    public static string Reason(SyncError error) => error switch
    {
        SyncError.None => "none",
        SyncError.Truncated => "truncated",
        SyncError.BadLength => "bad-length",
        SyncError.BadVersion => "bad-version",
        SyncError.BadFlags => "bad-flags",
        SyncError.BadType => "bad-type",
        SyncError.BadAckRange => "bad-ack-range",
        SyncError.AttributeLength => "bad-attribute-length",
        SyncError.UnknownAttribute => "unknown-attribute",
        SyncError.MissingAddress => "missing-address",
        SyncError.MissingProtocol => "missing-protocol",
        SyncError.MissingPorts => "missing-ports",
        SyncError.FamilyMismatch => "family-mismatch",
        SyncError.BadTcpState => "bad-tcp-state",
        SyncError.ZoneMismatch => "zone-mismatch",
        SyncError.Expectation => "expectation",
        SyncError.Control => "control",
        SyncError.NotInvertible => "not-invertible",
        _ => "unknown",
    };

    /// <summary>Number of <see cref="SyncError"/> values (array size for per-reason counters).</summary>
    public const int ErrorCount = (int)SyncError.NotInvertible + 1;

    /// <summary>is from ≤ seq ≤ to, modulo 2^32 (network.h <c>between</c>).</summary>
    public static bool Between(uint seq, uint from, uint to) => unchecked(to - from >= seq - from);

    /// <summary>seq1 comes before seq2, modulo 2^32.</summary>
    public static bool Before(uint seq1, uint seq2) => unchecked((int)(seq1 - seq2)) < 0;
}
