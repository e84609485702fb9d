using Ctfw.Firewall;
using Ctfw.Linux;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// ifindex → name for <c>-i</c>/<c>-o</c> matching, read with if_nameindex(3) (the
/// current network namespace, whatever /sys shows). One per worker thread, so lookups take no lock. A miss
/// re-reads the list (interfaces come and go), at most once per <see cref="RefreshIntervalMs"/>
/// so that a packet storm naming an unknown index does not become a storm of netlink dumps.
/// </summary>
internal sealed class InterfaceNames : IInterfaceNames
{
    public const long RefreshIntervalMs = 1000;

    private readonly Func<IEnumerable<(uint Index, string Name)>> _source;
    private Dictionary<uint, IfName> _names = [];
    private long _lastRefresh = long.MinValue / 2; // "long ago", without overflowing now - _lastRefresh

    /// <param name="source">Where names come from; by default <see cref="NetInterfaces.List"/> (this namespace, over rtnetlink).</param>
    public InterfaceNames(Func<IEnumerable<(uint Index, string Name)>>? source = null)
    {
        _source = source ?? NetInterfaces.List;
    }

    /// <summary>The name of <paramref name="index"/>; <see cref="IfName.None"/> for 0 or an unknown index.</summary>
    public IfName Lookup(uint index, long now)
    {
        if (index == 0)
            return IfName.None;
        if (_names.TryGetValue(index, out IfName name))
            return name;
        if (now - _lastRefresh < RefreshIntervalMs)
            return IfName.None;
        Refresh(now);
        return _names.TryGetValue(index, out name) ? name : IfName.None;
    }

    public void Refresh(long now)
    {
        _lastRefresh = now;
        var names = new Dictionary<uint, IfName>();
        foreach ((uint index, string text) in _source())
        {
            if (IfName.TryCreate(text, out IfName name))
                names[index] = name;
        }
        if (names.Count > 0)
            _names = names;
    }
}
