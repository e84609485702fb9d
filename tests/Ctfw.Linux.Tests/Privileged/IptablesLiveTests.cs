using Ctfw.Linux.Firewall;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>The installer against the real iptables binaries (whichever backend) inside a lab namespace.</summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class IptablesLiveTests
{
    private const string CrashedTag = "ctfw:999999999:1";

    [Fact]
    public void InstallThenRemove_CleansACrashedRunAndRestoresTheRulesetExactly()
    {
        using var lab = new NetnsLab();
        string[] tools = ["iptables", "ip6tables"];
        foreach (string tool in tools)
            Tool.RunIn(lab.B, tool, "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT"); // not ours: must survive
        Dictionary<string, string> before = tools.ToDictionary(t => t, t => Tool.RunIn(lab.B, t, "-S"));
        foreach (string tool in tools)
        {
            // What a killed ctfw leaves behind.
            Tool.RunIn(lab.B, tool, "-N", "CTFW");
            Tool.RunIn(lab.B, tool, "-A", "CTFW", "-m", "comment", "--comment", CrashedTag, "-j", "NFQUEUE", "--queue-num", "1");
            Tool.RunIn(lab.B, tool, "-I", "FORWARD", "-m", "comment", "--comment", CrashedTag, "-j", "CTFW");
        }

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions
        {
            QueueFirst = 2, QueueLast = 3, Hooks = [IptablesHook.Input, IptablesHook.Output, IptablesHook.Forward], NetworkNamespace = lab.B,
        });

        Assert.Equal(4, installer.RemovedLeftovers.Count); // two rules per family; the chain is reused, not deleted
        Assert.Equal(2, IptablesInstaller.ListTagged(new IptablesOptions { NetworkNamespace = lab.B }).Count(l => l.Contains("NFQUEUE", StringComparison.Ordinal)));
        foreach (string tool in tools)
        {
            string[] rules = Tool.RunIn(lab.B, tool, "-S").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.DoesNotContain(rules, r => r.Contains(CrashedTag, StringComparison.Ordinal));
            Assert.Contains($"-A CTFW -m comment --comment \"{installer.Tag}\" -j NFQUEUE --queue-balance 2:3 --queue-bypass", rules);
            foreach (string chain in (string[])["INPUT", "OUTPUT", "FORWARD"])
                Assert.Equal($"-A {chain} -m comment --comment \"{installer.Tag}\" -j CTFW", rules.First(r => r.StartsWith($"-A {chain} ", StringComparison.Ordinal)));
        }

        Assert.Empty(installer.Remove());

        foreach (string tool in tools)
            Assert.Equal(before[tool], Tool.RunIn(lab.B, tool, "-S"));
    }

    [Fact]
    public void Install_WhileAnotherLiveRunOwnsTheChain_RefusesAndChangesNothing()
    {
        using var lab = new NetnsLab();
        var options = new IptablesOptions { Hooks = [IptablesHook.Input], Ipv6 = false, NetworkNamespace = lab.B };
        string live = IptablesInstaller.OwnTag(); // this test process: a ctfw that is certainly running
        Tool.RunIn(lab.B, "iptables", "-N", "CTFW");
        Tool.RunIn(lab.B, "iptables", "-A", "CTFW", "-m", "comment", "--comment", live, "-j", "NFQUEUE", "--queue-num", "0");
        Tool.RunIn(lab.B, "iptables", "-I", "INPUT", "-m", "comment", "--comment", live, "-j", "CTFW");
        string before = Tool.RunIn(lab.B, "iptables", "-S");

        var e = Assert.Throws<InvalidOperationException>(() => IptablesInstaller.Install(options, ProcessCommandRunner.Instance, "ctfw:2:2"));

        Assert.Contains("still running", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Tool.RunIn(lab.B, "iptables", "-S"));
    }

    [Fact]
    public void OffloadMark_AcceptListedAboveTheQueueRule_CheckedRepairedAtItsPlace_RemovedCleanly()
    {
        using var lab = new NetnsLab();
        string[] tools = ["iptables", "ip6tables"];
        Dictionary<string, string> before = tools.ToDictionary(t => t, t => Tool.RunIn(lab.B, t, "-S"));

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions
        {
            QueueFirst = 4, Hooks = [IptablesHook.Forward], OffloadMark = 0x00800000, NetworkNamespace = lab.B,
        });
        installer.PrepareCheck();

        string[] Chain(string tool) => Tool.RunIn(lab.B, tool, "-S", "CTFW").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string accept = $"-A CTFW -m mark --mark 0x800000/0x800000 -m comment --comment \"{installer.Tag}\" -j ACCEPT";
        string queue = $"-A CTFW -m comment --comment \"{installer.Tag}\" -j NFQUEUE --queue-num 4 --queue-bypass";
        foreach (string tool in tools)
            Assert.Equal(["-N CTFW", accept, queue], Chain(tool)); // as iptables prints it: the ACCEPT first
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);

        // Someone deletes the ACCEPT: the check puts it back above the queue rule.
        Tool.RunIn(lab.B, "ip6tables", "-D", "CTFW", "1");
        IptablesCheckResult result = installer.Check(repair: true);
        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Single(result.Problems);
        Assert.Equal(["-N CTFW", accept, queue], Chain("ip6tables"));
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);

        Assert.Empty(installer.Remove());
        foreach (string tool in tools)
            Assert.Equal(before[tool], Tool.RunIn(lab.B, tool, "-S"));
    }
}
