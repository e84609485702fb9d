using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;

namespace Ctfw.Bench;

/// <summary>
/// Job mutator for one-shot operations that need a fresh state per iteration: Monitoring strategy
/// (no pilot, no unrolling). A mutator rather than [SimpleJob] so it also applies to the jobs given
/// on the command line (e.g. `--cpu-clock`).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Assembly)]
public sealed class MonitoringAttribute : JobMutatorConfigBaseAttribute
{
    public MonitoringAttribute() : base(Job.Default.WithStrategy(RunStrategy.Monitoring))
    {
    }
}
