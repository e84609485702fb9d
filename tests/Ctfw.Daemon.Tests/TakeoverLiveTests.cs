using System.Net.Sockets;
using System.Text;
using Ctfw.Linux;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw run --takeover` (issue 12, case c): under a strict ruleset a long-lived TCP conversation and
/// a UDP stream go on across the upgrade hand-over with nothing lost, no reset and nothing passed
/// unchecked, in fail-open and fail-closed mode; the same upgrade done as a plain restart (no
/// takeover, no state file) breaks both, so the test can fail. A takeover that does not happen
/// (settings differ, the new process gives up) leaves the old process filtering.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class TakeoverLiveTests(ITestOutputHelper output)
{
    private const int TcpPort = 5031;
    private const int UdpPort = 5032;

    [Theory(Timeout = 180_000)]
    [InlineData(true, false)]
    [InlineData(true, true)]   // --fail-closed: the packets of the gap wait, none is dropped
    [InlineData(false, false)] // the upgrade as a restart without the feature: the conversation breaks
    public async Task Upgrade_ConversationSurvivesOnlyTheTakeover(bool takeover, bool failClosed)
    {
        using var lab = new GatewayLab();
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-takeover-{tag}.rules");
        string oldControl = Path.Combine(Path.GetTempPath(), $"ctfw-takeover-{tag}-old.sock");
        string newControl = Path.Combine(Path.GetTempPath(), $"ctfw-takeover-{tag}-new.sock");
        File.WriteAllText(rules, Conversation.StrictRules(lab, TcpPort, UdpPort));
        string[] common = ["run", "--rules", rules, "--queue", "16", "--install", "FORWARD", "--set", "nf_conntrack_tcp_loose=0",
            .. (failClosed ? new[] { "--fail-closed" } : [])];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        try
        {
            using ChildProcess first = CtfwProcess.Start(lab.Gateway, [.. common, "--control", oldControl]);
            Assert.True(first.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), first.StdErr);
            await using Conversation talk = await Conversation.StartAsync(lab, TcpPort, UdpPort, cts.Token);
            Assert.True(await talk.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(10)), talk.Report().Describe());

            ChildProcess second;
            talk.MarkEvent();
            if (takeover)
            {
                second = CtfwProcess.Start(lab.Gateway, [.. common, "--control", newControl, "--takeover-from", oldControl]);
                Assert.True(second.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), second.StdErr + first.StdErr);
                Assert.Equal(0, first.WaitForExit(TimeSpan.FromSeconds(30)));
                Assert.Contains("ctfw: handed over to pid", first.StdErr);
                Assert.Contains("ctfw: took over queue 16 from pid", second.StdErr);
                Assert.Contains("none passed unchecked, 0 dropped", second.StdErr);
                Assert.Contains("ctfw: took over the NFQUEUE rules of pid", second.StdErr);
                output.WriteLine(second.StdErr.Split('\n').First(l => l.StartsWith("ctfw: took over queue", StringComparison.Ordinal)));
            }
            else
            {
                Assert.True(first.Signal(ChildProcess.SigTerm));
                Assert.Equal(0, first.WaitForExit(TimeSpan.FromSeconds(30)));
                second = CtfwProcess.Start(lab.Gateway, [.. common, "--control", newControl]);
                Assert.True(second.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), second.StdErr);
            }
            using (second)
            {
                bool progressed = await talk.WaitForProgressAsync(10, 10, TimeSpan.FromSeconds(takeover ? 15 : 5));
                ConversationReport report = await talk.StopAsync();
                Conversation.RecordGap(output, $"takeover-{(takeover ? "with" : "without")}{(failClosed ? "-fail-closed" : "")}", report);
                if (takeover)
                {
                    Assert.True(progressed, report.Describe());
                    Assert.True(report.Intact, report.Describe());
                }
                else
                {
                    Assert.False(progressed, "a restart without takeover or state file kept the conversation: " + report.Describe());
                }

                // The rules now belong to the second process: its stop removes them all.
                Assert.True(second.Signal(ChildProcess.SigTerm));
                Assert.Equal(0, second.WaitForExit(TimeSpan.FromSeconds(30)));
                Assert.DoesNotContain("NFQUEUE", Tool.RunIn(lab.Gateway, "iptables-save"));
                Assert.DoesNotContain("NFQUEUE", Tool.RunIn(lab.Gateway, "ip6tables-save"));
            }
        }
        finally
        {
            cts.Cancel();
            File.Delete(rules);
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task Takeover_ThatDoesNotHappen_LeavesTheRunningCtfwFiltering()
    {
        using var lab = new GatewayLab();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        try
        {
            using var daemon = new LiveDaemon(lab, "takeover", Conversation.StrictRules(lab, TcpPort, UdpPort), 16, "--set", "nf_conntrack_tcp_loose=0");
            ChildProcess running = daemon.Process;
            string control = daemon.ControlPath;
            string[] common = ["run", "--rules", daemon.RulesPath, "--queue", "16", "--install", "FORWARD", "--set", "nf_conntrack_tcp_loose=0"];
            await using Conversation talk = await Conversation.StartAsync(lab, TcpPort, UdpPort, cts.Token);

            // Different queue settings: refused before anything is handed over; exit 1, one line.
            using (ChildProcess refused = CtfwProcess.Start(lab.Gateway, [.. common, "--queue-maxlen", "100", "--takeover-from", control]))
            {
                Assert.Equal(1, refused.WaitForExit(TimeSpan.FromSeconds(30)));
                Assert.Contains("--queue-maxlen 4096 there, 100 here", refused.StdErr);
                Assert.Contains("the running ctfw goes on filtering", refused.StdErr);
            }

            // A new process that receives the sockets and the table and then gives up.
            using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                socket.Connect(new UnixDomainSocketEndPoint(control));
                socket.Send(Encoding.ASCII.GetBytes("takeover\t1\n"));
                string offer = ReadLine(socket);
                Assert.StartsWith("ok\tpid=", offer, StringComparison.Ordinal);
                socket.Send("go\n"u8.ToArray());
                List<System.Runtime.InteropServices.SafeHandle> fds = DescriptorPassing.Receive(socket, 4, TimeSpan.FromSeconds(10), out byte marker);
                Assert.Equal((byte)'F', marker);
                Assert.Single(fds);
                foreach (System.Runtime.InteropServices.SafeHandle fd in fds)
                    fd.Dispose(); // our copy only: the queue stays bound to the running ctfw's
                using (var stream = new NetworkStream(socket, ownsSocket: false))
                    new Cli.Daemon.ChunkedReadStream(stream).CopyTo(Stream.Null); // the table, to its end marker
                socket.Send("abort\tchanged my mind\n"u8.ToArray());
            }
            Assert.True(running.WaitForLine(OutputStream.StdErr, "did not happen (changed my mind); this ctfw goes on filtering", TimeSpan.FromSeconds(20)), running.StdErr);

            Assert.True(await talk.WaitForProgressAsync(10, 10, TimeSpan.FromSeconds(15)), talk.Report().Describe());
            ConversationReport report = await talk.StopAsync();
            Assert.True(report.Intact, report.Describe());
            Assert.True(running.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, running.WaitForExit(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            cts.Cancel();
        }
    }

    private static string ReadLine(Socket socket)
    {
        socket.ReceiveTimeout = 10_000;
        var line = new StringBuilder();
        byte[] one = new byte[1];
        while (socket.Receive(one) == 1 && one[0] != '\n')
            line.Append((char)one[0]);
        return line.ToString();
    }
}
