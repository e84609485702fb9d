using System.Diagnostics;
using System.Globalization;

namespace Ctfw.Lab.Tests;

/// <summary>The one process runner of the lab, the bench and the tests, against real (unprivileged) shell children.</summary>
public sealed class ChildProcessTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(20);

    private static ChildProcess Shell(string script, ChildProcessOptions? options = null) => ChildProcess.Start(["sh", "-c", script], options);

    [Fact]
    public void WaitForLine_LineNeverPrinted_FalseAfterTheTimeout()
    {
        using ChildProcess p = Shell("echo ready; exec sleep 30");
        Assert.True(p.WaitForLine(OutputStream.StdOut, "ready", s_long));

        var clock = Stopwatch.StartNew();
        Assert.False(p.WaitForLine(OutputStream.StdOut, "never", TimeSpan.FromMilliseconds(300)));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(290), TimeSpan.FromSeconds(10));
        Assert.False(p.HasExited);
    }

    [Fact]
    public void WaitForLine_LinePrintedLaterOnStderr_ReturnsThatLine()
    {
        using ChildProcess p = Shell("echo noise; sleep 0.3; echo 'hello world' >&2; exec sleep 30");
        string? line = p.WaitForLine(OutputStream.StdErr, l => l.StartsWith("hello", StringComparison.Ordinal), s_long);
        Assert.Equal("hello world", line);
        Assert.Equal("noise\n", p.StdOut);
    }

    [Fact]
    public void WaitForLine_ProcessExitsWithoutTheLine_FalseWithoutWaitingForTheTimeout()
    {
        using ChildProcess p = Shell("echo a");
        var clock = Stopwatch.StartNew();
        Assert.False(p.WaitForLine(OutputStream.StdOut, "b", TimeSpan.FromSeconds(60)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"waited {clock.Elapsed}");
    }

    [Fact]
    public void WaitForExit_ExitStatus_IsTheExitCode()
    {
        using ChildProcess p = Shell("echo out; echo err >&2; exit 7");
        Assert.Equal(7, p.WaitForExit(s_long));
        Assert.Equal(7, p.ExitCode);
        Assert.Equal("out\n", p.StdOut);
        Assert.Equal("err\n", p.StdErr);
    }

    [Fact]
    public async Task WaitForExit_StillRunning_Null()
    {
        using ChildProcess p = Shell("exec sleep 30");
        Assert.Null(p.WaitForExit(TimeSpan.FromMilliseconds(100)));
        Assert.Null(await p.WaitForExitAsync(TimeSpan.FromMilliseconds(100)));
        Assert.False(p.HasExited);
    }

    [Fact]
    public void Signal_Term_ReachesTheProgramWhichExitsWithItsOwnStatus()
    {
        using ChildProcess p = Shell("trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done");
        Assert.True(p.WaitForLine(OutputStream.StdOut, "ready", s_long));
        Assert.True(p.Signal(ChildProcess.SigTerm));
        Assert.Equal(3, p.WaitForExit(s_long));
        Assert.Contains("got-term", p.StdOut, StringComparison.Ordinal);
        Assert.False(p.Signal(ChildProcess.SigTerm));
    }

    [Fact]
    public void Dispose_ProgramWithChildren_KillsTheWholeTree()
    {
        int[] descendants;
        using (ChildProcess p = Shell("sleep 300 & echo $!; sh -c 'sleep 300 & echo $!; wait' & wait"))
        {
            int lines = 0;
            Assert.True(p.WaitForLine(OutputStream.StdOut, _ => ++lines == 2, s_long) is not null, p.StdOut);
            descendants = [.. p.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => int.Parse(l, CultureInfo.InvariantCulture))];
            Assert.All(descendants, pid => Assert.True(IsAlive(pid), $"{pid} is not running"));
        }
        Assert.All(descendants, pid => Assert.False(IsAlive(pid), $"{pid} outlived the disposed runner"));
    }

    [Fact]
    public void Dispose_WithGrace_SendsSigtermFirstSoTheProgramCleansUp()
    {
        string marker = Path.Combine(Path.GetTempPath(), $"ctfw-childprocess-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (ChildProcess p = Shell($"trap 'touch {marker}; exit 0' TERM; echo ready; while :; do sleep 0.05; done",
                       new ChildProcessOptions { DisposeGrace = TimeSpan.FromSeconds(10) }))
            {
                Assert.True(p.WaitForLine(OutputStream.StdOut, "ready", s_long));
            }
            Assert.True(File.Exists(marker), "the program was killed without its SIGTERM");
        }
        finally
        {
            File.Delete(marker);
        }
    }

    [Fact]
    public void StdOut_MoreLinesThanMaxLines_KeepsTheNewest()
    {
        using ChildProcess p = ChildProcess.Start(["seq", "1", "1000"], new ChildProcessOptions { MaxLines = 10 });
        Assert.Equal(0, p.WaitForExit(s_long));
        Assert.Equal(string.Concat(Enumerable.Range(991, 10).Select(i => $"{i}\n")), p.StdOut);
    }

    [Fact]
    public void KillTree_ExitedProgram_DoesNothing()
    {
        using ChildProcess p = Shell("exit 0");
        Assert.Equal(0, p.WaitForExit(s_long));
        p.KillTree();
        Assert.Equal(0, p.ExitCode);
    }

    /// <summary>Running as a process (a zombie has already died; only its parent has not reaped it yet).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            char state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
