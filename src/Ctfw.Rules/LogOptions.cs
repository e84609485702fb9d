namespace Ctfw.Rules;

/// <summary>`-j LOG` options (xt_LOG's xt_log_info).</summary>
public sealed record LogOptions
{
    /// <summary>xt_log_info.prefix is char[30]: iptables truncates longer prefixes to 29 characters.</summary>
    public const int MaxPrefixLength = 29;
    /// <summary>LOG_WARNING, iptables' default.</summary>
    public const byte DefaultLevel = 4;

    public string Prefix { get; init; } = "";
    /// <summary>Syslog priority 0 (emerg) … 7 (debug).</summary>
    public byte Level { get; init; } = DefaultLevel;
    public LogFlags Flags { get; init; }
}

/// <summary>xt_LOG's logflags (values are the kernel's NF_LOG_* bits).</summary>
[Flags]
public enum LogFlags : byte
{
    None = 0,
    /// <summary>--log-tcp-sequence: SEQ= ACK=.</summary>
    TcpSequence = 0x01,
    /// <summary>--log-tcp-options: OPT (…) after URGP=.</summary>
    TcpOptions = 0x02,
    /// <summary>--log-ip-options: OPT (…) of IPv4 options / IPv6 extension headers.</summary>
    IpOptions = 0x04,
}
