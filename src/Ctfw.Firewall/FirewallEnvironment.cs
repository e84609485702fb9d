using Ctfw.Firewall.Logging;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Firewall;

/// <summary>ifindex → name for <c>-i</c>/<c>-o</c>. One per worker thread; the live daemon reads the namespace's list, replay names two fixed indexes.</summary>
public interface IInterfaceNames
{
    /// <summary>The name of <paramref name="index"/>; <see cref="IfName.None"/> for 0 or an unknown index. Must not block for long: it runs on the packet path.</summary>
    IfName Lookup(uint index, long now);
}

/// <summary>
/// The address a REJECT's ICMP error to a forwarded packet comes from (the kernel's icmp_send takes
/// the gateway's own address on the route back). Asked only for packets being rejected.
/// </summary>
public interface IIcmpSourceSelector
{
    IpAddress? For(IpAddress sender, bool v6);
}

/// <summary>Interfaces known by a fixed table (replay's <c>--in</c>/<c>--out</c>, tests).</summary>
public sealed class FixedInterfaceNames : IInterfaceNames
{
    private readonly Dictionary<uint, IfName> _names;

    public FixedInterfaceNames(params (uint Index, string Name)[] names)
    {
        _names = new Dictionary<uint, IfName>(names.Length);
        foreach ((uint index, string name) in names)
            _names[index] = IfName.Create(name);
    }

    public IfName Lookup(uint index, long now) => _names.TryGetValue(index, out IfName name) ? name : IfName.None;
}

/// <summary>
/// The pipeline's ways out to the world, given once at construction: interface names, the ICMP
/// source for REJECT answers, and the rate-limited line sinks. Everything is optional; a missing
/// sink means those lines are not written (replay, benches).
/// </summary>
public sealed class FirewallEnvironment
{
    public IInterfaceNames? Interfaces { get; init; }
    public IIcmpSourceSelector? IcmpSources { get; init; }
    /// <summary>LOG target lines.</summary>
    public LogSink? Log { get; init; }
    /// <summary>One line per rescued FIN/RST (<c>--rescue</c>).</summary>
    public RescueLog? RescueLog { get; init; }
}
