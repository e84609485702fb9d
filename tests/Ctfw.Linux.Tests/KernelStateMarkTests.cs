using Ctfw.Firewall.Shadow;
using Ctfw.Conntrack;
using Ctfw.Linux.Firewall;

namespace Ctfw.Linux.Tests;

public sealed class KernelStateMarkTests
{
    public static TheoryData<CtState, CtDirection> Verdicts => new()
    {
        { CtState.New, CtDirection.Original },
        { CtState.New, CtDirection.Reply },
        { CtState.Established, CtDirection.Original },
        { CtState.Established, CtDirection.Reply },
        { CtState.Related, CtDirection.Original },
        { CtState.Related, CtDirection.Reply },
        { CtState.Invalid, CtDirection.None },
        { CtState.Untracked, CtDirection.None },
    };

    [Theory]
    [MemberData(nameof(Verdicts))]
    public void EncodeThenDecode_GivesTheVerdictBack_AndKeepsForeignBits(CtState state, CtDirection dir)
    {
        foreach (int shift in (int[])[0, 8, KernelStateMark.DefaultShift, 28])
        {
            var mark = new KernelStateMark(shift);
            uint foreign = ~mark.Mask & 0xA5A5A5A5;

            Assert.True(mark.TryDecode(foreign | mark.Encode(state, dir), out CtState s, out CtDirection d));

            Assert.Equal(state, s);
            Assert.Equal(dir, d);
            Assert.Equal(0u, mark.Encode(state, dir) & ~mark.Mask);
        }
    }

    [Theory]
    [InlineData(0x00000000u)]
    [InlineData(0x06000000u)]
    [InlineData(0x07000000u)]
    [InlineData(0x08000000u)] // direction bit without a state: not written by the rules
    [InlineData(0xF0FFFFFFu)]
    public void Decode_UnmarkedOrUnknownCode_IsFalse(uint value) =>
        Assert.False(new KernelStateMark(KernelStateMark.DefaultShift).TryDecode(value, out _, out _));

    [Fact]
    public void RuleBodies_SimulatedInOrder_ProduceTheEncodingOfEveryVerdict()
    {
        // Apply the rules as iptables would (--set-xmark v/m: mark = (mark & ~m) ^ v), to a mark that
        // already carries a stale REPLY code and foreign bits, and check the result decodes right.
        var mark = new KernelStateMark(KernelStateMark.DefaultShift);
        foreach ((CtState state, CtDirection dir) in new[] { (CtState.New, CtDirection.Reply), (CtState.Established, CtDirection.Original), (CtState.Invalid, CtDirection.None) })
        {
            uint skb = 0x0B000001; // stale field (REPLY|RELATED) and a foreign bit
            foreach (string[] rule in mark.RuleBodies())
            {
                bool matches = rule[2] == "--ctstate" ? rule[3] == CtNames.Name(state) : dir == CtDirection.Reply;
                if (!matches)
                    continue;
                string[] vm = rule[^1].Split('/');
                uint v = Convert.ToUInt32(vm[0], 16), m = Convert.ToUInt32(vm[1], 16);
                skb = (skb & ~m) ^ v;
            }
            Assert.True(mark.TryDecode(skb, out CtState s, out CtDirection d));
            Assert.Equal((state, dir), (s, d));
            Assert.Equal(1u, skb & ~mark.Mask);
        }
    }

    [Fact]
    public void Shift_Range_IsValidated()
    {
        Assert.True(KernelStateMark.IsValidShift(0));
        Assert.True(KernelStateMark.IsValidShift(28));
        Assert.False(KernelStateMark.IsValidShift(29));
        Assert.False(KernelStateMark.IsValidShift(-1));
    }
}
