using System.Text.RegularExpressions;
using CsCheck;
using Ctfw.Rules;

namespace Ctfw.Rules.Tests;

/// <summary>
/// Property tests (CsCheck): <see cref="Ruleset.TryLoad"/> on arbitrary and mutated rulesets never
/// throws; it loads, or it refuses with errors that each point at a file:line:col inside the text.
/// Seeds are the example rulesets in rules/. Each run draws new inputs; a failure prints the seed
/// that reproduces it.
/// </summary>
public partial class RulesetPropertyTests
{
    private const string FileName = "fuzz.rules";

    private static readonly string[] s_seeds = Directory.GetFiles(T.RulesDirectory(), "*.rules")
        .Order(StringComparer.Ordinal).Select(File.ReadAllText).ToArray();

    // Pieces of the grammar, so that mutations make near-valid lines rather than only noise.
    private static readonly string[] s_tokens =
    [
        "*filter", "COMMIT", ":INPUT ACCEPT [0:0]", "-A", "INPUT", "-j", "DROP", "ACCEPT", "REJECT", "LOG", "-p", "tcp", "udp",
        "icmp", "--dport", "22", "65536", "-s", "10.0.0.0/8", "::1/129", "-m", "conntrack", "--ctstate", "NEW,ESTABLISHED",
        "!", "-i", "eth+", "--log-prefix", "\"x\"", "\"", "\n", " ", "\t", "#", ",", "/", ":", "-N", "chain", "1.2.3.4-1.2.3.9",
    ];

    [Fact]
    public void TryLoad_ArbitraryText_LoadsOrLocatesItsErrors() =>
        Gen.String[Gen.Char, 0, 400].Sample(AssertLoadsOrLocates, iter: 3_000, threads: 1);

    [Fact]
    public void TryLoad_TokenSoup_LoadsOrLocatesItsErrors() =>
        Gen.OneOf(s_tokens).Array[0, 60].Select(tokens => "*filter\n" + string.Join(" ", tokens) + "\nCOMMIT\n")
            .Sample(AssertLoadsOrLocates, iter: 3_000, threads: 1);

    [Fact]
    public void TryLoad_MutatedExampleRulesets_LoadsOrLocatesItsErrors() =>
        Gen.Select(
                Gen.Int[0, s_seeds.Length - 1],
                Gen.Select(Gen.Int[0, 1 << 20], Gen.Int[0, 8], Gen.OneOf(s_tokens)).Array[1, 6],
                (seed, edits) =>
                {
                    string text = s_seeds[seed];
                    foreach ((int at, int delete, string insert) in edits)
                    {
                        int start = at % (text.Length + 1);
                        text = string.Concat(text.AsSpan(0, start), insert, text.AsSpan(Math.Min(text.Length, start + delete)));
                    }
                    return text;
                })
            .Sample(AssertLoadsOrLocates, iter: 1_000, threads: 1);

    [Fact]
    public void TryLoad_UnmutatedExamples_Load()
    {
        Assert.NotEmpty(s_seeds);
        foreach (string seed in s_seeds)
            Assert.True(Ruleset.TryLoad(seed, FileName, out _, out IReadOnlyList<RuleError> errors), string.Join("\n", errors));
    }

    private static void AssertLoadsOrLocates(string text)
    {
        bool loaded = Ruleset.TryLoad(text, FileName, out Ruleset? ruleset, out IReadOnlyList<RuleError> errors);
        if (loaded)
        {
            Assert.NotNull(ruleset);
            return;
        }
        Assert.Null(ruleset);
        Assert.NotEmpty(errors);
        int lines = text.Split('\n').Length;
        foreach (RuleError error in errors)
        {
            Assert.Equal(FileName, error.File);
            Assert.InRange(error.Line, 1, lines);
            Assert.True(error.Column >= 1, error.ToString());
            Assert.False(string.IsNullOrWhiteSpace(error.Message), error.ToString());
            Assert.Matches(Location(), error.ToString());
        }
    }

    [GeneratedRegex(@"^fuzz\.rules:[0-9]+:[0-9]+: \S")]
    private static partial Regex Location();
}
