using Ctfw.Lab.Bench;

namespace Ctfw.Lab.Tests.Bench;

public sealed class CLoopExitTests
{
    [Fact]
    public void Parse_FullExitLine_ReadsEveryCounter()
    {
        CLoopExit e = CLoopExit.Parse("packets=812345 batches=40211 avg_batch=20.20 bytes=987654321 truncated=3 recv_calls=40300 send_calls=40211\n");
        Assert.Equal(new CLoopExit(812345, 40211, 987654321, 3, 40300, 40211), e);
        Assert.Equal(812345.0 / 40211, e.AverageBatch, 9);
    }

    [Fact]
    public void Parse_LineOfALoopBuiltBeforeTheSyscallCounters_NullCounts()
    {
        CLoopExit e = CLoopExit.Parse("nfq_accept: noise\npackets=10 batches=4 avg_batch=2.50 bytes=100 truncated=0\n");
        Assert.Equal(10, e.Packets);
        Assert.Equal(4, e.Batches);
        Assert.Null(e.RecvCalls);
        Assert.Null(e.SendCalls);
    }

    [Fact]
    public void Parse_NoBatches_AverageZero()
    {
        Assert.Equal(0, CLoopExit.Parse("packets=0 batches=0 avg_batch=0.00 bytes=0 truncated=0 recv_calls=5 send_calls=0").AverageBatch);
    }

    [Theory]
    [InlineData("")]
    [InlineData("nfq_accept: queue 7 copy 65531 batch 64 maxlen 4096 gso on fail-open\n")]
    [InlineData("packets=12\n")]
    [InlineData("packets=x batches=1\n")]
    [InlineData("packets=1 batches=1 recv_calls=-3\n")]
    public void Parse_NoUsableExitLine_FormatException(string output)
    {
        Assert.Throws<FormatException>(() => CLoopExit.Parse(output));
    }
}
