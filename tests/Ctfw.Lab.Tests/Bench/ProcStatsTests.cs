using Ctfw.Lab.Bench;

namespace Ctfw.Lab.Tests.Bench;

public sealed class ProcStatsTests
{
    // A real /proc/PID/task/TID/stat line of a ctfw worker thread, with utime 1234 and stime 5678.
    private const string WorkerStat =
        "4242 (ctfw-queue-7) S 1 4242 4242 0 -1 4194624 1200 0 0 0 1234 5678 0 0 20 0 9 0 123456 300000000 24000 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 -1 1 0 0 0 0 0";

    [Fact]
    public void TryParsePidStat_WorkerThread_ReadsNameUserAndSystemTicks()
    {
        Assert.True(ProcStats.TryParsePidStat(WorkerStat, out int pid, out string name, out CpuTicks cpu));
        Assert.Equal(4242, pid);
        Assert.Equal("ctfw-queue-7", name);
        Assert.Equal(new CpuTicks(1234, 5678), cpu);
    }

    [Fact]
    public void TryParsePidStat_CommWithSpacesAndParentheses_CountsFieldsFromTheLastParenthesis()
    {
        string stat = WorkerStat.Replace("(ctfw-queue-7)", "(a) b (c)", StringComparison.Ordinal);
        Assert.True(ProcStats.TryParsePidStat(stat, out _, out string name, out CpuTicks cpu));
        Assert.Equal("a) b (c", name);
        Assert.Equal(new CpuTicks(1234, 5678), cpu);
    }

    [Fact]
    public void TryParsePidStat_EveryTruncation_FalseWithoutThrowing()
    {
        // Every prefix that ends before stime's first digit: a prefix cut inside stime is a valid shorter number.
        int end = WorkerStat.IndexOf(" 5678 ", StringComparison.Ordinal) + 1;
        for (int i = 0; i <= end; i++)
            Assert.False(ProcStats.TryParsePidStat(WorkerStat[..i], out _, out _, out _), $"prefix of {i} characters");
    }

    [Fact]
    public void TryParseSystemCpu_CpuLine_SumsFirstEightFieldsAndTakesSteal()
    {
        const string stat = "cpu  100 5 50 800 10 1 2 32 7 0\ncpu0 50 2 25 400 5 0 1 16 0 0\nintr 1\n";
        Assert.True(ProcStats.TryParseSystemCpu(stat, out SystemCpu cpu));
        Assert.Equal(new SystemCpu(1000, 32), cpu);
        Assert.Equal(8.0, new SystemCpu(1100, 40).StealPercentSince(cpu), 6);
    }

    [Fact]
    public void TryParseSystemCpu_NoCpuLine_False()
    {
        Assert.False(ProcStats.TryParseSystemCpu("cpu0 1 2 3 4\n", out _));
        Assert.False(ProcStats.TryParseSystemCpu("cpu  1 x 3 4\n", out _));
    }

    [Fact]
    public void ParseKernelQueues_TwoQueues_ReadsDropCounters()
    {
        const string text = "    7  12345     3 2 65531     5     2   991 1\n    8  12346     0 2 65531     0    11    17 1\nnonsense\n";
        List<KernelQueueRow> rows = ProcStats.ParseKernelQueues(text);
        Assert.Equal([new KernelQueueRow(7, 3, 5, 2, 991), new KernelQueueRow(8, 0, 0, 11, 17)], rows);
        Assert.Equal(7, rows[0].Drops);
    }

    [Fact]
    public void CpuTicks_Arithmetic_AndMicroseconds()
    {
        Assert.Equal(new CpuTicks(3, 4), new CpuTicks(5, 9) - new CpuTicks(2, 5));
        Assert.Equal(new CpuTicks(7, 14), new CpuTicks(5, 9) + new CpuTicks(2, 5));
        Assert.Equal(10_000, CpuTicks.Microseconds);
    }

    [Fact]
    public void ReadProcess_ThisProcess_HasThreadsAndNonNegativeTicks()
    {
        if (!OperatingSystem.IsLinux())
            return;
        var own = ProcStats.ReadProcess(Environment.ProcessId);
        Assert.NotNull(own);
        Assert.NotEmpty(own.Value.Threads);
        Assert.True(own.Value.Process.User >= 0 && own.Value.Process.System >= 0);
        Assert.True(ProcStats.ReadRssBytes(Environment.ProcessId) > 0);
    }
}
