using System.Reflection;

namespace Ctfw.Linux.Tests.Support;

internal static class RepoPaths
{
    /// <summary>The repository root, baked in at build time (independent of CTFW_ARTIFACTS).</summary>
    public static string Root { get; } =
        typeof(RepoPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CtfwRepoRoot").Value!;

    public static string NativeShim => Path.Combine(Root, "native-shim");
}
