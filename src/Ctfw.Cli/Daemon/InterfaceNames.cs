using System.Globalization;
using Ctfw.Rules;

namespace Ctfw.Cli.Daemon;

/// <summary>
/// ifindex → name for <c>-i</c>/<c>-o</c> matching, read from <c>/sys/class/net/*/ifindex</c> (the
/// sysfs of the current network namespace). One per worker thread, so lookups take no lock. A miss
/// re-reads the directory (interfaces come and go), at most once per <see cref="RefreshIntervalMs"/>
/// so that a packet storm naming an unknown index does not become a storm of directory scans.
/// </summary>
internal sealed class InterfaceNames
{
    public const long RefreshIntervalMs = 1000;

    private readonly string _root;
    private Dictionary<uint, IfName> _names = [];
    private long _lastRefresh = long.MinValue;

    public InterfaceNames(string root = "/sys/class/net")
    {
        _root = root;
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
        try
        {
            foreach (string dir in Directory.EnumerateDirectories(_root))
            {
                string text;
                try
                {
                    text = File.ReadAllText(Path.Combine(dir, "ifindex")).Trim();
                }
                catch (IOException)
                {
                    continue; // the interface went away while we listed
                }
                if (uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint index)
                    && IfName.TryCreate(Path.GetFileName(dir), out IfName name))
                {
                    names[index] = name;
                }
            }
        }
        catch (IOException)
        {
            return;
        }
        catch (UnauthorizedAccessException)
        {
            return;
        }
        _names = names;
    }
}
