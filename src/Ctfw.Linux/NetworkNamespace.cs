using System.Runtime.ExceptionServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>
/// Runs setup code inside another network namespace. setns(2) moves only the calling thread, and a
/// socket keeps the namespace it was created in for its whole life, so opening an
/// <see cref="Nfqueue.NfqueueSocket"/> here binds a queue of that namespace while the rest of the
/// process stays where it is. The work runs on a fresh thread that is discarded afterwards, so a
/// thread in the wrong namespace can never leak into the thread pool.
/// </summary>
public static class NetworkNamespace
{
    /// <summary>Path of a namespace made by <c>ip netns add name</c>.</summary>
    public static string PathOf(string name) => $"/run/netns/{name}";

    /// <summary>Runs <paramref name="action"/> inside the namespace at <paramref name="path"/> (e.g. <see cref="PathOf"/>).</summary>
    public static T Run<T>(string path, Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                using SafeFileHandle target = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                if (Interop.Setns(target, LibC.CLONE_NEWNET) != 0)
                    throw ErrnoException.FromLastError($"setns({path})");
                result = action();
            }
            catch (Exception e)
            {
                error = e;
            }
        })
        {
            IsBackground = true,
            Name = "netns " + path,
        };
        thread.Start();
        thread.Join();
        if (error is ErrnoException)
            ExceptionDispatchInfo.Throw(error);
        if (error is not null)
            throw new ErrnoException($"running inside {path} failed: {error.Message}", error);
        return result!;
    }
}
