using System.Diagnostics;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>
/// The bounds on a ruleset (issue 13 part 5): addresses per -s/-d list, compiled rules per table,
/// size of the rules file. Each is refused with a file:line:col error naming the limit, before the
/// work or memory the input asks for is spent; the values are the documented ones (docs/OPERATIONS.md).
/// </summary>
public class LimitTests
{
    private const int MaxAddressesPerList = 512;
    private const int MaxRules = 250_000;
    private const long MaxFileBytes = 64L * 1024 * 1024;

    /// <summary><paramref name="count"/> distinct IPv4 addresses in 10.<paramref name="net"/>.0.0/16, comma-separated.</summary>
    private static string Addresses(int count, int net) =>
        string.Join(',', Enumerable.Range(0, count).Select(i => $"10.{net}.{i / 250}.{i % 250 + 1}"));

    private static string Table(IEnumerable<string> rules) =>
        $"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n{string.Join("\n", rules)}\nCOMMIT\n";

    /// <summary>One rule of 500 × 500 address pairs: exactly <see cref="MaxRules"/> compiled rules.</summary>
    private static List<string> RulesAtTheLimit() => [$"-A FORWARD -s {Addresses(500, 1)} -d {Addresses(500, 2)} -j DROP"];

    [Fact]
    public void Load_SourceListOverTheLimit_RefusedAtTheListNamingTheLimit() =>
        Assert.Equal("rules.v4:5:13: '-s' lists 513 addresses; ctfw takes at most 512 in one list (iptables-restore refuses any "
            + "longer list: 'Parameter too long!' past 1023 characters); split it over several rules",
            T.TableError($"-A INPUT -s {Addresses(MaxAddressesPerList + 1, 1)} -j DROP"));

    [Fact]
    public void Load_DestinationListOverTheLimit_RefusedUnderTheOptionAsWritten() =>
        Assert.Equal("rules.v4:5:39: '--destination' lists 600 addresses; ctfw takes at most 512 in one list (iptables-restore refuses any "
            + "longer list: 'Parameter too long!' past 1023 characters); split it over several rules",
            T.TableError($"-A FORWARD -s 192.0.2.1 --destination {Addresses(600, 2)} -j ACCEPT"));

    [Fact]
    public void Load_ListsAtTheLimit_LoadAsOneRulePerPair()
    {
        Ruleset rs = T.Table($"-A INPUT -s {Addresses(MaxAddressesPerList, 1)} -d 198.51.100.1,198.51.100.2 -j DROP");

        Assert.Equal(2 * MaxAddressesPerList, rs.Rules.Count);
        Assert.Equal("-s 10.1.0.1 -d 198.51.100.1 -j DROP", rs.Rules[0].Text);
        Assert.Equal("-s 10.1.2.12 -d 198.51.100.2 -j DROP", rs.Rules[^1].Text);
    }

    [Fact]
    public void Load_TheIssuesRuleOf3000By3000Addresses_RefusedAtOnceWithoutExpandingIt()
    {
        // Measured before the limit: 9 M compiled rules, 28.5 s and 6.9 GB to load.
        string text = Table([$"-A FORWARD -s {Addresses(3000, 1)} -d {Addresses(3000, 2)} -p tcp --dport 22 -j DROP"]);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();

        bool loaded = Ruleset.TryLoad(text, "rules.v4", out Ruleset? rs, out IReadOnlyList<RuleError> errors);

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.False(loaded);
        Assert.Null(rs);
        Assert.StartsWith("rules.v4:5:15: '-s' lists 3000 addresses; ctfw takes at most 512 in one list", Assert.Single(errors).ToString());
        // The text itself is 72 KB; parsing its list up to the limit is the only work done.
        Assert.True(allocated < 8L << 20, $"{allocated} bytes allocated");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"{clock.Elapsed}");
    }

    [Fact]
    public void Load_RulesetOfExactlyTheLimit_Loads()
    {
        Ruleset rs = T.Load(Table(RulesAtTheLimit()), "rules.v4");

        Assert.Equal(MaxRules, rs.Rules.Count);
        Assert.Equal("FORWARD", rs.Rules[^1].Chain);
    }

    [Fact]
    public void Load_RulesetOneOverTheLimit_RefusedAtTheLineThatCrossesItBeforeCompiling()
    {
        List<string> rules = RulesAtTheLimit();
        rules.Add("-A INPUT -j ACCEPT");
        string text = Table(rules);
        long before = GC.GetAllocatedBytesForCurrentThread();

        bool loaded = Ruleset.TryLoad(text, "rules.v4", out Ruleset? rs, out IReadOnlyList<RuleError> errors);

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.False(loaded);
        Assert.Null(rs);
        Assert.Equal("rules.v4:6:1: too many rules: this one brings the table to 250001 rules; ctfw loads at most 250000 "
            + "(a rule with -s/-d lists counts once per source and destination pair, as iptables expands it)", Assert.Single(errors).ToString());
        // Compiling 250 000 rules allocates about 275 MB; parsing the two lines, a few megabytes.
        Assert.True(allocated < 32L << 20, $"{allocated} bytes allocated");
    }

    [Fact]
    public void Load_RulesOverTheLimitInManyLines_StopsAtTheFirstLineOverIt()
    {
        List<string> rules = RulesAtTheLimit();
        rules.InsertRange(0, ["-N BIG", "-A BIG -s 192.0.2.1,192.0.2.2 -j RETURN"]);
        rules.AddRange(Enumerable.Repeat("-A INPUT -j BIG", 5));

        IReadOnlyList<RuleError> errors = T.Errors(Table(rules));

        Assert.Equal("rules.v4:7:1: too many rules: this one brings the table to 250002 rules; ctfw loads at most 250000 "
            + "(a rule with -s/-d lists counts once per source and destination pair, as iptables expands it)", Assert.Single(errors).ToString());
    }

    [Fact]
    public void LoadFile_OverTheSizeLimit_RefusedWithoutReadingIt()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ctfw-limits-{Guid.NewGuid():N}.rules");
        try
        {
            using (var file = new FileStream(path, FileMode.CreateNew))
                file.SetLength(MaxFileBytes + 1); // sparse: nothing is written
            long before = GC.GetAllocatedBytesForCurrentThread();

            bool loaded = Ruleset.TryLoadFile(path, out Ruleset? rs, out IReadOnlyList<RuleError> errors);

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.False(loaded);
            Assert.Null(rs);
            Assert.Equal($"{path}:0:0: the rules file is larger than 67108864 bytes (64 MiB), the most ctfw reads", Assert.Single(errors).ToString());
            Assert.True(allocated < 1L << 20, $"{allocated} bytes allocated");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void LoadFile_EndlessDevice_RefusedAtTheSizeLimit()
    {
        // /dev/zero has no length to check first: the read itself must stop.
        Assert.False(Ruleset.TryLoadFile("/dev/zero", out Ruleset? rs, out IReadOnlyList<RuleError> errors));
        Assert.Null(rs);
        Assert.Equal("/dev/zero:0:0: the rules file is larger than 67108864 bytes (64 MiB), the most ctfw reads", Assert.Single(errors).ToString());
    }
}
