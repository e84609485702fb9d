using System.Globalization;

namespace Ctfw.Packets;

/// <summary>SCTP chunk types (RFC 9260 §3.2 and the extensions named): what the tracker reads and the lab sends.</summary>
public static class SctpChunkTypes
{
    public const byte Data = 0;
    public const byte Init = 1;
    public const byte InitAck = 2;
    public const byte Sack = 3;
    public const byte Heartbeat = 4;
    public const byte HeartbeatAck = 5;
    public const byte Abort = 6;
    public const byte Shutdown = 7;
    public const byte ShutdownAck = 8;
    public const byte Error = 9;
    public const byte CookieEcho = 10;
    public const byte CookieAck = 11;
    public const byte Ecne = 12;
    public const byte Cwr = 13;
    public const byte ShutdownComplete = 14;
    public const byte Auth = 15;         // RFC 4895
    public const byte IData = 64;        // RFC 8260
    public const byte AsconfAck = 128;   // RFC 5061
    public const byte Reconf = 130;      // RFC 6525
    public const byte Pad = 132;         // RFC 4820
    public const byte ForwardTsn = 192;  // RFC 3758
    public const byte Asconf = 193;      // RFC 5061
    public const byte IForwardTsn = 194; // RFC 8260

    public static string Name(byte type) => type switch
    {
        Data => "DATA",
        Init => "INIT",
        InitAck => "INIT_ACK",
        Sack => "SACK",
        Heartbeat => "HEARTBEAT",
        HeartbeatAck => "HEARTBEAT_ACK",
        Abort => "ABORT",
        Shutdown => "SHUTDOWN",
        ShutdownAck => "SHUTDOWN_ACK",
        Error => "ERROR",
        CookieEcho => "COOKIE_ECHO",
        CookieAck => "COOKIE_ACK",
        Ecne => "ECNE",
        Cwr => "CWR",
        ShutdownComplete => "SHUTDOWN_COMPLETE",
        Auth => "AUTH",
        IData => "I_DATA",
        AsconfAck => "ASCONF_ACK",
        Reconf => "RECONF",
        Pad => "PAD",
        ForwardTsn => "FORWARD_TSN",
        Asconf => "ASCONF",
        IForwardTsn => "I_FORWARD_TSN",
        _ => string.Create(CultureInfo.InvariantCulture, $"type {type}"),
    };
}
