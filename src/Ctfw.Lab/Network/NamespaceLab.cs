using System.Globalization;
using Ctfw.Lab.Traffic;

namespace Ctfw.Lab.Network;

/// <summary>
/// The life of a set of network namespaces named <c>&lt;prefix&gt;&lt;pid&gt;-&lt;n&gt;-&lt;role&gt;</c>
/// (n counts the labs of this process, so names are unique per run and per lab). Leftovers of dead
/// runs are removed first; the derived lab builds inside the namespaces, where everything it makes
/// lives (veths, addresses, routes, sysctls, iptables/nft rules, NFQUEUE bindings), so deleting them
/// undoes it all. <see cref="Dispose"/> deletes them, and so do a failed build and the process's exit.
/// Deleting one first ends every process still inside it (SIGTERM, then SIGKILL), which releases the
/// queues they bound, and flushes its ruleset, so a namespace that something else still pins (an
/// open socket) no longer steers traffic anywhere.
/// </summary>
public abstract class NamespaceLab : IDisposable
{
    private static readonly TimeSpan s_processGrace = TimeSpan.FromSeconds(2);
    private static readonly HashSet<string> s_live = [];
    private static int s_count;

    private readonly EventHandler _onExit;
    private bool _disposed;

    /// <param name="prefix">Names every namespace of this kind of lab; leftovers are found by it.</param>
    /// <param name="roles">One namespace per role, named by it (e.g. c, g, s).</param>
    protected NamespaceLab(string prefix, params string[] roles)
    {
        RemoveLeftovers(prefix);
        Number = Interlocked.Increment(ref s_count);
        string stem = string.Create(CultureInfo.InvariantCulture, $"{prefix}{Environment.ProcessId}-{Number}");
        Namespaces = [.. roles.Select(r => $"{stem}-{r}")];
        lock (s_live)
            s_live.UnionWith(Namespaces);
        _onExit = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    /// <summary>The lab's namespaces, in the order of the roles given.</summary>
    public IReadOnlyList<string> Namespaces { get; }

    /// <summary>This lab's place among the labs of this process, from 1 (derived labs number their subnets by it).</summary>
    protected int Number { get; }

    protected bool IsDisposed => _disposed;

    /// <summary>Runs the derived lab's build; on failure removes what was made and rethrows.</summary>
    protected void BuildOrDispose(Action build)
    {
        try
        {
            build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Releases what the derived lab holds outside the namespaces (sockets), before they are deleted.</summary>
    protected virtual void ReleaseResources()
    {
    }

    /// <summary>
    /// Deletes the namespaces named <c>&lt;prefix&gt;&lt;pid&gt;-…</c> whose pid no longer exists (a crashed
    /// or killed run), and those of this process that no live lab owns (a pid reused since).
    /// </summary>
    public static IReadOnlyList<string> RemoveLeftovers(string prefix)
    {
        List<string> removed = [];
        foreach (string line in Tool.Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = line.Split(' ', 2)[0];
            if (!name.StartsWith(prefix, StringComparison.Ordinal))
                continue;
            string[] parts = name[prefix.Length..].Split('-');
            if (parts.Length < 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                continue;
            if (pid == Environment.ProcessId)
            {
                lock (s_live)
                {
                    if (s_live.Contains(name))
                        continue; // a lab of ours, in use
                }
            }
            else if (Directory.Exists($"/proc/{pid}"))
            {
                continue; // another live lab (a parallel run) owns it
            }
            DeleteNamespace(name);
            removed.Add(name);
        }
        return removed;
    }

    /// <summary>Ends the processes inside the namespace, flushes its ruleset, and deletes its name.</summary>
    private static void DeleteNamespace(string name)
    {
        ToolResult pids = Tool.Run(checkExit: false, "ip", "netns", "pids", name);
        List<ProcessTree.Entry> inside = [];
        foreach (string p in pids.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(p.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid != Environment.ProcessId
                && ProcessTree.TryRead(pid, out ProcessTree.Entry entry))
            {
                inside.Add(entry);
                _ = Interop.Kill(pid, Interop.SigTerm);
            }
        }
        // SIGKILL for what ignores SIGTERM; each is identified by its start time, so a recycled pid is spared.
        ProcessTree.EnsureGone(inside, s_processGrace);
        // iptables here is iptables-nft, so this removes iptables and nft rules alike (and with them
        // every NFQUEUE target); a no-op when the namespace is about to vanish anyway.
        if (File.Exists($"/run/netns/{name}"))
            Tool.Run(checkExit: false, Tool.InNetns(name, "nft", "flush", "ruleset"));
        Tool.Run(checkExit: false, "ip", "netns", "del", name);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        ReleaseResources();
        foreach (string ns in Namespaces)
            DeleteNamespace(ns);
        lock (s_live)
            s_live.ExceptWith(Namespaces);
        GC.SuppressFinalize(this);
    }
}
