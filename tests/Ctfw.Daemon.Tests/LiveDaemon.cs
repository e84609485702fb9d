using System.Globalization;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// The set-up most live tests share: `ctfw run --rules FILE --queue N --install FORWARD --control
/// SOCKET EXTRA…` in a lab's gateway namespace (or any namespace), with the rules text written to a file of its own
/// under the temp directory. Constructed, it is running (its "ctfw: running" line seen). Disposed, it
/// is ended the way <see cref="CtfwProcess"/> ends a process a failed test leaves behind (SIGTERM,
/// time to remove its rules, then SIGKILL) and its files are deleted; a test that checks how the
/// daemon stops signals <see cref="Process"/> itself first.
/// </summary>
internal sealed class LiveDaemon : IDisposable
{
    /// <summary>Forwarding dropped except replies and NEW UDP to port 5353 (the echo of <see cref="RunUdpLiveTests.UdpEcho"/>).</summary>
    public const string Udp5353Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -p udp -m udp --dport 5353 -m conntrack --ctstate NEW -j ACCEPT
        COMMIT

        """;

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(30);

    /// <param name="lab">Whose gateway namespace the daemon runs in.</param>
    /// <param name="name">Names the files (ctfw-NAME-PID-GUID.rules and .sock), so a leftover says which test left it.</param>
    /// <param name="rules">The ruleset text, written to <see cref="RulesPath"/>.</param>
    /// <param name="queue">The NFQUEUE number (each test class its own, so a leftover binding cannot collide).</param>
    /// <param name="extra">More `ctfw run` arguments, after the common ones.</param>
    public LiveDaemon(GatewayLab lab, string name, string rules, ushort queue, params string[] extra)
        : this(lab.Gateway, name, rules, queue, extra)
    {
    }

    /// <param name="netns">The network namespace the daemon runs in.</param>
    /// <param name="name">Names the files (ctfw-NAME-PID-GUID.rules and .sock), so a leftover says which test left it.</param>
    /// <param name="rules">The ruleset text, written to <see cref="RulesPath"/>.</param>
    /// <param name="queue">The NFQUEUE number (each test class its own, so a leftover binding cannot collide).</param>
    /// <param name="extra">More `ctfw run` arguments, after the common ones.</param>
    public LiveDaemon(string netns, string name, string rules, ushort queue, params string[] extra)
    {
        string tag = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        RulesPath = Path.Combine(Path.GetTempPath(), $"ctfw-{name}-{tag}.rules");
        ControlPath = Path.Combine(Path.GetTempPath(), $"ctfw-{name}-{tag}.sock");
        File.WriteAllText(RulesPath, rules);
        try
        {
            Process = CtfwProcess.Start(netns, ["run", "--rules", RulesPath, "--queue", queue.ToString(CultureInfo.InvariantCulture),
                "--install", "FORWARD", "--control", ControlPath, .. extra]);
        }
        catch
        {
            DeleteFiles();
            throw;
        }
        if (!Process.WaitForLine(OutputStream.StdErr, "ctfw: running", s_startTimeout))
        {
            string state = Process.HasExited ? $"exited with {Process.ExitCode}" : $"not running after {s_startTimeout.TotalSeconds} s";
            string stderr = Process.StdErr;
            Dispose();
            throw new Xunit.Sdk.XunitException($"ctfw run (queue {queue}) {state}; its stderr:\n{stderr}");
        }
    }

    /// <summary>The daemon; its stderr is the log the tests read.</summary>
    public ChildProcess Process { get; }

    /// <summary>The rules file (a test may rewrite it and reload).</summary>
    public string RulesPath { get; }

    /// <summary>The control socket, for `--control` of the client commands.</summary>
    public string ControlPath { get; }

    public void Dispose()
    {
        Process.Dispose();
        DeleteFiles();
    }

    private void DeleteFiles()
    {
        File.Delete(RulesPath);
        File.Delete(ControlPath); // normally gone already: the daemon removes its socket when it stops
    }
}
