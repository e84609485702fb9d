using System.ComponentModel;
using Ctfw.Cli.Daemon;
using Ctfw.Linux.Firewall;

namespace Ctfw.Cli.Tests;

/// <summary>
/// <see cref="JumpWatch"/>'s reaction to each check outcome (<c>--on-rules-lost reinstall|warn|exit</c>),
/// one <see cref="JumpWatch.CheckOnce"/> at a time against a fake iptables: no thread, no sleep, no root.
/// The live counterpart is Ctfw.Daemon.Tests' JumpSelfCheckLiveTests.
/// </summary>
public sealed class JumpWatchTests : IDisposable
{
    private readonly FakeIptables _iptables = new();
    private readonly IptablesInstaller _installer;
    private readonly StringWriter _err = new();
    private int _stops;

    public JumpWatchTests()
    {
        _installer = IptablesInstaller.Install(new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Forward] }, _iptables);
        _installer.PrepareCheck();
        _iptables.Commands.Clear();
    }

    public void Dispose()
    {
        _installer.Dispose();
        _err.Dispose();
    }

    private JumpWatch Watch(RulesLostAction action) => new(_installer, action, _err, () => _stops++);

    private string[] Lines => _err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private List<string> Forward => _iptables.Chains("filter")["FORWARD"];

    private string Jump => $"-A FORWARD -m comment --comment {_installer.Tag} -j CTFW";

    /// <summary>What <see cref="FakeIptables.Flush"/> takes away, as the check words it.</summary>
    private string FlushedProblems =>
        $"iptables -t filter: chain CTFW missing; iptables -t filter -A CTFW -m comment --comment {_installer.Tag} -j NFQUEUE --queue-num 0 --queue-bypass: missing; iptables -t filter {Jump}: missing";

    private static void CheckTimes(JumpWatch watch, int times)
    {
        for (int i = 0; i < times; i++)
            watch.CheckOnce();
    }

    [Fact]
    public void CheckOnce_RulesIntact_CountsChecksOnlyAndWritesNothing()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);

        CheckTimes(watch, 3);

        Assert.Equal(3, watch.Checks);
        Assert.Equal(0, watch.Losses);
        Assert.Equal(0, watch.Reinstalls);
        Assert.Equal(0, watch.CheckFailures);
        Assert.Equal(0, watch.RepairFailures);
        Assert.False(watch.GaveUp);
        Assert.Equal(0, _stops);
        Assert.Equal("", _err.ToString());
        Assert.True(watch.MaxCheckUs >= watch.LastCheckUs);
        Assert.Equal(Enumerable.Repeat("iptables -w 2 -t filter -S", 3), _iptables.Commands);
    }

    [Fact]
    public void CheckOnce_FlushedWithReinstall_OneAlertNamingTheLossThenIntact()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        _iptables.Flush("filter");

        watch.CheckOnce();

        Assert.Equal(1, watch.Losses);
        Assert.Equal(3, watch.Reinstalls); // -N CTFW, -A CTFW … NFQUEUE, -I FORWARD 1 …
        Assert.Equal(0, watch.RepairFailures);
        Assert.Equal(
            [
                "ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else (iptables -F, iptables-restore, a firewall reload?): "
                + FlushedProblems + "; packets were passing unjudged. Reinstalled (3 commands)",
            ],
            Lines);
        Assert.Equal([Jump], Forward);

        watch.CheckOnce();

        Assert.Equal(2, watch.Checks);
        Assert.Equal(1, watch.Losses);
        Assert.Equal(3, watch.Reinstalls);
        Assert.Single(Lines);
    }

    [Fact]
    public void CheckOnce_FlushedAgainWithReinstall_EveryLossCountedAndAlerted()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        _iptables.Flush("filter");
        watch.CheckOnce();
        watch.CheckOnce();
        _iptables.Flush("filter");

        watch.CheckOnce();

        Assert.Equal(3, watch.Checks);
        Assert.Equal(2, watch.Losses);
        Assert.Equal(6, watch.Reinstalls);
        Assert.Equal(2, Lines.Length);
        Assert.All(Lines, l => Assert.EndsWith("Reinstalled (3 commands)", l, StringComparison.Ordinal));
    }

    [Fact]
    public void CheckOnce_JumpDisplacedWithReinstall_MovesItBackFirstWithTwoCommands()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        Forward.Insert(0, "-A FORWARD -j ACCEPT"); // iptables -I FORWARD 1 -j ACCEPT

        watch.CheckOnce();

        Assert.Equal(1, watch.Losses);
        Assert.Equal(2, watch.Reinstalls); // the new jump at the top, the old one deleted by number
        string alert = Assert.Single(Lines);
        Assert.Contains($"iptables -t filter {Jump}: rule 2 of FORWARD, no longer first", alert, StringComparison.Ordinal);
        Assert.EndsWith("Reinstalled (2 commands)", alert, StringComparison.Ordinal);
        Assert.Equal([Jump, "-A FORWARD -j ACCEPT"], Forward);
    }

    [Fact]
    public void CheckOnce_FlushedWithWarn_OneLossAlertedAtOnceThenOnceAMinute()
    {
        using JumpWatch watch = Watch(RulesLostAction.Warn);
        _iptables.Flush("filter");

        watch.CheckOnce();

        Assert.Equal(1, watch.Losses);
        Assert.Equal(0, watch.Reinstalls);
        Assert.Equal(
            [$"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: {FlushedProblems}; packets pass unjudged and stay so (--on-rules-lost warn)"],
            Lines);

        CheckTimes(watch, 59); // checks 2 to 60: the same loss, neither counted nor written again

        Assert.Equal(60, watch.Checks);
        Assert.Equal(1, watch.Losses);
        Assert.Single(Lines);

        watch.CheckOnce(); // check 61: a minute on

        Assert.Equal(1, watch.Losses);
        Assert.Equal(2, Lines.Length);
        Assert.Equal($"ctfw: ALERT: the NFQUEUE rules of this run are still missing: {FlushedProblems}", Lines[1]);

        CheckTimes(watch, 59);
        Assert.Equal(2, Lines.Length);
        watch.CheckOnce(); // check 121
        Assert.Equal(3, Lines.Length);
        Assert.Equal(Lines[1], Lines[2]);

        Assert.Equal(121, watch.Checks);
        Assert.Equal(1, watch.Losses);
        Assert.Equal(0, watch.Reinstalls);
        Assert.Empty(Forward); // warn repairs nothing
        Assert.All(_iptables.Commands, c => Assert.EndsWith(" -S", c, StringComparison.Ordinal));
    }

    [Fact]
    public void CheckOnce_WarnLossEndsThenRecurs_SecondLossCountedAndAlertedAsNew()
    {
        using JumpWatch watch = Watch(RulesLostAction.Warn);
        Forward.Insert(0, "-A FORWARD -j ACCEPT");
        watch.CheckOnce();
        watch.CheckOnce();
        Forward.RemoveAt(0); // whoever displaced the jump takes their rule out again
        watch.CheckOnce();
        Assert.Equal(1, watch.Losses);
        Assert.Single(Lines);

        Forward.Insert(0, "-A FORWARD -j ACCEPT");
        watch.CheckOnce();

        Assert.Equal(4, watch.Checks);
        Assert.Equal(2, watch.Losses);
        Assert.Equal(2, Lines.Length);
        Assert.All(Lines, l => Assert.EndsWith("packets pass unjudged and stay so (--on-rules-lost warn)", l, StringComparison.Ordinal));
        Assert.All(Lines, l => Assert.Contains("rule 2 of FORWARD, no longer first", l, StringComparison.Ordinal));
    }

    [Fact]
    public void CheckOnce_FlushedWithExit_GivesUpStopsTheDaemonOnceAndRepairsNothing()
    {
        using JumpWatch watch = Watch(RulesLostAction.Exit);
        _iptables.Flush("filter");

        watch.CheckOnce();

        Assert.True(watch.GaveUp);
        Assert.Equal(1, _stops);
        Assert.Equal(1, watch.Losses);
        Assert.Equal(0, watch.Reinstalls);
        Assert.Equal(
            [$"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: {FlushedProblems}; packets were passing unjudged. Stopping (--on-rules-lost exit), exit status 3"],
            Lines);
        Assert.Empty(Forward);
        Assert.Equal(["iptables -w 2 -t filter -S"], _iptables.Commands);
    }

    [Fact]
    public void CheckOnce_RulesIntactWithExit_DoesNotStop()
    {
        using JumpWatch watch = Watch(RulesLostAction.Exit);

        CheckTimes(watch, 2);

        Assert.False(watch.GaveUp);
        Assert.Equal(0, _stops);
        Assert.Equal("", _err.ToString());
    }

    [Fact]
    public void CheckOnce_IptablesMissing_WarnsOnceCountsEveryFailureThenSaysItWorksAgain()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        _iptables.Fail = _ => throw new Win32Exception(2, "No such file or directory");

        CheckTimes(watch, 5);

        Assert.Equal(5, watch.Checks);
        Assert.Equal(5, watch.CheckFailures);
        Assert.Equal(0, watch.Losses);
        string warning = Assert.Single(Lines);
        Assert.StartsWith(
            "ctfw: WARNING: checking the NFQUEUE rules failed (`iptables -t filter -S` failed (exit 127): iptables could not be started (No such file or directory): install iptables",
            warning,
            StringComparison.Ordinal);
        Assert.EndsWith("Retrying every 1 s, counted in iptables.check_failures", warning, StringComparison.Ordinal);

        _iptables.Fail = null;
        CheckTimes(watch, 2);

        Assert.Equal(7, watch.Checks);
        Assert.Equal(5, watch.CheckFailures);
        Assert.Equal(0, watch.Losses);
        Assert.Equal(2, Lines.Length);
        Assert.Equal("ctfw: checking the NFQUEUE rules works again after 5 failed check(s)", Lines[1]);
    }

    [Fact]
    public void CheckOnce_FailsAgainAfterRecovering_WarnsAgainWithTheNewCount()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        _iptables.Fail = _ => new CommandResult(4, "", "Another app is currently holding the xtables lock. Stopped waiting after 2s.");
        CheckTimes(watch, 2);
        _iptables.Fail = null;
        watch.CheckOnce();
        _iptables.Fail = _ => new CommandResult(4, "", "Another app is currently holding the xtables lock. Stopped waiting after 2s.");
        CheckTimes(watch, 3);
        _iptables.Fail = null;

        watch.CheckOnce();

        Assert.Equal(5, watch.CheckFailures);
        Assert.Equal(4, Lines.Length);
        Assert.Contains("(`iptables -t filter -S` failed (exit 4): Another app is currently holding the xtables lock.", Lines[0], StringComparison.Ordinal);
        Assert.Equal("ctfw: checking the NFQUEUE rules works again after 2 failed check(s)", Lines[1]);
        Assert.Equal(Lines[0], Lines[2]);
        Assert.Equal("ctfw: checking the NFQUEUE rules works again after 3 failed check(s)", Lines[3]);
    }

    [Fact]
    public void CheckOnce_CheckingRecoversOntoLostRules_AlertsAndRepairsThenSaysItWorksAgain()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        _iptables.Fail = _ => new CommandResult(4, "", "Another app is currently holding the xtables lock. Stopped waiting after 2s.");
        CheckTimes(watch, 2);
        _iptables.Flush("filter"); // while nobody could look
        _iptables.Fail = null;

        watch.CheckOnce();

        Assert.Equal(2, watch.CheckFailures);
        Assert.Equal(1, watch.Losses);
        Assert.Equal(3, watch.Reinstalls);
        Assert.Equal(3, Lines.Length);
        Assert.StartsWith("ctfw: WARNING: checking the NFQUEUE rules failed", Lines[0], StringComparison.Ordinal);
        Assert.EndsWith("Reinstalled (3 commands)", Lines[1], StringComparison.Ordinal);
        Assert.Equal("ctfw: checking the NFQUEUE rules works again after 2 failed check(s)", Lines[2]);
        Assert.Equal([Jump], Forward);
    }

    [Fact]
    public void CheckOnce_RepairRefused_CountsEachFailedRepair_AlertsOnceAMinute_ThenSaysWhenItWorks()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        _iptables.Flush("filter");
        // The chain and its NFQUEUE rule go back in; the jump is refused.
        _iptables.Fail = line => line.Contains(" -I FORWARD ", StringComparison.Ordinal)
            ? new CommandResult(1, "", "iptables: Resource temporarily unavailable.")
            : null;

        watch.CheckOnce();

        Assert.Equal(1, watch.Losses);
        Assert.Equal(1, watch.RepairFailures);
        Assert.Equal(0, watch.CheckFailures);
        Assert.False(watch.GaveUp);
        Assert.Equal(
            [
                $"ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: {FlushedProblems}; reinstalling them FAILED "
                + $"(`iptables -t filter -I FORWARD 1 -m comment --comment {_installer.Tag} -j CTFW` failed (exit 1): iptables: Resource temporarily unavailable.); "
                + "packets pass unjudged. Retrying every 1 s",
            ],
            Lines);
        Assert.Single(_iptables.Chains("filter")["CTFW"]);
        Assert.Empty(Forward);
        // The -N and -A that went through before the refused -I count (they were once dropped with it).
        Assert.Equal(2, watch.Reinstalls);
        long reinstallsBefore = watch.Reinstalls;

        // Each check that finds the jump still missing retries: each failure is counted, the loss
        // once; the alert is not repeated each second, only once a minute.
        CheckTimes(watch, 60);

        Assert.Equal(1, watch.Losses);
        Assert.Equal(61, watch.RepairFailures);
        Assert.Equal(2, Lines.Length);
        Assert.StartsWith($"ctfw: ALERT: the NFQUEUE rules of this run are still missing: iptables -t filter {Jump}: missing; reinstalling them has FAILED 60 times", Lines[1], StringComparison.Ordinal);

        _iptables.Fail = null;
        watch.CheckOnce();
        watch.CheckOnce();

        Assert.Equal(63, watch.Checks);
        Assert.Equal(1, watch.Losses);
        Assert.Equal(61, watch.RepairFailures);
        Assert.Equal(reinstallsBefore + 1, watch.Reinstalls);
        Assert.Equal(3, Lines.Length);
        Assert.Equal("ctfw: the NFQUEUE rules of this run are back after 61 failed attempt(s): reinstalled (1 commands)", Lines[2]);
        Assert.Equal([Jump], Forward);

        // A later loss is a new one, alerted at once.
        _iptables.Flush("filter");
        watch.CheckOnce();
        Assert.Equal(2, watch.Losses);
        Assert.Equal(4, Lines.Length);
        Assert.EndsWith("Reinstalled (3 commands)", Lines[3], StringComparison.Ordinal);
    }

    [Fact]
    public void CheckOnce_AfterTheRulesAreRemoved_CountsTheCheckAndDoesNothingElse()
    {
        using JumpWatch watch = Watch(RulesLostAction.Reinstall);
        Assert.Empty(_installer.Remove());
        _iptables.Commands.Clear();

        watch.CheckOnce();

        Assert.Equal(1, watch.Checks);
        Assert.Equal(0, watch.Losses);
        Assert.Equal(0, watch.CheckFailures);
        Assert.Equal(0, watch.Reinstalls);
        Assert.Equal("", _err.ToString());
        Assert.Empty(_iptables.Commands);
    }

    /// <summary>
    /// iptables as far as install and check use it: per table, chains of rules in listing form,
    /// changed by -N/-X/-A/-I/-D and listed by -S. Rules keep the tag unquoted (iptables quotes it;
    /// the installer tokenizes either way).
    /// </summary>
    private sealed class FakeIptables : ICommandRunner
    {
        private static readonly CommandResult s_ok = new(0, "", "");
        private static readonly CommandResult s_noChain = new(1, "", "iptables: No chain/target/match by that name.");

        private readonly Dictionary<string, Dictionary<string, List<string>>> _tables = [];

        public List<string> Commands { get; } = [];

        /// <summary>Returns (or throws) instead of running a command line; null or a null result runs it.</summary>
        public Func<string, CommandResult?>? Fail { get; set; }

        public Dictionary<string, List<string>> Chains(string table)
        {
            if (!_tables.TryGetValue(table, out Dictionary<string, List<string>>? chains))
                _tables[table] = chains = new() { ["INPUT"] = [], ["FORWARD"] = [], ["OUTPUT"] = [] };
            return chains;
        }

        /// <summary><c>iptables -t TABLE -F; iptables -t TABLE -X</c>.</summary>
        public void Flush(string table)
        {
            Dictionary<string, List<string>> chains = Chains(table);
            foreach (string chain in chains.Keys.ToList())
            {
                if (chain is "INPUT" or "FORWARD" or "OUTPUT")
                    chains[chain].Clear();
                else
                    chains.Remove(chain);
            }
        }

        public CommandResult Run(IReadOnlyList<string> arguments)
        {
            string line = string.Join(' ', arguments);
            Commands.Add(line);
            if (Fail?.Invoke(line) is { } failed)
                return failed;
            Assert.Equal("iptables", arguments[0]);
            int t = arguments.ToList().IndexOf("-t");
            Dictionary<string, List<string>> chains = Chains(arguments[t + 1]);
            string[] a = [.. arguments.Skip(t + 2)];
            string Rule(int from) => string.Join(' ', ["-A", a[1], .. a[from..]]);
            List<string>? rules = a.Length > 1 ? chains.GetValueOrDefault(a[1]) : null;
            switch (a[0])
            {
                case "-S":
                    IEnumerable<string> listing = ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"];
                    listing = listing.Concat(chains.Keys.Where(c => c is not ("INPUT" or "FORWARD" or "OUTPUT")).Select(c => $"-N {c}"));
                    listing = listing.Concat(chains.Values.SelectMany(r => r));
                    return new CommandResult(0, string.Join('\n', listing) + "\n", "");
                case "-N":
                    return chains.TryAdd(a[1], []) ? s_ok : new CommandResult(1, "", "iptables: Chain already exists.");
                case "-X":
                    return chains.Remove(a[1]) ? s_ok : s_noChain;
                case "-A" when rules is not null:
                    rules.Add(Rule(2));
                    return s_ok;
                case "-I" when rules is not null:
                    rules.Insert(int.Parse(a[2], System.Globalization.CultureInfo.InvariantCulture) - 1, Rule(3));
                    return s_ok;
                case "-D" when rules is not null:
                    int index = a.Length == 3 && int.TryParse(a[2], out int number) ? number - 1 : rules.IndexOf(Rule(2));
                    if (index < 0 || index >= rules.Count)
                        return new CommandResult(1, "", "iptables: Bad rule (does a matching rule exist in that chain?).");
                    rules.RemoveAt(index);
                    return s_ok;
                case "-A" or "-I" or "-D":
                    return s_noChain;
                default:
                    throw new InvalidOperationException($"the fake does not know {line}");
            }
        }
    }
}
