using Ctfw.Rules.Parsing;

namespace Ctfw.Rules.Tests;

public class TokenizerTests
{
    private static string[] Words(string line)
    {
        var tokens = new List<Token>();
        Assert.True(Tokenizer.TryTokenize(line, tokens, out _));
        return tokens.Select(t => t.Text).ToArray();
    }

    [Theory]
    [InlineData("-A INPUT  -j\tACCEPT", new[] { "-A", "INPUT", "-j", "ACCEPT" })]
    [InlineData("--comment \"a b\" x", new[] { "--comment", "a b", "x" })]
    [InlineData("--comment \"q\\\"uote\\\\d\"", new[] { "--comment", "q\"uote\\d" })]
    [InlineData("--comment \"\" x", new[] { "--comment", "", "x" })]
    [InlineData("ab\"c d\"ef", new[] { "abc d", "ef" })]
    [InlineData("back\\slash", new[] { "back\\slash" })]
    [InlineData("x \"it's\"", new[] { "x", "it's" })]
    [InlineData("-A INPUT -j ACCEPT\r", new[] { "-A", "INPUT", "-j", "ACCEPT" })]
    public void Tokenize_AsIptablesRestore_SplitsAndUnquotes(string line, string[] expected) =>
        Assert.Equal(expected, Words(line));

    [Fact]
    public void Tokenize_Columns_AreOneBasedWordStarts()
    {
        var tokens = new List<Token>();
        Assert.True(Tokenizer.TryTokenize("  -A \"x y\" z", tokens, out _));
        Assert.Equal([3, 6, 12], tokens.Select(t => t.Column));
    }

    [Fact]
    public void Tokenize_UnterminatedQuote_ReportsTheQuoteColumn()
    {
        Assert.False(Tokenizer.TryTokenize("-j LOG --log-prefix \"abc", new List<Token>(), out int column));
        Assert.Equal(21, column);
    }

    [Theory]
    [InlineData("plain_word-1", "plain_word-1")]
    [InlineData("a b", "\"a b\"")]
    [InlineData("[iptables] x: ", "\"[iptables] x: \"")]
    [InlineData("q\"\\'", "\"q\\\"\\\\\\'\"")]
    [InlineData("", "\"\"")]
    public void Quote_AsXtablesSaveString_RoundTrips(string value, string expected)
    {
        string quoted = Tokenizer.Quote(value);
        Assert.Equal(expected, quoted);
        Assert.Equal([value], Words(quoted));
    }
}
