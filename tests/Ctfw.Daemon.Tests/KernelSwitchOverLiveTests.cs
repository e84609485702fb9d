using Ctfw.Linux;
using Ctfw.Linux.Netlink;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// Issue 12, case e: a gateway filtering with kernel conntrack (strict iptables rules, tcp_loose=0)
/// switches to ctfw with `--import-kernel`, the kernel stops tracking (raw NOTRACK, table flushed),
/// and later switches back with `--export-kernel-on-exit`; the 200 ms TCP conversation and the UDP
/// push stream go on across both switches with nothing lost and no reset. Without `--import-kernel`
/// the switch to ctfw breaks them; without `--export-kernel-on-exit` the switch back does.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class KernelSwitchOverLiveTests(ITestOutputHelper output)
{
    private const int TcpPort = 5041;
    private const int UdpPort = 5042;
    private static readonly string[] s_notrack = ["PREROUTING", "-j", "CT", "--notrack"];

    [Theory(Timeout = 180_000)]
    [InlineData(true, true)]
    [InlineData(false, true)]  // no import: the switch to ctfw breaks the conversation
    [InlineData(true, false)]  // no export: the switch back to the kernel breaks it
    public async Task SwitchOverAndBack_ConversationSurvivesOnlyWithImportAndExport(bool import, bool export)
    {
        using var lab = new GatewayLab();
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-switch-{tag}.rules");
        string strict = Conversation.StrictRules(lab, TcpPort, UdpPort);
        File.WriteAllText(rules, strict);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        try
        {
            // 1. The kernel filters: the same strict rules in the gateway's iptables, loose pickup off.
            Tool.RunIn(lab.Gateway, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0");
            Tool.RunIn(lab.Gateway, "iptables-restore", rules);
            await using Conversation talk = await Conversation.StartAsync(lab, TcpPort, UdpPort, cts.Token);
            Assert.True(await talk.WaitForProgressAsync(5, 5, TimeSpan.FromSeconds(10)), "kernel filtering: " + talk.Report().Describe());

            // 2. Over to ctfw; then the kernel stops tracking and forgets what it tracked.
            string[] args = ["run", "--rules", rules, "--queue", "17", "--install", "FORWARD", "--set", "nf_conntrack_tcp_loose=0",
                "--control", Path.Combine(Path.GetTempPath(), $"ctfw-switch-{tag}.sock"),
                .. (import ? new[] { "--import-kernel" } : []), .. (export ? new[] { "--export-kernel-on-exit" } : [])];
            talk.MarkEvent(); // the gaps quoted cover both switches
            using ChildProcess ctfw = CtfwProcess.Start(lab.Gateway, args);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), ctfw.StdErr);
            Tool.RunIn(lab.Gateway, ["iptables", "-t", "raw", "-A", .. s_notrack]);
            FlushKernelTable(lab);
            bool onCtfw = await talk.WaitForProgressAsync(10, 10, TimeSpan.FromSeconds(import ? 15 : 5));
            if (import)
            {
                Assert.Contains("ctfw: imported from kernel conntrack: ", ctfw.StdErr);
                Assert.True(onCtfw, "on ctfw after --import-kernel: " + talk.Report().Describe());
            }
            else
            {
                ConversationReport broken = await talk.StopAsync();
                Conversation.RecordGap(output, "switch-to-ctfw-without-import", broken);
                Assert.False(onCtfw, "the switch to ctfw without --import-kernel kept the conversation: " + broken.Describe());
                Assert.True(ctfw.Signal(ChildProcess.SigTerm));
                Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(30)));
                return;
            }

            // 3. Back to the kernel: it tracks again, then ctfw stops (exporting its table first).
            Tool.RunIn(lab.Gateway, ["iptables", "-t", "raw", "-D", .. s_notrack]);
            Assert.True(ctfw.Signal(ChildProcess.SigTerm));
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.DoesNotContain("NFQUEUE", Tool.RunIn(lab.Gateway, "iptables-save"));
            foreach (string line in ctfw.StdErr.Split('\n').Where(l => l.Contains("kernel conntrack", StringComparison.Ordinal)))
                output.WriteLine(line);
            bool onKernel = await talk.WaitForProgressAsync(10, 10, TimeSpan.FromSeconds(export ? 15 : 5));
            ConversationReport report = await talk.StopAsync();
            Conversation.RecordGap(output, $"switch-over-and-back{(export ? "" : "-without-export")}", report);
            if (export)
            {
                Assert.Contains("ctfw: exported ", ctfw.StdErr);
                Assert.True(onKernel, "back on the kernel after --export-kernel-on-exit: " + report.Describe());
                Assert.True(report.Intact, report.Describe());
            }
            else
            {
                Assert.False(onKernel, "the switch back without --export-kernel-on-exit kept the conversation: " + report.Describe());
            }
        }
        finally
        {
            cts.Cancel();
            File.Delete(rules);
        }
    }

    private static void FlushKernelTable(GatewayLab lab) =>
        NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Gateway), () =>
        {
            using CtnetlinkSocket ct = CtnetlinkSocket.Open();
            ct.Flush();
            return 0;
        });
}
