using System.Text;
using Ctfw.Linux.Nfqueue;

namespace Ctfw.Linux.Tests;

public sealed class NfqueueKernelCountersTests
{
    // As nfnetlink_queue.c seq_show prints it: "%5u %6u %5u %1u %5u %5u %5u %8u %2d\n".
    private const string Text =
        "    0 123456     3 2 65531    17     4     1234  1\n" +
        "65535 4294967295 0 1   128 4294967295 0 4294967295  1\n";

    [Fact]
    public void TryFind_KnownQueue_ReturnsItsColumns()
    {
        Assert.True(NfqueueKernelCounters.TryFind(Encoding.ASCII.GetBytes(Text), 0, out NfqueueKernelCounters c));

        Assert.Equal(new NfqueueKernelCounters(0, 123456, 3, 2, 65531, 17, 4, 1234), c);
    }

    [Fact]
    public void TryFind_MaximalValues_AreParsed()
    {
        Assert.True(NfqueueKernelCounters.TryFind(Encoding.ASCII.GetBytes(Text), 65535, out NfqueueKernelCounters c));

        Assert.Equal(new NfqueueKernelCounters(65535, uint.MaxValue, 0, 1, 128, uint.MaxValue, 0, uint.MaxValue), c);
    }

    [Fact]
    public void TryFind_AbsentQueueOrGarbage_ReturnsFalse()
    {
        Assert.False(NfqueueKernelCounters.TryFind(Encoding.ASCII.GetBytes(Text), 1, out _));
        Assert.False(NfqueueKernelCounters.TryFind("queue portid\n  x y z\n\n"u8, 0, out _));
        Assert.False(NfqueueKernelCounters.TryFind("    0 1 2 3\n"u8, 0, out _));
        Assert.False(NfqueueKernelCounters.TryFind(""u8, 0, out _));
    }
}
