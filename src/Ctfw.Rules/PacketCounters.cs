namespace Ctfw.Rules;

/// <summary>A rule's (or policy's) counters, as `iptables -nvL` and `iptables-save -c` show them.</summary>
public readonly record struct PacketCounters(long Packets, long Bytes);
