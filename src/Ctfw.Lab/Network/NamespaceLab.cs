using System.Globalization;

namespace Ctfw.Lab.Network;

/// <summary>
/// The life of a client / gateway / server trio of network namespaces named
/// <c>&lt;prefix&gt;&lt;pid&gt;-{c,g,s}</c>: leftovers of dead runs are removed first, the derived lab
/// builds inside the namespaces, and deleting them undoes everything (veths, addresses, rules,
/// sysctls live inside). <see cref="Dispose"/> deletes them, and so do a failed build and the
/// process's exit.
/// </summary>
public abstract class NamespaceLab : IDisposable
{
    private readonly EventHandler _onExit;
    private bool _disposed;

    public string Client { get; }
    public string Gateway { get; }
    public string Server { get; }

    protected NamespaceLab(string prefix)
    {
        RemoveLeftovers(prefix);
        string stem = string.Create(CultureInfo.InvariantCulture, $"{prefix}{Environment.ProcessId}");
        Client = stem + "-c";
        Gateway = stem + "-g";
        Server = stem + "-s";
        _onExit = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

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

    /// <summary>Deletes namespaces named <c>&lt;prefix&gt;&lt;pid&gt;-&lt;x&gt;</c> whose pid no longer exists (a crashed or killed run).</summary>
    public static IReadOnlyList<string> RemoveLeftovers(string prefix)
    {
        List<string> removed = [];
        foreach (string line in Tool.Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = line.Split(' ', 2)[0];
            if (!name.StartsWith(prefix, StringComparison.Ordinal))
                continue;
            string[] parts = name[prefix.Length..].Split('-');
            if (parts.Length != 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                continue;
            if (pid != Environment.ProcessId && Directory.Exists($"/proc/{pid}"))
                continue; // another live lab (a parallel run) owns it
            DeleteNamespace(name);
            removed.Add(name);
        }
        return removed;
    }

    /// <summary>Ends the processes still running inside one of our namespaces (a crashed run's tcpdump), then deletes it.</summary>
    private static void DeleteNamespace(string name)
    {
        ToolResult pids = Tool.Run(checkExit: false, "ip", "netns", "pids", name);
        foreach (string p in pids.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(p.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid != Environment.ProcessId)
                _ = Interop.Kill(pid, Interop.SigTerm);
        }
        Tool.Run(checkExit: false, "ip", "netns", "del", name);
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        ReleaseResources();
        foreach (string ns in (string[])[Client, Gateway, Server])
            DeleteNamespace(ns);
        GC.SuppressFinalize(this);
    }
}
