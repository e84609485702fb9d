using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;

namespace Ctfw.Kernel.Tests.Lab;

/// <summary>Runs code with the calling context inside another network namespace.</summary>
public static class Netns
{
    /// <summary>
    /// Runs <paramref name="action"/> on a fresh thread that has joined the named namespace
    /// (<c>/run/netns/&lt;name&gt;</c>, as made by <c>ip netns add</c>). setns(2) moves only the calling
    /// thread, so the rest of the process never changes namespace; the thread is discarded afterwards,
    /// so even a failed switch back cannot leak a thread in the wrong namespace into the pool.
    /// Sockets created inside stay in that namespace for their whole life.
    /// </summary>
    public static T Run<T>(string name, Func<T> action)
    {
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using SafeFileHandle home = File.OpenHandle("/proc/thread-self/ns/net", FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                using SafeFileHandle target = File.OpenHandle($"/run/netns/{name}", FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                ErrnoException.ThrowIfFailed(Interop.Setns(target, Interop.CloneNewNet), $"setns({name})");
                try
                {
                    result = action();
                }
                finally
                {
                    // Best effort: the thread ends right after, so a failure here cannot affect anything else.
                    _ = Interop.Setns(home, Interop.CloneNewNet);
                }
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        {
            IsBackground = true,
            Name = $"netns {name}",
        };
        thread.Start();
        thread.Join();
        if (error is not null)
            throw new InvalidOperationException($"running inside netns {name} failed: {error.Message}", error);
        return result!;
    }

    /// <summary>
    /// A raw IP socket (IPPROTO_RAW: the caller supplies the whole IP header; for IPv6 this implies
    /// IPV6_HDRINCL since Linux 4.5) opened inside the named namespace.
    /// </summary>
    public static Socket OpenRawSocket(string name, bool v6) => Run(name, () =>
        new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Raw, ProtocolType.Raw));
}
