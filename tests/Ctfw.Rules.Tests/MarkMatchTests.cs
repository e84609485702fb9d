using Ctfw.Packets;

namespace Ctfw.Rules.Tests;

/// <summary>`-m mark [!] --mark VALUE[/MASK]` as xt_mark: (skb->mark &amp; MASK) == VALUE, parsed as libxt_mark parses it.</summary>
public sealed class MarkMatchTests
{
    private static string Verdict(string match, uint mark) =>
        T.V(T.Eval(T.Table($"-A INPUT {match} -j DROP"), T.Tcp(), mark: mark));

    [Theory]
    [InlineData("-m mark --mark 1", 1u, "Drop")]
    [InlineData("-m mark --mark 1", 0u, "Accept")]
    [InlineData("-m mark --mark 1", 0x101u, "Accept")]
    [InlineData("-m mark --mark 0x1/0xff", 0x101u, "Drop")]
    [InlineData("-m mark --mark 0x1/0xff", 0x102u, "Accept")]
    [InlineData("-m mark --mark 0/0xff", 0x100u, "Drop")]
    [InlineData("-m mark --mark 0x0f000000/0x0f000000", 0xff000000u, "Drop")]
    [InlineData("-m mark ! --mark 1", 1u, "Accept")]
    [InlineData("-m mark ! --mark 1", 2u, "Drop")]
    [InlineData("-m mark ! --mark 0x1/0xff", 0x201u, "Accept")]
    [InlineData("-m mark --mark 010", 8u, "Drop")]
    [InlineData("-m mark --mark 4294967295", 0xffffffffu, "Drop")]
    // The value is not masked (the kernel's is not either): bits outside the mask never match.
    [InlineData("-m mark --mark 0x101/0xff", 0x101u, "Accept")]
    public void Mark_ValueAndMask_MatchesAsXtMark(string match, uint mark, string expected) =>
        Assert.Equal(expected, Verdict(match, mark));

    [Theory]
    [InlineData("-m mark", "match 'mark' needs '--mark'")]
    [InlineData("-m mark --mark x1", "bad mark 'x1'; expected VALUE[/MASK]")]
    [InlineData("-m mark --mark 0x100000000", "bad mark '0x100000000'")]
    [InlineData("-m mark --mark 1/", "bad mark '1/'")]
    [InlineData("-m mark --mark 08", "bad mark '08'")]
    [InlineData("-m mark --mark -1", "bad mark '-1'")]
    [InlineData("--mark 1", "option '--mark' needs '-m mark' before it")]
    [InlineData("-m mark --mark 1 --mark 2", "option '--mark' given twice in one match")]
    public void Mark_BadRule_OneError(string match, string message) =>
        Assert.Contains(message, T.TableError($"-A INPUT {match} -j DROP"), StringComparison.Ordinal);

    [Fact]
    public void Mark_IptablesSaveForm_LoadsAndLists()
    {
        Ruleset rs = T.Table("-A FORWARD -p tcp -m mark --mark 0x2a/0xff -m tcp --dport 22 -j ACCEPT", forward: "DROP");
        Assert.Contains("-m mark --mark 0x2a/0xff", rs.Rules[0].Text, StringComparison.Ordinal);
        Assert.Equal("Accept", T.V(T.Eval(rs, T.Tcp(dport: 22), Hook.Forward, mark: 0x12a)));
        Assert.Equal("Drop", T.V(T.Eval(rs, T.Tcp(dport: 22), Hook.Forward, mark: 0x12b)));
    }
}
