using System.Diagnostics;
using System.Text;

namespace Ctfw.Lab.Network;

/// <summary>Runs the lab's command-line tools (ip, iptables, sysctl, conntrack, ethtool).</summary>
public static class Tool
{
    /// <summary>Everything the privileged tier shells out to.</summary>
    public static readonly IReadOnlyList<string> Required =
        ["ip", "nsenter", "iptables", "ip6tables", "sysctl", "ethtool", "conntrack", "tcpdump", "timeout"];

    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

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

    /// <summary>Runs a command with its own time limit (e.g. apt-get, which may download for minutes).</summary>
    public static ToolResult Run(bool checkExit, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(args[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        for (int i = 1; i < args.Length; i++)
            psi.ArgumentList.Add(args[i]);

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {args[0]}");
        process.StandardInput.Close();
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) stdout.Append(e.Data).Append('\n'); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) stderr.Append(e.Data).Append('\n'); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"`{string.Join(' ', args)}` did not finish within {timeout.TotalSeconds} s");
        }
        process.WaitForExit(); // drains the async readers
        var result = new ToolResult(process.ExitCode, stdout.ToString(), stderr.ToString());
        if (checkExit && result.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"`{string.Join(' ', args)}` exited with {result.ExitCode}: {result.StdErr.Trim()} {result.StdOut.Trim()}");
        }
        return result;
    }
}

public readonly record struct ToolResult(int ExitCode, string StdOut, string StdErr);
