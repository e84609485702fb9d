using System.Net;
using System.Net.Sockets;
using System.Text;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `--state-file`: under a strict ruleset (NEW only with SYN, nf_conntrack_tcp_loose=0) a long-lived
/// TCP conversation survives SIGTERM and a restart from the state file; the same restart without
/// the file breaks it, so the test can fail.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed class StateFileLiveTests
{
    private const string Strict = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p tcp -m tcp --syn -m conntrack --ctstate NEW -j ACCEPT
        COMMIT

        """;

    [Theory(Timeout = 180_000)]
    [InlineData(true, false, "two")]
    [InlineData(false, false, "timeout")]
    [InlineData(true, true, "two")]     // kill -9: the last checkpoint carries the connection
    [InlineData(false, true, "timeout")]
    public async Task Restart_TcpConversation_SurvivesOnlyWithTheStateFile(bool withStateFile, bool kill9, string expectedAfterRestart)
    {
        using var lab = new GatewayLab();
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-state-{tag}.rules");
        string state = Path.Combine(Path.GetTempPath(), $"ctfw-state-{tag}.state");
        File.WriteAllText(rules, Strict);
        string[] args = ["run", "--rules", rules, "--queue", "15", "--install", "FORWARD", "--set", "nf_conntrack_tcp_loose=0",
            .. (withStateFile ? new[] { "--state-file", state, "--state-interval", "1" } : [])];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        try
        {
            using Socket listener = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Bind(new IPEndPoint(IPAddress.Any, 5002));
                s.Listen(1);
                return s;
            });
            Task echo = Echo(listener, cts.Token);

            using (ChildProcess first = CtfwProcess.Start(lab.Gateway, args))
            {
                Assert.True(first.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), first.StdErr);
                using Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
                    () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
                await client.ConnectAsync(new IPEndPoint(lab.ServerV4, 5002), cts.Token);
                Assert.Equal("one", await Talk.Say(client, "one", timeoutSeconds: 4));

                if (kill9)
                {
                    await Task.Delay(TimeSpan.FromSeconds(2.5), cts.Token); // at least one checkpoint after the handshake
                    Assert.True(first.Signal(ChildProcess.SigKill));
                    Assert.NotNull(first.WaitForExit(TimeSpan.FromSeconds(30)));
                    if (withStateFile)
                        Assert.True(File.Exists(state));
                }
                else
                {
                    Assert.True(first.Signal(ChildProcess.SigTerm));
                    Assert.Equal(0, first.WaitForExit(TimeSpan.FromSeconds(30)));
                }
                if (withStateFile && !kill9)
                {
                    Assert.Contains($"ctfw: state written to {state}: 1 entries", first.StdErr);
                    Assert.True(File.Exists(state));
                }

                using ChildProcess second = CtfwProcess.Start(lab.Gateway, args);
                Assert.True(second.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), second.StdErr);
                if (withStateFile)
                    Assert.Contains($"ctfw: restored 1 entries from {state}", second.StdErr);
                // The restarted ctfw judges the next segment: ESTABLISHED from the restored entry, or
                // INVALID (no entry, loose pickup off) and dropped without it.
                Assert.Equal(expectedAfterRestart, await Talk.Say(client, "two", timeoutSeconds: 4));
                second.Signal(ChildProcess.SigTerm);
                Assert.Equal(0, second.WaitForExit(TimeSpan.FromSeconds(30)));
            }
        }
        finally
        {
            cts.Cancel();
            File.Delete(rules);
            File.Delete(state);
        }
    }

    [Fact]
    public void Start_DamagedStateFile_MovedAsideOneLineStartsEmpty()
    {
        using var lab = new GatewayLab();
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string rules = Path.Combine(Path.GetTempPath(), $"ctfw-state-{tag}.rules");
        string state = Path.Combine(Path.GetTempPath(), $"ctfw-state-{tag}.state");
        File.WriteAllText(rules, Strict);
        File.WriteAllText(state, "not a state file at all");
        try
        {
            using ChildProcess ctfw = CtfwProcess.Start(lab.Gateway, "run", "--rules", rules, "--queue", "15", "--state-file", state);
            Assert.True(ctfw.WaitForLine(OutputStream.StdErr, "ctfw: running", TimeSpan.FromSeconds(30)), ctfw.StdErr);
            Assert.Contains($"ctfw: state file {state} not restored (ForeignFormat", ctfw.StdErr);
            Assert.Contains("moved aside to", ctfw.StdErr);
            string[] aside = Directory.GetFiles(Path.GetTempPath(), Path.GetFileName(state) + ".bad-*");
            Assert.Single(aside);
            Assert.Equal("not a state file at all", File.ReadAllText(aside[0]));
            ctfw.Signal(ChildProcess.SigTerm);
            Assert.Equal(0, ctfw.WaitForExit(TimeSpan.FromSeconds(30)));
            Assert.Contains($"ctfw: state written to {state}: 0 entries", ctfw.StdErr);
            foreach (string f in aside)
                File.Delete(f);
        }
        finally
        {
            File.Delete(rules);
            File.Delete(state);
        }
    }

    private static async Task Echo(Socket listener, CancellationToken token)
    {
        try
        {
            using Socket peer = await listener.AcceptAsync(token);
            byte[] buffer = new byte[256];
            while (true)
            {
                int n = await peer.ReceiveAsync(buffer, SocketFlags.None, token);
                if (n == 0)
                    return;
                await peer.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }
}
