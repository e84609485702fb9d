using Ctfw.Firewall.Shadow;
using Ctfw.Linux.Firewall;

namespace Ctfw.Linux.Tests;

public sealed class IptablesInstallerTests
{
    private const string Tag = "ctfw:1:1";
    private const string Head = "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n";

    [Fact]
    public void Install_SingleQueueBothFamilies_AddsChainRuleAndJumpsInOrder()
    {
        var runner = new FakeRunner();

        using IptablesInstaller installer = IptablesInstaller.Install(
            new IptablesOptions { QueueFirst = 5, Hooks = [IptablesHook.Input, IptablesHook.Forward], Match = ["-p", "udp"] }, runner, Tag);

        string[] expected =
        [
            "iptables -w -t filter -S",
            "iptables -w -t mangle -S",
            "ip6tables -w -t filter -S",
            "ip6tables -w -t mangle -S",
            "iptables -w -t filter -N CTFW",
            "iptables -w -t filter -A CTFW -p udp -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 5 --queue-bypass",
            "iptables -w -t filter -I INPUT 1 -m comment --comment ctfw:1:1 -j CTFW",
            "iptables -w -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
            "ip6tables -w -t filter -N CTFW",
            "ip6tables -w -t filter -A CTFW -p udp -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 5 --queue-bypass",
            "ip6tables -w -t filter -I INPUT 1 -m comment --comment ctfw:1:1 -j CTFW",
            "ip6tables -w -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
        ];
        Assert.Equal(expected, runner.Commands);
        Assert.Empty(installer.RemovedLeftovers);
    }

    [Fact]
    public void Install_BalanceFanoutFailClosedInNamespace_UsesThoseOptions()
    {
        var runner = new FakeRunner();

        IptablesInstaller.Install(
            new IptablesOptions
            {
                QueueFirst = 2, QueueLast = 3, CpuFanout = true, FailClosed = true, Ipv6 = false,
                Hooks = [IptablesHook.Output], NetworkNamespace = "lab",
            },
            runner, Tag);

        Assert.Contains(
            "nsenter --net=/run/netns/lab -- iptables -w -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-balance 2:3 --queue-cpu-fanout",
            runner.Commands);
        Assert.DoesNotContain(runner.Commands, c => c.Contains("ip6tables", StringComparison.Ordinal));
    }

    [Fact]
    public void Remove_DeletesExactlyWhatWasAddedInReverse()
    {
        var runner = new FakeRunner();
        IptablesInstaller installer = IptablesInstaller.Install(
            new IptablesOptions { QueueFirst = 0, Hooks = [IptablesHook.Input, IptablesHook.Output], Ipv6 = false }, runner, Tag);
        runner.Commands.Clear();

        Assert.Empty(installer.Remove());

        string[] expected =
        [
            "iptables -w -t filter -D OUTPUT -m comment --comment ctfw:1:1 -j CTFW",
            "iptables -w -t filter -D INPUT -m comment --comment ctfw:1:1 -j CTFW",
            "iptables -w -t filter -D CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
            "iptables -w -t filter -X CTFW",
        ];
        Assert.Equal(expected, runner.Commands);
        Assert.Empty(installer.Remove()); // idempotent
        Assert.Equal(4, runner.Commands.Count);
    }

    [Fact]
    public void Install_LeftoversOfADeadRun_OursGoInFirstThenTheirsAreDeletedJumpsFirst_ChainReused()
    {
        var runner = new FakeRunner();
        runner.ListOutput["iptables"] = Head +
            "-N CTFW\n" +
            "-A INPUT -s 10.0.0.0/8 -j ACCEPT\n" +
            "-A CTFW -p udp -m comment --comment \"ctfw:999999999:5\" -j NFQUEUE --queue-num 0 --queue-bypass\n" +
            "-A INPUT -m comment --comment \"ctfw:999999999:5\" -j CTFW\n";

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Input] }, runner, Tag);

        Assert.Equal(
            [
                "iptables -t filter -D INPUT -m comment --comment ctfw:999999999:5 -j CTFW",
                "iptables -t filter -D CTFW -p udp -m comment --comment ctfw:999999999:5 -j NFQUEUE --queue-num 0 --queue-bypass",
            ],
            installer.RemovedLeftovers);
        // No moment without a jump: ours (in the chain the dead run left) before theirs go.
        Assert.Equal(
            [
                "iptables -w -t filter -S",
                "iptables -w -t mangle -S",
                "iptables -w -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
                "iptables -w -t filter -I INPUT 1 -m comment --comment ctfw:1:1 -j CTFW",
                "iptables -w -t filter -D INPUT -m comment --comment ctfw:999999999:5 -j CTFW",
                "iptables -w -t filter -D CTFW -p udp -m comment --comment ctfw:999999999:5 -j NFQUEUE --queue-num 0 --queue-bypass",
            ],
            runner.Commands);
        Assert.DoesNotContain(runner.Commands, c => c.Contains("10.0.0.0/8", StringComparison.Ordinal)); // not ours: untouched
        runner.Commands.Clear();
        installer.Remove();
        Assert.Equal("iptables -w -t filter -X CTFW", runner.Commands[^1]); // the chain is ours now
    }

    [Fact]
    public void Install_RulesOfALiveRun_Refuses()
    {
        var runner = new FakeRunner();
        string live = IptablesInstaller.OwnTag(); // this test process: certainly alive
        runner.ListOutput["iptables"] = Head + "-N CTFW\n" + $"-A INPUT -m comment --comment \"{live}\" -j CTFW\n";

        var e = Assert.Throws<InvalidOperationException>(() => IptablesInstaller.Install(new IptablesOptions { Ipv6 = false }, runner, Tag));

        Assert.Contains("still running", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(runner.Commands, c => c.Contains(" -D ", StringComparison.Ordinal) || c.Contains(" -N ", StringComparison.Ordinal));
    }

    [Fact]
    public void Install_ChainHoldingForeignRules_Refuses()
    {
        var runner = new FakeRunner();
        runner.ListOutput["iptables"] = Head + "-N CTFW\n-A CTFW -j ACCEPT\n";

        var e = Assert.Throws<InvalidOperationException>(() => IptablesInstaller.Install(new IptablesOptions { Ipv6 = false }, runner, Tag));

        Assert.Contains("did not add", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Install_FailureHalfway_RollsBackWhatItAdded()
    {
        var runner = new FakeRunner { FailWhen = c => c.StartsWith("ip6tables -w -t filter -N", StringComparison.Ordinal) };

        Assert.Throws<InvalidOperationException>(() => IptablesInstaller.Install(new IptablesOptions { Hooks = [IptablesHook.Input] }, runner, Tag));

        string[] tail = runner.Commands.TakeLast(3).ToArray();
        Assert.Equal(
            [
                "iptables -w -t filter -D INPUT -m comment --comment ctfw:1:1 -j CTFW",
                "iptables -w -t filter -D CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
                "iptables -w -t filter -X CTFW",
            ],
            tail);
    }

    [Fact]
    public void Options_Invalid_AreRejectedBeforeAnyCommand()
    {
        var runner = new FakeRunner();

        Assert.Throws<ArgumentException>(() => IptablesInstaller.Install(new IptablesOptions { QueueFirst = 3, QueueLast = 2 }, runner, Tag));
        Assert.Throws<ArgumentException>(() => IptablesInstaller.Install(new IptablesOptions { CpuFanout = true }, runner, Tag));
        Assert.Throws<ArgumentException>(() => IptablesInstaller.Install(new IptablesOptions { Hooks = [] }, runner, Tag));
        Assert.Throws<ArgumentException>(() => IptablesInstaller.Install(new IptablesOptions { Ipv4 = false, Ipv6 = false }, runner, Tag));
        Assert.Empty(runner.Commands);
    }

    [Theory]
    [InlineData("-A INPUT -m comment --comment \"ctfw:1:2\" -j CTFW", new[] { "-A", "INPUT", "-m", "comment", "--comment", "ctfw:1:2", "-j", "CTFW" })]
    [InlineData("-A X -m comment --comment \"a \\\"quoted\\\" b\"  -j Y", new[] { "-A", "X", "-m", "comment", "--comment", "a \"quoted\" b", "-j", "Y" })]
    [InlineData("-A X -m comment --comment \"\"", new[] { "-A", "X", "-m", "comment", "--comment", "" })]
    public void Tokenize_IptablesSaveQuoting_IsUndone(string line, string[] expected) =>
        Assert.Equal(expected, IptablesInstaller.Tokenize(line));

    [Fact]
    public void IsAlive_TagOfThisProcess_IsTrue_ForeignOrMalformedTags_AreFalse()
    {
        Assert.True(IptablesInstaller.IsAlive(IptablesInstaller.OwnTag()));
        Assert.False(IptablesInstaller.IsAlive($"ctfw:{Environment.ProcessId}:1")); // same pid, other start: reused pid
        Assert.False(IptablesInstaller.IsAlive("ctfw:999999999:1"));
        Assert.False(IptablesInstaller.IsAlive("ctfw:nonsense"));
    }

    [Fact]
    public void Install_ShadowMark_MarksInMangleBeforeTheQueueRule_AndRemovesBoth()
    {
        var runner = new FakeRunner();
        var mark = new KernelStateMark(KernelStateMark.DefaultShift);

        IptablesInstaller installer = IptablesInstaller.Install(
            new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Forward], ShadowMark = mark, Match = ["-m", "mark", "!", "--mark", "0x43544657"] },
            runner, Tag);

        string[] expected =
        [
            "iptables -w -t filter -S",
            "iptables -w -t mangle -S",
            "iptables -w -t mangle -N CTFW",
            "iptables -w -t mangle -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -m conntrack --ctstate NEW -j MARK --set-xmark 0x01000000/0x0f000000",
            "iptables -w -t mangle -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -m conntrack --ctstate ESTABLISHED -j MARK --set-xmark 0x02000000/0x0f000000",
            "iptables -w -t mangle -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -m conntrack --ctstate RELATED -j MARK --set-xmark 0x03000000/0x0f000000",
            "iptables -w -t mangle -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -m conntrack --ctstate INVALID -j MARK --set-xmark 0x04000000/0x0f000000",
            "iptables -w -t mangle -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -m conntrack --ctstate UNTRACKED -j MARK --set-xmark 0x05000000/0x0f000000",
            "iptables -w -t mangle -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -m conntrack --ctdir REPLY -j MARK --set-xmark 0x08000000/0x08000000",
            "iptables -w -t mangle -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
            "iptables -w -t filter -N CTFW",
            "iptables -w -t filter -A CTFW -m mark ! --mark 0x43544657 -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
            "iptables -w -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
        ];
        Assert.Equal(expected, runner.Commands);

        runner.Commands.Clear();
        Assert.Empty(installer.Remove());
        Assert.Equal("iptables -w -t filter -D FORWARD -m comment --comment ctfw:1:1 -j CTFW", runner.Commands[0]);
        Assert.Equal("iptables -w -t mangle -X CTFW", runner.Commands[^1]);
        Assert.Equal("iptables -w -t filter -X CTFW", runner.Commands[^2]);
        Assert.Equal(9 + 2, runner.Commands.Count); // the 9 added rules deleted, then both chains
    }

    [Fact]
    public void Install_LeftoverMangleMarksOfADeadShadowRun_AreDeletedEvenWithoutShadowMode()
    {
        var runner = new FakeRunner();
        runner.ListOutput["iptables mangle"] = Head +
            "-N CTFW\n" +
            "-A FORWARD -m comment --comment \"ctfw:999999999:5\" -j CTFW\n" +
            "-A CTFW -m comment --comment \"ctfw:999999999:5\" -m conntrack --ctstate NEW -j MARK --set-xmark 0x1000000/0xf000000\n";

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions { Ipv6 = false }, runner, Tag);

        Assert.Equal(
            [
                "iptables -t mangle -D FORWARD -m comment --comment ctfw:999999999:5 -j CTFW",
                "iptables -t mangle -D CTFW -m comment --comment ctfw:999999999:5 -m conntrack --ctstate NEW -j MARK --set-xmark 0x1000000/0xf000000",
                "iptables -t mangle -X CTFW",
            ],
            installer.RemovedLeftovers);
        Assert.DoesNotContain(runner.Commands, c => c.Contains("-t mangle -N", StringComparison.Ordinal));
    }

    [Fact]
    public void TakeOver_RulesOfTheRunningPredecessor_OursGoInFirstThenItsAreDeleted_ChainKept()
    {
        var runner = new FakeRunner();
        string previous = IptablesInstaller.OwnTag(); // alive, as the predecessor still is during a takeover
        runner.ListOutput["iptables"] = Head +
            "-N CTFW\n" +
            $"-A INPUT -m comment --comment \"{previous}\" -j CTFW\n" +
            $"-A CTFW -m comment --comment \"{previous}\" -j NFQUEUE --queue-num 0 --queue-bypass\n";

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Input] }, runner, Tag, previous);

        string[] expected =
        [
            "iptables -w -t filter -S",
            "iptables -w -t mangle -S",
            // No -N: the chain exists and still sends packets to the queue through the old rule.
            "iptables -w -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
            "iptables -w -t filter -I INPUT 1 -m comment --comment ctfw:1:1 -j CTFW",
            $"iptables -w -t filter -D INPUT -m comment --comment {previous} -j CTFW",
            $"iptables -w -t filter -D CTFW -m comment --comment {previous} -j NFQUEUE --queue-num 0 --queue-bypass",
        ];
        Assert.Equal(expected, runner.Commands);
        Assert.Equal(2, installer.TakenOver.Count);
        Assert.Empty(installer.RemovedLeftovers);

        // The chain is ours now: our stop removes it.
        runner.Commands.Clear();
        installer.Remove();
        Assert.Equal("iptables -w -t filter -X CTFW", runner.Commands[^1]);
    }

    [Fact]
    public void TakeOver_PredecessorHadShadowMarksThisRunDoesNot_ItsMangleChainIsRemoved()
    {
        var runner = new FakeRunner();
        string previous = IptablesInstaller.OwnTag();
        runner.ListOutput["iptables mangle"] = Head +
            "-N CTFW\n" +
            $"-A FORWARD -m comment --comment \"{previous}\" -j CTFW\n" +
            $"-A CTFW -m comment --comment \"{previous}\" -m conntrack --ctstate NEW -j MARK --set-xmark 0x1000000/0xf000000\n";

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Forward] }, runner, Tag, previous);

        Assert.Contains("iptables -w -t filter -N CTFW", runner.Commands);
        Assert.Equal(
            [
                $"iptables -t mangle -D FORWARD -m comment --comment {previous} -j CTFW",
                $"iptables -t mangle -D CTFW -m comment --comment {previous} -m conntrack --ctstate NEW -j MARK --set-xmark 0x1000000/0xf000000",
                "iptables -t mangle -X CTFW",
            ],
            installer.TakenOver);
    }

    [Fact]
    public void Install_OffloadMark_AcceptOfMarkedPacketsBeforeTheQueueRule_BothFamilies_RemovedInReverse()
    {
        var runner = new FakeRunner();

        IptablesInstaller installer = IptablesInstaller.Install(
            new IptablesOptions { QueueFirst = 1, Hooks = [IptablesHook.Forward], Match = ["-p", "tcp"], OffloadMark = 0x40000000 }, runner, Tag);

        string[] expected =
        [
            "iptables -w -t filter -S",
            "iptables -w -t mangle -S",
            "ip6tables -w -t filter -S",
            "ip6tables -w -t mangle -S",
            "iptables -w -t filter -N CTFW",
            "iptables -w -t filter -A CTFW -p tcp -m mark --mark 0x40000000/0x40000000 -m comment --comment ctfw:1:1 -j ACCEPT",
            "iptables -w -t filter -A CTFW -p tcp -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 1 --queue-bypass",
            "iptables -w -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
            "ip6tables -w -t filter -N CTFW",
            "ip6tables -w -t filter -A CTFW -p tcp -m mark --mark 0x40000000/0x40000000 -m comment --comment ctfw:1:1 -j ACCEPT",
            "ip6tables -w -t filter -A CTFW -p tcp -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 1 --queue-bypass",
            "ip6tables -w -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
        ];
        Assert.Equal(expected, runner.Commands);

        runner.Commands.Clear();
        Assert.Empty(installer.Remove());
        Assert.Equal(
            [
                "ip6tables -w -t filter -D FORWARD -m comment --comment ctfw:1:1 -j CTFW",
                "ip6tables -w -t filter -D CTFW -p tcp -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 1 --queue-bypass",
                "ip6tables -w -t filter -D CTFW -p tcp -m mark --mark 0x40000000/0x40000000 -m comment --comment ctfw:1:1 -j ACCEPT",
                "iptables -w -t filter -D FORWARD -m comment --comment ctfw:1:1 -j CTFW",
                "iptables -w -t filter -D CTFW -p tcp -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 1 --queue-bypass",
                "iptables -w -t filter -D CTFW -p tcp -m mark --mark 0x40000000/0x40000000 -m comment --comment ctfw:1:1 -j ACCEPT",
                "ip6tables -w -t filter -X CTFW",
                "iptables -w -t filter -X CTFW",
            ],
            runner.Commands);
    }

    [Theory]
    [InlineData(0u, null, "at least one bit")]
    [InlineData(0x01000000u, KernelStateMark.DefaultShift, "overlaps the shadow-mode mark bits 0x0f000000 (bits 0x01000000)")]
    [InlineData(0x00000030u, 4, "overlaps the shadow-mode mark bits 0x000000f0 (bits 0x00000030)")]
    public void Options_OffloadMark_ZeroOrOverlappingTheShadowMark_RejectedBeforeAnyCommand(uint mark, int? shift, string message)
    {
        var runner = new FakeRunner();
        var options = new IptablesOptions { OffloadMark = mark, ShadowMark = shift is int s ? new KernelStateMark(s) : null };

        var e = Assert.Throws<ArgumentException>(() => IptablesInstaller.Install(options, runner, Tag));

        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Empty(runner.Commands);
        // Clear of the shadow bits it is fine.
        IptablesInstaller.Install(new IptablesOptions { Ipv6 = false, OffloadMark = 0x40000000, ShadowMark = new KernelStateMark(KernelStateMark.DefaultShift) }, runner, Tag);
        Assert.Contains(runner.Commands, c => c.Contains("--mark 0x40000000/0x40000000", StringComparison.Ordinal));
    }

    [Fact]
    public void Install_OffloadAcceptLeftByADeadRun_IsDeletedLikeItsOtherRules_EvenWithoutOffload()
    {
        var runner = new FakeRunner();
        runner.ListOutput["iptables"] = Head +
            "-N CTFW\n" +
            "-A INPUT -m comment --comment \"ctfw:999999999:5\" -j CTFW\n" +
            "-A CTFW -m mark --mark 0x40000000/0x40000000 -m comment --comment \"ctfw:999999999:5\" -j ACCEPT\n" +
            "-A CTFW -m comment --comment \"ctfw:999999999:5\" -j NFQUEUE --queue-num 0 --queue-bypass\n";

        IptablesInstaller installer = IptablesInstaller.Install(new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Input] }, runner, Tag);

        Assert.Equal(
            [
                "iptables -t filter -D INPUT -m comment --comment ctfw:999999999:5 -j CTFW",
                "iptables -t filter -D CTFW -m mark --mark 0x40000000/0x40000000 -m comment --comment ctfw:999999999:5 -j ACCEPT",
                "iptables -t filter -D CTFW -m comment --comment ctfw:999999999:5 -j NFQUEUE --queue-num 0 --queue-bypass",
            ],
            installer.RemovedLeftovers);
    }

    private sealed class FakeRunner : ICommandRunner
    {
        public List<string> Commands { get; } = [];

        public Dictionary<string, string> ListOutput { get; } = new() { ["iptables"] = Head, ["ip6tables"] = Head };

        public Func<string, bool> FailWhen { get; init; } = _ => false;

        public CommandResult Run(IReadOnlyList<string> arguments)
        {
            string line = string.Join(' ', arguments);
            Commands.Add(line);
            if (FailWhen(line))
                return new CommandResult(1, "", "boom");
            int tool = arguments.ToList().FindIndex(a => a is "iptables" or "ip6tables");
            string table = arguments[tool + 3];
            string key = table == "filter" ? arguments[tool] : $"{arguments[tool]} {table}";
            return arguments[^1] == "-S"
                ? new CommandResult(0, ListOutput.GetValueOrDefault(key, Head), "")
                : new CommandResult(0, "", "");
        }
    }
}
