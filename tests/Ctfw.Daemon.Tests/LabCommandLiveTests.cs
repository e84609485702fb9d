using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// `ctfw lab` as a user runs it (the built ctfw.dll as a process): a passing scenario, the full run
/// with real traffic, flows injected into the kernel's table only (a real table mismatch the re-check must
/// confirm), SIGINT/SIGTERM at two points, and the refusal without root. After every run nothing of
/// it may remain: its ctfwk-PID-* namespaces, processes inside them, the `ctfw run` child, and the
/// child's control socket.
/// </summary>
[Trait("Tier", "Privileged")]
[Collection(PrivilegedCollection.Name)]
public sealed partial class LabCommandLiveTests
{
    private const string NamespacePrefix = "ctfwk-";

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(90);

    private readonly ITestOutputHelper _output;

    public LabCommandLiveTests(ITestOutputHelper output)
    {
        _output = output;
    }

    /// <summary>rules/lab.rules of this checkout (the test build lives outside it when CTFW_ARTIFACTS is set, so ctfw cannot find it by itself).</summary>
    private static string LabRules { get; } = FindLabRules();

    [Fact(Timeout = 180_000)]
    public async Task Lab_OneTcpScenarioNoTraffic_PassesAndLeavesNothingBehind()
    {
        RequireRoot();
        using var lab = CtfwProcess.Start(null, "lab", "--scenario", "tcp_handshake", "--no-traffic", "--rules", LabRules);
        int? exit = await lab.WaitForExitAsync(TimeSpan.FromSeconds(120));
        _output.WriteLine(lab.StdOut);
        _output.WriteLine(lab.StdErr);
        Assert.Equal(0, exit);
        Assert.Contains("playing 1 scenarios (12 crafted packets", lab.StdOut, StringComparison.Ordinal);
        Assert.Contains("PASS: every packet agreed with kernel conntrack", lab.StdOut, StringComparison.Ordinal);
        Row row = Assert.Single(Rows(lab.StdOut));
        Assert.Equal(new Row("tcp_handshake_data_close", 12, 12, 0, ""), row);
        Assert.Contains("ctfw lab: 1 scenarios, 12 crafted + 0 real packets compared", lab.StdOut, StringComparison.Ordinal);
        AssertNothingLeft(lab.Pid, namespaceIds: []);
    }

    [Fact(Timeout = 420_000)]
    public async Task Lab_FullRunWithFourSecondsOfTraffic_EveryRowAgreesAndTablesMatch()
    {
        RequireRoot();
        Dictionary<string, int> corpus = ScenarioList();
        Assert.NotEmpty(corpus);

        using var lab = CtfwProcess.Start(null, "lab", "--traffic-seconds", "4", "--rules", LabRules);
        Assert.True(lab.WaitForLine(OutputStream.StdOut, "ctfw lab: playing", s_startTimeout), lab.StdOut + lab.StdErr);
        string[] namespaceIds = LabLeftovers.NamespaceIds(NamespacePrefix, lab.Pid);
        Assert.Equal(3, namespaceIds.Length);
        Assert.NotEmpty(LabLeftovers.ProcessesWithArgument(ChildControlPath(lab.Pid)));

        int? exit = await lab.WaitForExitAsync(TimeSpan.FromSeconds(360));
        string stdout = lab.StdOut;
        _output.WriteLine(stdout);
        _output.WriteLine(lab.StdErr);
        Assert.Equal(0, exit);
        Assert.Matches(@"ctfw lab: \d+ scenarios, \d+ crafted \+ \d+ real packets compared in \d+ s: PASS: every packet agreed with kernel conntrack", stdout);

        List<Row> rows = Rows(stdout);
        Assert.All(rows, r => Assert.True(r.Disagreed == 0 && r.Agreed == r.Packets && r.Note.Length == 0, $"row {r}"));
        // Every scenario of the corpus was played, and every one of its crafted packets was compared.
        Dictionary<string, Row> scenarioRows = rows.Where(r => r.Name != "real traffic").ToDictionary(r => r.Name, StringComparer.Ordinal);
        Assert.Equal(corpus.Keys.Order(StringComparer.Ordinal), scenarioRows.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, int packets) in corpus)
            Assert.True(scenarioRows[name].Packets == packets, $"{name}: {scenarioRows[name].Packets} compared, the corpus has {packets} packets");
        Row traffic = Assert.Single(rows, r => r.Name == "real traffic");
        Assert.True(traffic.Packets > 1000, $"real traffic: only {traffic.Packets} packets compared");

        Match tables = TableLine().Match(stdout);
        Assert.True(tables.Success, "no `conntrack -L vs ctfw conntrack -L` line\n" + stdout);
        Assert.True(int.Parse(tables.Groups["comparisons"].Value, CultureInfo.InvariantCulture) > 0, tables.Value);
        Assert.True(int.Parse(tables.Groups["kernel"].Value, CultureInfo.InvariantCulture) > 0, tables.Value);
        Assert.Equal("0", tables.Groups["mismatches"].Value);
        // Whatever the re-check forgave is listed (the first 10) with the change that showed it was a race.
        Assert.Equal(Math.Min(10, int.Parse(tables.Groups["changed"].Value, CultureInfo.InvariantCulture)), Regex.Count(stdout, @"^  re-checked, not judged \((kernel|ctfw) entry changed between its listings", RegexOptions.Multiline));
        Assert.Contains($"(tables: {tables.Groups["comparisons"].Value} comparisons, ", stdout, StringComparison.Ordinal);

        AssertNothingLeft(lab.Pid, namespaceIds);
    }

    [Fact(Timeout = 300_000)]
    public async Task Lab_FlowsInjectedIntoTheKernelTableOnly_AreMismatchesAfterTheRecheckAndTheLabFails()
    {
        RequireRoot();
        using var lab = CtfwProcess.Start(null, "lab", "--no-scenarios", "--traffic-seconds", "12", "--table-checks", "3", "--rules", LabRules);
        Assert.True(lab.WaitForLine(OutputStream.StdOut, "ctfw lab: real traffic for", s_startTimeout), lab.StdOut + lab.StdErr);
        string[] namespaceIds = LabLeftovers.NamespaceIds(NamespacePrefix, lab.Pid);
        string gateway = Assert.Single(LabLeftovers.Namespaces(NamespacePrefix, lab.Pid), n => n.EndsWith("-g", StringComparison.Ordinal));
        // Both tables were flushed just before that line, and the first comparison comes 3 s into the
        // traffic. Two idle flows only the kernel has: the tables really differ, and keep differing
        // through every listing, so the re-check must confirm them rather than forgive them.
        Tool.RunIn(gateway, "conntrack", "-I", "-p", "udp", "-s", "10.99.1.2", "-d", "10.99.2.2", "--sport", "9", "--dport", "9", "-t", "600");
        Tool.RunIn(gateway, "conntrack", "-I", "-p", "tcp", "-s", "10.99.1.2", "-d", "10.99.2.2", "--sport", "9", "--dport", "9",
            "--state", "ESTABLISHED", "-u", "ASSURED,SEEN_REPLY", "-t", "600");

        int? exit = await lab.WaitForExitAsync(TimeSpan.FromSeconds(180));
        string stdout = lab.StdOut;
        _output.WriteLine(stdout);
        _output.WriteLine(lab.StdErr);
        Assert.Equal(1, exit);
        // Every packet still agreed: the failure is the tables alone.
        Match summary = Regex.Match(stdout, @"FAIL: 0 packets disagreed, 0 rows failed, (?<mismatches>\d+) table mismatches");
        Assert.True(summary.Success, stdout);
        Match tables = TableLine().Match(stdout);
        Assert.True(tables.Success, stdout);
        int comparisons = int.Parse(tables.Groups["comparisons"].Value, CultureInfo.InvariantCulture);
        int mismatches = int.Parse(tables.Groups["mismatches"].Value, CultureInfo.InvariantCulture);
        // Both injected flows in every comparison after the injection (a slow injection may miss the
        // first), and nothing else: the lines list only them, each confirmed by the re-check.
        Assert.True(mismatches >= 2, tables.Value);
        Assert.InRange(mismatches, 2 * (comparisons - 1), 2 * comparisons);
        Assert.Equal(summary.Groups["mismatches"].Value, tables.Groups["mismatches"].Value);
        string[] lines = [.. stdout.Split('\n').Where(l => l.StartsWith("  mismatch: ", StringComparison.Ordinal))];
        Assert.Equal(mismatches, lines.Length);
        Assert.All(lines, l => Assert.Matches(@"^  mismatch: only kernel lists (udp +17|tcp +6) \d+ (ESTABLISHED )?src=10\.99\.1\.2 dst=10\.99\.2\.2 sport=9 dport=9 ", l));
        Assert.Contains(lines, l => l.Contains("udp", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("tcp", StringComparison.Ordinal));
        Assert.Equal(mismatches, Regex.Count(stdout, @"^    \(the same when listed again; neither entry changed since\)", RegexOptions.Multiline));
        AssertNothingLeft(lab.Pid, namespaceIds);
    }

    [Theory(Timeout = 240_000)]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task Lab_SignalWhilePlayingScenarios_ExitsNonZeroWithin30sAndLeavesNothingBehind(string signal)
    {
        RequireRoot();
        using var lab = CtfwProcess.Start(null, "lab", "--rules", LabRules);
        Assert.True(lab.WaitForLine(OutputStream.StdOut, "ctfw lab: playing", s_startTimeout), lab.StdOut + lab.StdErr);
        await Task.Delay(1000); // well into the corpus
        await Interrupt(lab, signal, namespaceIds => Assert.Equal(3, namespaceIds.Length));
    }

    [Fact(Timeout = 240_000)]
    public async Task Lab_SigintDuringRealTraffic_ExitsNonZeroWithin30sAndEndsEveryTrafficProcess()
    {
        RequireRoot();
        using var lab = CtfwProcess.Start(null, "lab", "--no-scenarios", "--traffic-seconds", "60", "--rules", LabRules);
        Assert.True(lab.WaitForLine(OutputStream.StdOut, "ctfw lab: real traffic for", s_startTimeout), lab.StdOut + lab.StdErr);
        await Task.Delay(3000); // servers and clients are up
        await Interrupt(lab, "INT", namespaceIds =>
        {
            // The leftover check below means something only if the traffic programs were there to end.
            List<string> inside = LabLeftovers.ProcessesIn(namespaceIds);
            _output.WriteLine("processes in the lab's namespaces before SIGINT:\n  " + string.Join("\n  ", inside));
            Assert.Contains(inside, p => p.Contains("nginx", StringComparison.Ordinal));
            Assert.Contains(inside, p => p.Contains("iperf3", StringComparison.Ordinal));
        });
    }

    [NonRootReadableFact(Timeout = 60_000)]
    public async Task Lab_NotRoot_RefusesWithNeedsRootAndExit1()
    {
        string dotnet = DotnetPath();
        string[] argv = Environment.IsPrivilegedProcess
            ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", dotnet, CtfwProcess.Dll, "lab"]
            : [dotnet, CtfwProcess.Dll, "lab"];
        using var lab = CtfwProcess.StartCommand(argv);
        int? exit = await lab.WaitForExitAsync(TimeSpan.FromSeconds(45));
        _output.WriteLine($"{string.Join(' ', argv)}: exit {exit}\n{lab.StdOut}{lab.StdErr}");
        Assert.Equal(1, exit);
        Assert.Contains("needs root", lab.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("building client / gateway / server namespaces", lab.StdOut, StringComparison.Ordinal);
        Assert.Empty(LabLeftovers.Namespaces(NamespacePrefix, lab.Pid));
    }

    /// <summary>Records what the running lab made, sends <paramref name="signal"/>, and checks the exit and that all of it is gone.</summary>
    private async Task Interrupt(ChildProcess lab, string signal, Action<string[]> beforeSignal)
    {
        string[] namespaceIds = LabLeftovers.NamespaceIds(NamespacePrefix, lab.Pid);
        List<string> child = LabLeftovers.ProcessesWithArgument(ChildControlPath(lab.Pid));
        Assert.True(child.Count > 0, "no `ctfw run` child with the lab's control socket is running");
        Assert.True(File.Exists(ChildControlPath(lab.Pid)), $"no control socket {ChildControlPath(lab.Pid)}");
        beforeSignal(namespaceIds);

        var clock = Stopwatch.StartNew();
        Tool.Run("kill", "-" + signal, lab.Pid.ToString(CultureInfo.InvariantCulture));
        int? exit = await lab.WaitForExitAsync(TimeSpan.FromSeconds(30));
        _output.WriteLine($"exit {exit?.ToString(CultureInfo.InvariantCulture) ?? "none"} after {clock.Elapsed.TotalSeconds:F1} s");
        _output.WriteLine(lab.StdOut);
        _output.WriteLine(lab.StdErr);
        Assert.True(exit is not null, $"ctfw lab still running 30 s after SIG{signal}\n{lab.StdOut}\n{lab.StdErr}");
        Assert.NotEqual(0, exit);
        Assert.Contains("ctfw lab: interrupted", lab.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("PASS", lab.StdOut, StringComparison.Ordinal);
        AssertNothingLeft(lab.Pid, namespaceIds);
    }

    /// <summary>No namespace named for the lab, no process in the namespaces it had, no `ctfw run` child, no control socket.</summary>
    private static void AssertNothingLeft(int labPid, string[] namespaceIds)
    {
        Assert.Empty(LabLeftovers.Namespaces(NamespacePrefix, labPid));
        Assert.Empty(LabLeftovers.ProcessesIn(namespaceIds));
        Assert.Empty(LabLeftovers.ProcessesWithArgument(ChildControlPath(labPid)));
        Assert.Empty(LabLeftovers.ProcessesWithArgument($"{NamespacePrefix}{labPid}-"));
        Assert.False(File.Exists(ChildControlPath(labPid)), $"{ChildControlPath(labPid)} is still there");
    }

    /// <summary>The control socket the lab gives its `ctfw run` (LabDaemon: ctfw-lab-PID.sock in the run directory).</summary>
    private static string ChildControlPath(int labPid) =>
        Path.Combine(Environment.GetEnvironmentVariable("CTFW_RUN_DIR") is { Length: > 0 } dir ? dir : "/run/ctfw",
            string.Create(CultureInfo.InvariantCulture, $"ctfw-lab-{labPid}.sock"));

    /// <summary>The scenario corpus from `ctfw lab --list`: name → crafted packets.</summary>
    private static Dictionary<string, int> ScenarioList()
    {
        ToolResult list = CtfwProcess.Run(TimeSpan.FromSeconds(30), "lab", "--list");
        Assert.True(list.ExitCode == 0, list.ToString());
        var corpus = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string line in list.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Match m = ListLine().Match(line);
            Assert.True(m.Success, $"not a `lab --list` line: '{line}'");
            corpus.Add(m.Groups["name"].Value, int.Parse(m.Groups["packets"].Value, CultureInfo.InvariantCulture));
        }
        return corpus;
    }

    /// <summary>The rows of the lab's table: between the dashed rule under the header and the next empty line.</summary>
    private static List<Row> Rows(string stdout)
    {
        List<Row> rows = [];
        string[] lines = stdout.Split('\n');
        int start = Array.FindIndex(lines, l => l.StartsWith("---", StringComparison.Ordinal));
        Assert.True(start > 0 && lines[start - 1].StartsWith("scenario ", StringComparison.Ordinal), "no table in\n" + stdout);
        for (int i = start + 1; i < lines.Length && lines[i].Trim().Length > 0; i++)
        {
            Match m = RowLine().Match(lines[i].TrimEnd());
            Assert.True(m.Success, $"not a table row: '{lines[i]}'");
            rows.Add(new Row(m.Groups["name"].Value, long.Parse(m.Groups["packets"].Value, CultureInfo.InvariantCulture),
                long.Parse(m.Groups["agreed"].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups["disagreed"].Value, CultureInfo.InvariantCulture),
                m.Groups["note"].Value.Trim()));
        }
        Assert.NotEmpty(rows);
        return rows;
    }

    private static void RequireRoot()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
            throw new InvalidOperationException("privileged tests need root on Linux (ctfw lab creates network namespaces, iptables rules and an NFQUEUE consumer)");
    }

    internal static string DotnetPath()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet")
            return self;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, "dotnet");
            if (File.Exists(candidate))
                return candidate;
        }
        return "dotnet";
    }

    private static string FindLabRules([CallerFilePath] string sourceFile = "")
    {
        for (DirectoryInfo? dir = new FileInfo(sourceFile).Directory; dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "rules", "lab.rules");
            if (File.Exists(candidate))
                return candidate;
        }
        throw new InvalidOperationException($"no rules/lab.rules above {sourceFile}");
    }

    [GeneratedRegex(@"^(?<name>\S(?:.*?\S)?)\s{2,}(?<packets>\d+)\s+(?<agreed>\d+)\s+(?<disagreed>\d+)(?<note>\s+<--.*)?$")]
    private static partial Regex RowLine();

    [GeneratedRegex(@"^(?<name>\S+)\s+(?<packets>\d+) packets\b")]
    private static partial Regex ListLine();

    [GeneratedRegex(@"conntrack -L vs ctfw conntrack -L during the traffic: (?<comparisons>\d+) comparisons, (?<kernel>\d+) kernel flows and (?<ctfw>\d+) ctfw flows checked, (?<mismatches>\d+) mismatches, (?<rechecked>\d+) re-checked, (?<changed>\d+) of them not judged \(changed between listings\)")]
    private static partial Regex TableLine();

    private sealed record Row(string Name, long Packets, long Agreed, long Disagreed, string Note);
}

/// <summary>
/// A fact for running the built ctfw as the unprivileged user 65534 (via setpriv when the tests run
/// as root). Skipped, with the reason, when setpriv is missing or that user cannot read the build
/// output: the test must not copy or re-permission anything to make it readable.
/// </summary>
internal sealed class NonRootReadableFactAttribute : FactAttribute
{
    public NonRootReadableFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
            return; // already unprivileged: the test runs ctfw directly
        string dir = Path.GetDirectoryName(CtfwProcess.Dll)!;
        string dotnet = LabCommandLiveTests.DotnetPath();
        List<string> test = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "test", "-x", dir, "-a", "-x", dotnet];
        foreach (string file in Directory.EnumerateFiles(dir, "ctfw*").Concat(Directory.EnumerateFiles(dir, "Ctfw.*.dll")).Concat(Directory.EnumerateFiles(dir, "*.so")))
            test.AddRange(["-a", "-r", file]);
        try
        {
            var psi = new ProcessStartInfo(test[0]) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (string a in test.Skip(1))
                psi.ArgumentList.Add(a);
            using Process p = Process.Start(psi)!;
            if (!p.WaitForExit(10_000))
            {
                p.Kill();
                Skip = "setpriv did not finish within 10 s";
            }
            else if (p.ExitCode != 0)
            {
                Skip = $"user 65534 cannot read the build output in {dir} (or run {dotnet}); not copying it elsewhere";
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Skip = $"cannot run setpriv to drop root: {e.Message}";
        }
    }
}
