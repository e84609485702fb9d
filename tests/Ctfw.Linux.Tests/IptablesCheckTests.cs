using Ctfw.Firewall.Shadow;
using Ctfw.Linux.Firewall;

namespace Ctfw.Linux.Tests;

/// <summary>
/// The self-check of installed rules (<see cref="IptablesInstaller.Check"/>) against a fake that
/// keeps tables as iptables does (-N/-A/-I/-D/-X/-F, -S listing with quoted comments and the
/// shortened hex iptables prints), so flushes and insertions by others can be played out.
/// </summary>
public sealed class IptablesCheckTests
{
    private const string Tag = "ctfw:1:1";

    private static IptablesInstaller Installed(FakeIptables fake, IptablesOptions? options = null)
    {
        IptablesInstaller installer = IptablesInstaller.Install(options ?? new IptablesOptions { Hooks = [IptablesHook.Forward] }, fake, Tag);
        installer.PrepareCheck();
        fake.Commands.Clear();
        return installer;
    }

    [Fact]
    public void Check_NothingChanged_IsIntactWithOneListingPerTable()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Intact, result.Outcome);
        Assert.Equal(["iptables -w 2 -t filter -S", "ip6tables -w 2 -t filter -S"], fake.Commands);
    }

    [Fact]
    public void Check_ForwardFlushed_ReportsTheJumpAndInsertsItFirst()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Table("iptables", "filter")["FORWARD"].Add("-A FORWARD -j ACCEPT"); // someone's rule, below ours
        fake.Table("iptables", "filter")["FORWARD"].RemoveAt(0); // iptables -D of ours

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Equal(["iptables -t filter -A FORWARD -m comment --comment ctfw:1:1 -j CTFW: missing"], result.Problems);
        Assert.Equal(1, result.Reinstalled);
        Assert.Equal("iptables -w 2 -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW", fake.Commands[^1]);
        Assert.Equal(["-A FORWARD -m comment --comment \"ctfw:1:1\" -j CTFW", "-A FORWARD -j ACCEPT"], fake.Table("iptables", "filter")["FORWARD"]);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_TableFlushedAndChainsDeleted_RecreatesChainThenRuleThenJump()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Flush("iptables", "filter"); // iptables -F; iptables -X

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Equal(3, result.Problems.Count);
        Assert.Equal(
            [
                "iptables -w 2 -t filter -S",
                "ip6tables -w 2 -t filter -S",
                "iptables -w 2 -t filter -N CTFW",
                "iptables -w 2 -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
                "iptables -w 2 -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW",
            ],
            fake.Commands);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_OwnChainFlushed_AppendsTheQueueRuleOnly()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Table("ip6tables", "filter")["CTFW"].Clear(); // ip6tables -F CTFW: the jump now leads nowhere

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Equal("ip6tables -w 2 -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass", fake.Commands[^1]);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_RuleInsertedAboveTheJump_MovesTheJumpBackFirstWithoutAGap()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Table("iptables", "filter")["FORWARD"].Insert(0, "-A FORWARD -p tcp -j ACCEPT");

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Contains("no longer first", result.Problems[0], StringComparison.Ordinal);
        // New jump first, then the old one (now rule 3) by number.
        Assert.Equal(
            ["iptables -w 2 -t filter -I FORWARD 1 -m comment --comment ctfw:1:1 -j CTFW", "iptables -w 2 -t filter -D FORWARD 3"],
            fake.Commands.Skip(2));
        Assert.Equal(
            ["-A FORWARD -m comment --comment \"ctfw:1:1\" -j CTFW", "-A FORWARD -p tcp -j ACCEPT"],
            fake.Table("iptables", "filter")["FORWARD"]);
    }

    [Fact]
    public void Check_RuleInsertedInsideCtfwsChain_IsReportedAndDeleted()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Table("iptables", "filter")["CTFW"].Insert(0, "-A CTFW -p tcp -j ACCEPT"); // iptables -I CTFW 1 ... : a bypass

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Equal(["iptables -t filter: rule 1 of CTFW was not put there by this ctfw: -A CTFW -p tcp -j ACCEPT"], result.Problems);
        Assert.Equal(["iptables -w 2 -t filter -D CTFW 1"], fake.Commands.Skip(2));
        Assert.DoesNotContain(fake.Table("iptables", "filter")["CTFW"], r => r.Contains("ACCEPT", StringComparison.Ordinal));
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_WithoutRepair_ReportsLostAndChangesNothing()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Flush("iptables", "filter");

        IptablesCheckResult result = installer.Check(repair: false);

        Assert.Equal(IptablesCheckOutcome.Lost, result.Outcome);
        Assert.All(fake.Commands, c => Assert.EndsWith(" -S", c, StringComparison.Ordinal));
    }

    [Fact]
    public void Check_ShadowMarksPartlyDeleted_MissingOnePutBackAtItsPlaceComparedInPrintedForm()
    {
        var fake = new FakeIptables();
        var options = new IptablesOptions { Ipv6 = false, Hooks = [IptablesHook.Forward], ShadowMark = new KernelStateMark(KernelStateMark.DefaultShift) };
        IptablesInstaller installer = Installed(fake, options);
        // iptables prints 0x01000000/0x0f000000 as 0x1000000/0xf000000: still intact.
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
        List<string> marks = fake.Table("iptables", "mangle")["CTFW"];
        string lost = marks[2];
        marks.RemoveAt(2);

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Single(result.Problems);
        Assert.Equal(lost, marks[2]); // inserted where it was (-I CTFW 3), not appended
        Assert.Contains(" -I CTFW 3 ", fake.Commands[^1], StringComparison.Ordinal);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    private static readonly IptablesOptions Offload = new() { Hooks = [IptablesHook.Forward], OffloadMark = 0x00800000 };

    [Fact]
    public void Check_OffloadAccept_ComparedInPrintedForm_PutBackAboveTheQueueRuleWhenDeleted()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake, Offload);
        List<string> chain = fake.Table("ip6tables", "filter")["CTFW"];
        // iptables prints 0x00800000/0x00800000 as 0x800000/0x800000: still intact.
        Assert.Equal("-A CTFW -m mark --mark 0x800000/0x800000 -m comment --comment \"ctfw:1:1\" -j ACCEPT", chain[0]);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
        string accept = chain[0], queue = chain[1];
        chain.RemoveAt(0); // ip6tables -D CTFW 1: every packet is queued again

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Equal(["ip6tables -t filter -A CTFW -m mark --mark 0x00800000/0x00800000 -m comment --comment ctfw:1:1 -j ACCEPT: missing"], result.Problems);
        Assert.Equal("ip6tables -w 2 -t filter -I CTFW 1 -m mark --mark 0x00800000/0x00800000 -m comment --comment ctfw:1:1 -j ACCEPT", fake.Commands[^1]);
        Assert.Equal([accept, queue], chain);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_OffloadChainFlushedOrQueueRuleDeleted_AppendedInInstallOrder()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake, Offload);
        List<string> chain = fake.Table("iptables", "filter")["CTFW"];
        List<string> installed = [.. chain];
        chain.Clear();
        fake.Table("ip6tables", "filter")["CTFW"].RemoveAt(1); // the queue rule only

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.Equal(
            [
                "iptables -w 2 -t filter -A CTFW -m mark --mark 0x00800000/0x00800000 -m comment --comment ctfw:1:1 -j ACCEPT",
                "iptables -w 2 -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
                "ip6tables -w 2 -t filter -A CTFW -m comment --comment ctfw:1:1 -j NFQUEUE --queue-num 0 --queue-bypass",
            ],
            fake.Commands.Skip(2));
        Assert.Equal(installed, chain);
        Assert.Equal(IptablesCheckOutcome.Intact, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_ListingFails_IsCheckFailedNotAThrow()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Fail = line => line.EndsWith(" -S", StringComparison.Ordinal)
            ? new CommandResult(4, "", "Another app is currently holding the xtables lock. Stopped waiting after 2s.")
            : null;

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.CheckFailed, result.Outcome);
        Assert.Contains("xtables lock", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_RunnerTimesOut_IsCheckFailed()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Fail = _ => throw new TimeoutException("`iptables -S` did not finish within 5 s");

        Assert.Equal(IptablesCheckOutcome.CheckFailed, installer.Check(repair: true).Outcome);
    }

    [Fact]
    public void Check_RepairRefused_IsRepairFailed()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Flush("iptables", "filter");
        fake.Fail = line => line.Contains(" -N ", StringComparison.Ordinal) ? new CommandResult(1, "", "nope") : null;

        IptablesCheckResult result = installer.Check(repair: true);

        Assert.Equal(IptablesCheckOutcome.RepairFailed, result.Outcome);
        Assert.Contains("nope", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_AfterRemove_DoesNothing()
    {
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        Assert.Empty(installer.Remove());
        fake.Commands.Clear();

        Assert.Equal(IptablesCheckOutcome.Removed, installer.Check(repair: true).Outcome);
        Assert.Empty(fake.Commands);
        Assert.Empty(fake.Table("iptables", "filter")["FORWARD"]);
    }

    [Fact]
    public void Check_RemoveDuringACheck_WaitsForItAndNothingIsPutBackAfter()
    {
        // The stop's Remove arrives while a check that will repair a flushed table is listing: the
        // check holds Remove off until its repair is done, so Remove takes everything out. Without
        // the shared lock Remove runs at once and the check's repair then leaves rules behind.
        var fake = new FakeIptables();
        IptablesInstaller installer = Installed(fake);
        fake.Flush("iptables", "filter");
        using var listing = new ManualResetEventSlim();
        using var removed = new ManualResetEventSlim();
        Thread? checker = null;
        fake.Before = line =>
        {
            if (Thread.CurrentThread == checker && line.EndsWith(" -S", StringComparison.Ordinal) && !listing.IsSet)
            {
                listing.Set();
                removed.Wait(TimeSpan.FromMilliseconds(300));
            }
        };
        IptablesCheckResult result = default;
        checker = new Thread(() => result = installer.Check(repair: true));
        checker.Start();
        Assert.True(listing.Wait(TimeSpan.FromSeconds(5)));

        installer.Remove();
        removed.Set();
        checker.Join();

        Assert.Equal(IptablesCheckOutcome.Repaired, result.Outcome);
        Assert.DoesNotContain(fake.Table("iptables", "filter").Values.SelectMany(r => r), r => r.Contains(Tag, StringComparison.Ordinal));
        Assert.DoesNotContain("CTFW", fake.Table("iptables", "filter").Keys);
        Assert.Equal(IptablesCheckOutcome.Removed, installer.Check(repair: true).Outcome);
    }

    /// <summary>A filter and a mangle table per tool, changed by the commands as iptables would.</summary>
    private sealed class FakeIptables : ICommandRunner
    {
        private readonly Dictionary<string, Dictionary<string, List<string>>> _tables = [];

        public List<string> Commands { get; } = [];

        /// <summary>A result to return instead of running the command (or a throw), null to run it.</summary>
        public Func<string, CommandResult?> Fail { get; set; } = _ => null;

        /// <summary>Runs before each command, outside the fake's lock (a test can hold a thread there).</summary>
        public Action<string> Before { get; set; } = _ => { };

        public Dictionary<string, List<string>> Table(string tool, string table)
        {
            string key = $"{tool} {table}";
            if (!_tables.TryGetValue(key, out Dictionary<string, List<string>>? chains))
            {
                _tables[key] = chains = new Dictionary<string, List<string>>
                {
                    ["INPUT"] = [], ["FORWARD"] = [], ["OUTPUT"] = [],
                };
            }
            return chains;
        }

        /// <summary>iptables -F; iptables -X.</summary>
        public void Flush(string tool, string table)
        {
            Dictionary<string, List<string>> chains = Table(tool, table);
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
            Before(string.Join(' ', arguments));
            lock (this)
            {
                string line = string.Join(' ', arguments);
                Commands.Add(line);
                if (Fail(line) is { } failed)
                    return failed;
                int t = arguments.ToList().FindIndex(a => a is "iptables" or "ip6tables");
                int i = t + 1;
                if (arguments[i] == "-w")
                    i += arguments[i + 1].StartsWith('-') ? 1 : 2;
                Assert.Equal("-t", arguments[i]);
                Dictionary<string, List<string>> chains = Table(arguments[t], arguments[i + 1]);
                string[] a = [.. arguments.Skip(i + 2)];
                string Printed(string chain, IEnumerable<string> rest) =>
                    string.Join(' ', ["-A", chain, .. rest.Select(Print)]);
                switch (a[0])
                {
                    case "-S":
                        var output = new List<string> { "-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT" };
                        output.AddRange(chains.Keys.Where(c => c is not ("INPUT" or "FORWARD" or "OUTPUT")).Select(c => $"-N {c}"));
                        foreach ((_, List<string> rules) in chains)
                            output.AddRange(rules);
                        return new CommandResult(0, string.Join('\n', output) + "\n", "");
                    case "-N":
                        if (!chains.TryAdd(a[1], []))
                            return new CommandResult(1, "", "iptables: Chain already exists.");
                        return new CommandResult(0, "", "");
                    case "-X":
                        return chains.Remove(a[1]) ? new CommandResult(0, "", "") : new CommandResult(1, "", "No chain/target/match by that name.");
                    case "-A":
                        if (!chains.TryGetValue(a[1], out List<string>? appendTo))
                            return new CommandResult(1, "", "No chain/target/match by that name.");
                        appendTo.Add(Printed(a[1], a.Skip(2)));
                        return new CommandResult(0, "", "");
                    case "-I":
                        if (!chains.TryGetValue(a[1], out List<string>? insertInto))
                            return new CommandResult(1, "", "No chain/target/match by that name.");
                        insertInto.Insert(int.Parse(a[2], System.Globalization.CultureInfo.InvariantCulture) - 1, Printed(a[1], a.Skip(3)));
                        return new CommandResult(0, "", "");
                    case "-D":
                        if (!chains.TryGetValue(a[1], out List<string>? deleteFrom))
                            return new CommandResult(1, "", "No chain/target/match by that name.");
                        int index = a.Length == 3 && int.TryParse(a[2], out int number)
                            ? number - 1
                            : deleteFrom.IndexOf(Printed(a[1], a.Skip(2)));
                        if (index < 0 || index >= deleteFrom.Count)
                            return new CommandResult(1, "", "Bad rule (does a matching rule exist in that chain?).");
                        deleteFrom.RemoveAt(index);
                        return new CommandResult(0, "", "");
                    default:
                        throw new InvalidOperationException(line);
                }
            }
        }

        // As iptables -S prints: comments quoted, hex without leading zeros (0x01000000 → 0x1000000).
        private static string Print(string token)
        {
            if (token.StartsWith("ctfw:", StringComparison.Ordinal))
                return $"\"{token}\"";
            if (token.StartsWith("0x", StringComparison.Ordinal))
                return string.Join('/', token.Split('/').Select(h => "0x" + Convert.ToUInt32(h, 16).ToString("x", System.Globalization.CultureInfo.InvariantCulture)));
            return token;
        }
    }
}
