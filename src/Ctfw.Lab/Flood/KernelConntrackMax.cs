using System.Globalization;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Flood;

/// <summary>
/// The kernel's <c>nf_conntrack_max</c> set for one run and put back afterwards. It is global (only
/// the initial network namespace may write it, and every namespace's table counts against it), so
/// the old value is also saved in <see cref="SavedPath"/> before it is changed: a run killed before
/// it could restore leaves that file behind, and the next <see cref="Override"/> restores from it
/// first.
/// </summary>
public sealed class KernelConntrackMax : IDisposable
{
    public const string SysctlPath = "/proc/sys/net/netfilter/nf_conntrack_max";
    public const string SavedPath = "/run/ctfw-hostile-nf_conntrack_max";

    private readonly long _old;
    private bool _disposed;

    private KernelConntrackMax(long old)
    {
        _old = old;
    }

    /// <summary>The value in force before this override.</summary>
    public long Previous => _old;

    /// <summary>Sets the kernel's table size to <paramref name="max"/> until disposed (nf_conntrack is loaded first when needed).</summary>
    public static KernelConntrackMax Override(long max)
    {
        RestoreLeftover();
        if (!File.Exists(SysctlPath))
            Tool.Run(checkExit: false, "modprobe", "nf_conntrack");
        long old = Read();
        File.WriteAllText(SavedPath, old.ToString(CultureInfo.InvariantCulture) + "\n");
        var result = new KernelConntrackMax(old);
        try
        {
            Write(max);
        }
        catch
        {
            result.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Puts back a value a killed run saved and did not restore; true when there was one.</summary>
    public static bool RestoreLeftover()
    {
        if (!File.Exists(SavedPath))
            return false;
        if (long.TryParse(File.ReadAllText(SavedPath).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long saved) && saved > 0)
            Write(saved);
        File.Delete(SavedPath);
        return true;
    }

    public static long Read() => long.Parse(File.ReadAllText(SysctlPath).Trim(), NumberStyles.None, CultureInfo.InvariantCulture);

    private static void Write(long value) => File.WriteAllText(SysctlPath, value.ToString(CultureInfo.InvariantCulture) + "\n");

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        Write(_old);
        File.Delete(SavedPath);
    }
}
