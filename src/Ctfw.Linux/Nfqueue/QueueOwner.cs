using System.Globalization;

namespace Ctfw.Linux.Nfqueue;

/// <summary>
/// Finds who holds a queue, for the setup error message: the queue's netlink port id from
/// nfnetlink_queue, the socket inode of that port from /proc/net/netlink, then the process with a
/// descriptor on that inode. All paths go through /proc/thread-self so they describe the network
/// namespace of the calling thread (the one that opened the socket), not the process's first thread.
/// Setup path only: allocates freely, never throws.
/// </summary>
internal static class QueueOwner
{
    internal const string QueueFile = "/proc/thread-self/net/netfilter/nfnetlink_queue";
    private const string NetlinkFile = "/proc/thread-self/net/netlink";

    public static bool TryFindPort(ushort queue, out uint portId)
    {
        portId = 0;
        try
        {
            if (!File.Exists(QueueFile))
                return false;
            byte[] text = File.ReadAllBytes(QueueFile);
            if (!NfqueueKernelCounters.TryFind(text, queue, out NfqueueKernelCounters counters))
                return false;
            portId = counters.PortId;
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>"pid 123 (name)" for the process owning netlink port <paramref name="portId"/>, or null.</summary>
    public static string? DescribeProcess(uint portId)
    {
        try
        {
            string? inode = FindInode(portId);
            if (inode is null)
                return null;
            string target = $"socket:[{inode}]";
            foreach (string dir in Directory.EnumerateDirectories("/proc"))
            {
                string name = Path.GetFileName(dir);
                if (!int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                    continue;
                if (!HasDescriptorOn(dir, target))
                    continue;
                string comm = TryRead(Path.Combine(dir, "comm"))?.Trim() ?? "?";
                return pid == Environment.ProcessId ? $"pid {pid} ({comm}, this process)" : $"pid {pid} ({comm})";
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }

    // /proc/net/netlink: sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    private static string? FindInode(uint portId)
    {
        string? text = TryRead(NetlinkFile);
        if (text is null)
            return null;
        foreach (string line in text.Split('\n'))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length >= 10 && f[1] == "12" && f[2] == portId.ToString(CultureInfo.InvariantCulture))
                return f[9];
        }
        return null;
    }

    private static bool HasDescriptorOn(string processDir, string target)
    {
        try
        {
            foreach (string fd in Directory.EnumerateFileSystemEntries(Path.Combine(processDir, "fd")))
            {
                if (new FileInfo(fd).LinkTarget == target)
                    return true;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return false;
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
