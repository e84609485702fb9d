using Ctfw.Lab.Network;
using Ctfw.Lab.Traffic;

namespace Ctfw.TestSupport;

/// <summary>
/// The built ctfw (and other commands a test watches) as <see cref="ChildProcess"/>es. A process
/// still running when disposed (a test failed midway) gets SIGTERM and time to clean up after itself
/// (`ctfw run` removes its rules, `ctfw lab` its namespaces), then SIGKILL for its whole tree.
/// </summary>
public static class CtfwProcess
{
    private static readonly ChildProcessOptions s_watched = new() { DisposeGrace = TimeSpan.FromSeconds(30) };

    /// <summary>ctfw.dll next to the test assembly (test projects reference the Cli project, so the build copies it).</summary>
    public static string Dll { get; } = Path.Combine(AppContext.BaseDirectory, "ctfw.dll");

    /// <summary>
    /// `dotnet ctfw.dll ARGS`, inside the named network namespace when <paramref name="netns"/> is
    /// given (`ip netns exec` execs it, so the pid is ctfw's own).
    /// </summary>
    public static ChildProcess Start(string? netns, params string[] args) =>
        StartCommand(netns is null ? ["dotnet", Dll, .. args] : ["ip", "netns", "exec", netns, "dotnet", Dll, .. args]);

    /// <summary>Any command, watched and ended like ctfw.</summary>
    public static ChildProcess StartCommand(params string[] argv) => ChildProcess.Start(argv, s_watched);

    /// <summary>Runs `dotnet ctfw.dll ARGS` to completion whatever its exit status; after <paramref name="timeout"/> it is killed and this throws.</summary>
    public static ToolResult Run(TimeSpan timeout, params string[] args) => Tool.Run(checkExit: false, timeout, ["dotnet", Dll, .. args]);
}
