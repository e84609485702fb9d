using Ctfw.Linux;
using Xunit;

namespace Ctfw.Linux.Tests;

public class ResourceUsageTests
{
    [Fact]
    public void ProcStat_CommandWithSpacesAndParentheses_ReadsEveryField()
    {
        const string Stat = "4242 (ctfw (q) 7) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 59 0 0 20 0 9 0 100 0 0";
        Assert.True(ProcStat.TryParse(Stat, out ProcStat stat));
        Assert.Equal(new ProcStat(4242, "ctfw (q) 7", 'S', 1, 731, 59, 100), stat);
        Assert.False(stat.HasExited);
        Assert.True(ProcStat.TryParse(Stat.Replace(") S ", ") Z ", StringComparison.Ordinal), out ProcStat zombie) && zombie.HasExited);
    }

    [Fact]
    public void ProcStat_ThisProcess_IsReadAndRunning()
    {
        Assert.True(ProcStat.TryRead(Environment.ProcessId, out ProcStat stat));
        Assert.Equal(Environment.ProcessId, stat.Pid);
        Assert.False(stat.HasExited);
        Assert.True(stat.StartTime > 0);
        Assert.False(ProcStat.TryRead(int.MaxValue, out _)); // above pid_max: no such process
    }

    [Theory]
    [InlineData("\t  123456 kB", 123456)]
    [InlineData("7 kB", 7)]
    [InlineData("42", 42)]
    public void TryParseKilobytes_StatusValues(string text, long expected)
    {
        Assert.True(ResourceUsage.TryParseKilobytes(text, out long kib));
        Assert.Equal(expected, kib);
        Assert.False(ResourceUsage.TryParseKilobytes("x kB", out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("4242 ctfw S 1")]
    [InlineData("4242 (ctfw) S 1 2 3")]
    [InlineData("4242 (ctfw) S 1 4242 4242 0 -1 4194560 1200 0 0 0 x 59")]
    [InlineData("4242 (ctfw) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 59 0 0 20 0 9 0 x 0 0")]
    [InlineData("x (ctfw) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 59 0 0 20 0 9 0 100 0 0")]
    public void ProcStat_Malformed_ReturnsFalse(string stat) =>
        Assert.False(ProcStat.TryParse(stat, out _));

    [Fact]
    public void CurrentThread_TimesAndProcessTimes_MoveWithWork()
    {
        Assert.True(ResourceUsage.TryGetProcessTimes(out long user0, out long sys0));
        int tid = ResourceUsage.CurrentThreadId();
        Assert.True(tid > 0);
        Assert.True(ResourceUsage.TryGetThreadTimes(tid, out long threadUser0, out _));
        // Spin until the thread's own tick-resolution clock moves (about 10 ms of CPU).
        long spin = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long threadUser1;
        do
        {
            for (int i = 0; i < 1_000_000; i++)
                spin += i ^ spin;
            Assert.True(ResourceUsage.TryGetThreadTimes(tid, out threadUser1, out _));
        }
        while (threadUser1 == threadUser0 && clock.Elapsed < TimeSpan.FromSeconds(30));
        Assert.True(threadUser1 > threadUser0, $"thread CPU did not move (spin {spin})");
        Assert.True(ResourceUsage.TryGetProcessTimes(out long user1, out long sys1));
        Assert.True(user1 + sys1 > user0 + sys0);
        Assert.True(ResourceUsage.ResidentBytes() > 1 << 20);
        Assert.InRange(ResourceUsage.AnonymousResidentBytes(), 1 << 20, ResourceUsage.ResidentBytes());
        Assert.False(ResourceUsage.TryGetThreadTimes(int.MaxValue, out _, out _));
    }
}
