using Ctfw.Conntrack;
using Ctfw.Packets;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

public class AllocationTests
{
    [Fact]
    public void Evaluate_TenThousandMixedPacketsAfterWarmUp_AllocatesZeroBytes()
    {
        Ruleset rs = T.Load(File.ReadAllText(Path.Combine(T.RulesDirectory(), "gateway.rules")));
        TestPacket[] packets =
        [
            T.Tcp(dport: 22), T.Tcp(v6: true, dport: 443, dst: T.Addr("2001:db8:1::10")), T.Udp(dport: 53), T.Udp(v6: true),
            T.Icmp(), T.Icmp(v6: true, type: 135), T.IcmpError(false, 3, 3, T.Udp()), T.Tcp(dport: 113),
            MatchTests.Fragment(T.Tcp(), 16, more: false), new TestPacket(T.Tcp().Bytes[..30]),
        ];
        CtState[] states = [CtState.New, CtState.Established, CtState.Invalid, CtState.Related];
        Hook[] hooks = [Hook.Input, Hook.Forward, Hook.Output];
        IfName eth0 = IfName.Create("eth0"), eth1 = IfName.Create("eth1");
        Span<int> logs = stackalloc int[8];
        int sink = 0;

        for (int round = 0; round < 2; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10_000; i++)
            {
                TestPacket p = packets[i % packets.Length];
                Hook hook = hooks[i % 3];
                var facts = new PacketFacts(hook, ref p.Parsed, p.Bytes, p.Result)
                {
                    In = hook == Hook.Output ? IfName.None : ((i & 4) == 0 ? eth0 : eth1),
                    Out = hook == Hook.Input ? IfName.None : ((i & 4) == 0 ? eth1 : eth0),
                    State = states[i % states.Length],
                    Direction = CtDirection.Original,
                };
                RuleVerdict v = rs.Evaluate(facts, logs);
                sink += (int)v.Verdict + v.LogCount + v.Rule;
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (round == 1) // round 0 is the warm-up (JIT tiering, statics)
                Assert.Equal(0, allocated);
        }
        Assert.NotEqual(0, sink);
        Assert.True(rs.GetPolicyCounters(Hook.Input).Packets + rs.Rules.Sum(r => rs.GetCounters(r.Index).Packets) > 0);
    }
}
