using System.Net;
using System.Net.Sockets;
using Ctfw.Firewall;
using Ctfw.Packets;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// The address a REJECT's ICMP error to a forwarded packet comes from: like the kernel's
/// icmp_send, the gateway's own address on the route back to the sender. Found by asking the
/// routing table (connect a UDP socket to the sender, read its local address: no packet is sent),
/// cached per sender because REJECT floods must not cost a syscall each. Off the accept path.
/// </summary>
internal sealed class IcmpSourceSelector : IIcmpSourceSelector
{
    private const int MaxEntries = 4096;
    private static readonly long s_ttl = 10 * System.Diagnostics.Stopwatch.Frequency;
    private readonly Dictionary<IpAddress, IpAddress> _cache = [];
    private long _cachedSince = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>The local source for an error sent to <paramref name="sender"/>, or null when there is no route.</summary>
    public IpAddress? For(IpAddress sender, bool v6)
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        if (_cache.Count >= MaxEntries || now - _cachedSince > s_ttl)
        {
            _cache.Clear(); // routes change; a stale answer lives at most the TTL
            _cachedSince = now;
        }
        if (_cache.TryGetValue(sender, out IpAddress cached))
            return cached;
        IpAddress? found = Lookup(sender, v6);
        if (found is IpAddress f)
            _cache[sender] = f;
        return found;
    }

    private static IpAddress? Lookup(IpAddress sender, bool v6)
    {
        Span<byte> bytes = stackalloc byte[16];
        sender.WriteV6(bytes);
        var target = new IPAddress(v6 ? bytes : bytes[..4]);
        try
        {
            using var probe = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            probe.Connect(new IPEndPoint(target, 9));
            if (probe.LocalEndPoint is not IPEndPoint local)
                return null;
            return IpAddress.TryParse(local.Address.ToString(), out IpAddress a, out _) ? a : null;
        }
        catch (SocketException)
        {
            return null; // no route: answer from the rejected packet's destination, as before
        }
    }
}
