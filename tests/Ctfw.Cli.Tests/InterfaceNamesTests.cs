using Ctfw.Cli.Daemon;
using Ctfw.Linux;
using Ctfw.Rules;

namespace Ctfw.Cli.Tests;

public sealed class InterfaceNamesTests
{
    [Fact]
    public void Lookup_KnownIndex_GivesName_UnknownRefreshesAtMostOncePerInterval()
    {
        int reads = 0;
        List<(uint, string)> current = [(1, "lo"), (7, "vgc")];
        var names = new InterfaceNames(() => { reads++; return [.. current]; });

        Assert.Equal("vgc", names.Lookup(7, now: 0).ToString());
        Assert.Equal(1, reads);
        Assert.Equal(IfName.None, names.Lookup(9, now: 10)); // unknown, but just refreshed
        Assert.Equal(1, reads);

        current.Add((9, "vgs"));
        Assert.Equal("vgs", names.Lookup(9, now: InterfaceNames.RefreshIntervalMs + 1).ToString());
        Assert.Equal(2, reads);
        Assert.Equal(IfName.None, names.Lookup(0, now: 99_999)); // 0 = no interface, never a lookup
        Assert.Equal(2, reads);
    }

    [Fact]
    public void NetInterfaces_ListsThisNamespacesLoopback()
    {
        List<(uint Index, string Name)> list = NetInterfaces.List();

        Assert.Contains(list, i => i.Name == "lo" && i.Index > 0);
    }
}
