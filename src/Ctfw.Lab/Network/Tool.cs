using Ctfw.Lab.Traffic;

namespace Ctfw.Lab.Network;

/// <summary>Runs the lab's command-line tools (ip, iptables, sysctl, conntrack, ethtool).</summary>
public static class Tool
{
    /// <summary>Everything the privileged tier shells out to.</summary>
    public static readonly IReadOnlyList<string> Required =
        ["ip", "nsenter", "iptables", "ip6tables", "sysctl", "ethtool", "conntrack", "tcpdump", "timeout"];

    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);
    private static readonly ChildProcessOptions s_wholeOutput = new() { MaxLines = int.MaxValue };

    /// <summary>Why the privileged tier cannot run here, or null when it can.</summary>
    public static string? WhyUnavailable()
    {
        if (!OperatingSystem.IsLinux())
            return "the kernel tier needs Linux";
        if (Interop.Geteuid() != 0)
            return "the kernel tier needs root (network namespaces, iptables, raw sockets); run the tests as root";
        List<string> missing = [];
        foreach (string tool in Required)
        {
            if (Find(tool) is null)
                missing.Add(tool);
        }
        return missing.Count == 0
            ? null
            : $"missing tools on PATH: {string.Join(", ", missing)} (need iproute2, util-linux, iptables, procps, ethtool, conntrack-tools, tcpdump, coreutils)";
    }

    public static string? Find(string name)
    {
        string path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin";
        foreach (string dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(["/usr/sbin", "/sbin"]))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    /// <summary>Runs a command; throws with its stderr when it exits non-zero. Returns stdout.</summary>
    public static string Run(params string[] args) => Run(checkExit: true, args).StdOut;

    /// <summary>
    /// Runs a command inside a named network namespace. nsenter joins only the network namespace;
    /// <c>ip netns exec</c> would also build a mount namespace and remount /sys for every call, which
    /// costs more and is not needed by any tool used here.
    /// </summary>
    public static string RunIn(string netns, params string[] args) => Run(InNetns(netns, args));

    /// <summary>The argument vector that runs <paramref name="args"/> inside <paramref name="netns"/>.</summary>
    public static string[] InNetns(string netns, params string[] args) => ["nsenter", $"--net=/run/netns/{netns}", "--", .. args];

    public static ToolResult Run(bool checkExit, params string[] args) => Run(checkExit, s_timeout, args);

    /// <summary>Runs a command with its own time limit (e.g. apt-get, which may download for minutes); the whole of its output is kept.</summary>
    public static ToolResult Run(bool checkExit, TimeSpan timeout, params string[] args)
    {
        using ChildProcess process = ChildProcess.Start(args, s_wholeOutput);
        if (process.WaitForExit(timeout) is not int exit)
            throw new TimeoutException($"`{string.Join(' ', args)}` did not finish within {timeout.TotalSeconds} s"); // Dispose kills it
        var result = new ToolResult(exit, process.StdOut, process.StdErr);
        if (checkExit && result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"`{string.Join(' ', args)}` exited with {result.ExitCode}: {result.StdErr.Trim()} {result.StdOut.Trim()}");
        }
        return result;
    }
}

/// <summary>A finished command: exit status and both streams.</summary>
public readonly record struct ToolResult(int ExitCode, string StdOut, string StdErr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}";
}
