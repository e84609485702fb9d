using Ctfw.Conntrack;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

public sealed class CarryCountersTests
{
    [Fact]
    public void CarryCountersFrom_UnchangedRulesAndPolicies_KeepCountsEditedRulesStartAtZero()
    {
        Ruleset old = T.Table("""
            -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
            -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
            -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
            """, input: "DROP");
        TestPacket ssh = T.Tcp(dport: 22), web = T.Tcp(dport: 80), other = T.Tcp(dport: 25);
        T.Eval(old, ssh);
        T.Eval(old, ssh);
        T.Eval(old, web);
        T.Eval(old, other);

        // 22 moves down, 80's first copy stays (the second copy is gone), 443 is new.
        Ruleset fresh = T.Table("""
            -A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
            -A INPUT -p tcp -m tcp --dport 443 -j ACCEPT
            -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
            """, input: "DROP");
        Assert.Equal(2, fresh.CarryCountersFrom(old));
        Assert.Equal(new PacketCounters(1, web.Bytes.Length), fresh.GetCounters(0));
        Assert.Equal(default, fresh.GetCounters(1));
        Assert.Equal(new PacketCounters(2, 2 * ssh.Bytes.Length), fresh.GetCounters(2));
        Assert.Equal(new PacketCounters(1, other.Bytes.Length), fresh.GetPolicyCounters(Hook.Input));

        T.Eval(fresh, ssh);
        Assert.Equal(3, fresh.GetCounters(2).Packets);
        Assert.Equal(2, old.GetCounters(0).Packets); // the old ruleset is left as it was
    }

    [Fact]
    public void CarryCountersFrom_SameTextInAnotherChain_NotCarried()
    {
        Ruleset old = T.Table("-A INPUT -p udp -j ACCEPT");
        T.Eval(old, T.Udp());
        Ruleset fresh = T.Table("-A FORWARD -p udp -j ACCEPT");
        Assert.Equal(0, fresh.CarryCountersFrom(old));
        Assert.Equal(0, fresh.GetCounters(0).Packets);
    }
}
