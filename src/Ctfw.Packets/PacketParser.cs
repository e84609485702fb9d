namespace Ctfw.Packets;

/// <summary>Parses one IP packet (starting at the network header) into a <see cref="ParsedPacket"/>.</summary>
public static class PacketParser
{
    /// <summary>
    /// Returns <see cref="InvalidReason.None"/> on success, otherwise the reason the packet cannot be
    /// tracked. Never throws, never allocates.
    /// </summary>
    public static InvalidReason Parse(ReadOnlySpan<byte> packet, out ParsedPacket parsed)
    {
        parsed = default;
        return packet.IsEmpty ? InvalidReason.Truncated : InvalidReason.BadIpVersion;
    }
}
