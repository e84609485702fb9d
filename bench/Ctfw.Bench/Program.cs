using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Ctfw.Bench;
using Ctfw.Bench.Conntrack;
using Ctfw.Bench.Firewall;

// Own modes first; everything else is BenchmarkDotNet's command line (--filter, --list, --disasm, ...).
if (args.Contains("--quick"))
    return QuickRun.Run(Console.Out);
if (args.Contains("--expiry-pause"))
{
    ExpiryPause.Result pause = ExpiryPause.Measure(ExpiryPause.DaemonBudget, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(30));
    ExpiryPause.Print(pause, Console.Out);
    return pause.Bad == 0 && pause.Allocated == 0 ? 0 : 1;
}
if (Array.IndexOf(args, "--state-file") is int sf and >= 0)
{
    string dir = sf + 1 < args.Length && !args[sf + 1].StartsWith("--", StringComparison.Ordinal) ? args[sf + 1]
        : Environment.GetEnvironmentVariable("CTFW_ARTIFACTS") is { Length: > 0 } art ? art : Path.GetTempPath();
    Directory.CreateDirectory(dir);
    StatePersistence.Result state = StatePersistence.Measure(dir, TimeSpan.FromSeconds(2));
    StatePersistence.Print(state, Console.Out);
    return state.Bad == 0 && state.Met ? 0 : 1;
}
if (Array.IndexOf(args, "--make-state") is int ms and >= 0 && ms + 1 < args.Length)
{
    int flows = ms + 2 < args.Length && int.TryParse(args[ms + 2], out int n) ? n : StatePersistence.Flows;
    long entries = StatePersistence.MakeFile(args[ms + 1], flows);
    Console.WriteLine($"{entries} entries written to {args[ms + 1]}");
    return 0;
}
if (args.Contains("--decision-ab"))
    return DecisionAb.Run(Console.Out, rounds: 100);
if (args.Contains("--memory"))
{
    // --acct: with nf_conntrack_acct=1 (the accounting array allocated and written); off by default, as the kernel.
    MemoryFootprint.Print(MemoryFootprint.Measure(1_000_000, acct: args.Contains("--acct")), Console.Out);
    return 0;
}

// Keep BenchmarkDotNet's output out of the source tree: under the per-developer artifacts root
// when there is one (CTFW_ARTIFACTS), else in the temp directory. --artifacts overrides both.
string root = Environment.GetEnvironmentVariable("CTFW_ARTIFACTS") is { Length: > 0 } a ? a : Path.GetTempPath();
IConfig config = DefaultConfig.Instance
    .WithArtifactsPath(Path.Combine(root, "BenchmarkDotNet.Artifacts"))
    .AddColumn(StatisticColumn.Median, StatisticColumn.Min);

// --cpu-clock: measure the benchmark thread's CPU time instead of wall time (see ThreadCpuClock).
if (args.Contains("--cpu-clock"))
{
    args = [.. args.Where(x => x != "--cpu-clock")];
    config = config.AddJob(Job.Default.WithClock(ThreadCpuClock.Instance).WithToolchain(InProcessEmitToolchain.Instance).WithId("ThreadCpu"));
}

var summaries = BenchmarkSwitcher.FromAssembly(typeof(QuickRun).Assembly).Run(args, config);
return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
