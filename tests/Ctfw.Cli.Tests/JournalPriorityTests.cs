using System.Text;
using Ctfw.Cli.Daemon;
using Ctfw.Firewall.Logging;
using Ctfw.Linux;

namespace Ctfw.Cli.Tests;

/// <summary>Syslog priorities for journald: which kind of line gets which, when stderr is the journal, and the prefix on the wire.</summary>
[Collection("Console")] // sets JOURNAL_STREAM for the process
public sealed class JournalPriorityTests
{
    [Theory]
    [InlineData("ctfw: ALERT: the NFQUEUE rules of this run were removed or moved by someone else: x", JournalPriority.Error)]
    [InlineData("ctfw: error: cannot write the state file", JournalPriority.Error)]
    [InlineData("ctfw: warning: no control socket (x)", JournalPriority.Warning)]
    [InlineData("ctfw: --reset-on-expiry: warning: raw socket", JournalPriority.Warning)]
    [InlineData("ctfw: control: flush denied to uid 1000 (alice) pid 4242: read-only", JournalPriority.Warning)]
    [InlineData("ctfw: control: stats refused to uid 1001 pid 7: not a member of a control group", JournalPriority.Warning)]
    [InlineData("ctfw: control: a connection answered busy (too many at once)", JournalPriority.Warning)]
    [InlineData("ctfw: control: flush by uid 1000 (alice) pid 4242: 57 entries removed", JournalPriority.Notice)]
    [InlineData("smtp: IN=lan0 OUT=wan0 MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=60", JournalPriority.Notice)]
    [InlineData("IN=lan0 OUT= SRC=10.0.0.1 DST=10.0.0.2", JournalPriority.Notice)]
    [InlineData("ctfw: ab: kernel NEW ctfw INVALID tcp 10.0.0.1:1 -> 10.0.0.2:2", JournalPriority.Notice)]
    [InlineData("ctfw: rescue: late FIN adopted", JournalPriority.Notice)]
    [InlineData("ctfw: 12 LOG lines suppressed (rate limit 20/s)", JournalPriority.Notice)]
    [InlineData("ctfw: running: queues 0-3, 12 rules", JournalPriority.Info)]
    [InlineData("ctfw: log lines 4, suppressed 0; output lines lost 0", JournalPriority.Info)]
    [InlineData("", JournalPriority.Info)]
    public void Of_LineKind_Priority(string line, int expected) => Assert.Equal(expected, JournalPriority.Of(line));

    [Theory]
    [InlineData("8:12345", 8UL, 12345UL, true)]
    [InlineData("8:12345", 8UL, 12346UL, false)]
    [InlineData("9:12345", 8UL, 12345UL, false)]
    [InlineData("8:", 8UL, 0UL, false)]
    [InlineData(":12345", 0UL, 12345UL, false)]
    [InlineData("8 12345", 8UL, 12345UL, false)]
    [InlineData("-8:12345", 8UL, 12345UL, false)]
    [InlineData("", 0UL, 0UL, false)]
    [InlineData(null, 0UL, 0UL, false)]
    public void Matches_DevInode_ExactDecimalPair(string? variable, ulong device, ulong inode, bool expected) =>
        Assert.Equal(expected, JournalPriority.Matches(variable, device, inode));

    [Fact]
    public void StderrIsJournal_FollowsJournalStreamAgainstFd2()
    {
        string? old = Environment.GetEnvironmentVariable("JOURNAL_STREAM");
        try
        {
            Assert.Equal(Errno.None, UnixIdentity.TryGetDeviceAndInode(2, out ulong device, out ulong inode));
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", $"{device}:{inode}");
            Assert.True(JournalPriority.StderrIsJournal());
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", $"{device}:{inode + 1}");
            Assert.False(JournalPriority.StderrIsJournal()); // stderr redirected since systemd started us
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", null);
            Assert.False(JournalPriority.StderrIsJournal());
        }
        finally
        {
            Environment.SetEnvironmentVariable("JOURNAL_STREAM", old);
        }
    }

    [Fact]
    public void LogWriter_JournalPriorities_PrefixEachLine_OtherwiseUnchanged()
    {
        string[] lines = ["ctfw: running", "ctfw: ALERT: rules gone", "smtp: IN=lan0 OUT=wan0 ", "ctfw: warning: slow"];
        Assert.Equal("<6>ctfw: running\n<3>ctfw: ALERT: rules gone\n<5>smtp: IN=lan0 OUT=wan0 \n<4>ctfw: warning: slow\n", Write(lines, journal: true));
        Assert.Equal("ctfw: running\nctfw: ALERT: rules gone\nsmtp: IN=lan0 OUT=wan0 \nctfw: warning: slow\n", Write(lines, journal: false));
    }

    private static string Write(string[] lines, bool journal)
    {
        var queue = new LogQueue(16);
        using var output = new MemoryStream();
        var writer = new LogWriter(queue, output) { JournalPriorities = journal };
        writer.Start();
        foreach (string line in lines)
            queue.TryEnqueue(line);
        Assert.True(writer.Stop(TimeSpan.FromSeconds(10)));
        return Encoding.UTF8.GetString(output.ToArray());
    }
}
