namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// Live-kernel tests run one at a time: they share 2 vCPUs with the kernel paths they measure, and the
/// throughput test must not compete with the others.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PrivilegedCollection
{
    public const string Name = "Privileged";
}
