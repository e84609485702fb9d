namespace Ctfw.TestSupport;

/// <summary>
/// The privileged tier fails, naming the reason, where it cannot run (run-all.sh filters it out for
/// non-root runs), rather than passing without having run.
/// </summary>
public static class Privileges
{
    /// <summary>Throws unless this is root on Linux; <paramref name="what"/> says what needs it.</summary>
    public static void RequireRoot(string what)
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
            throw new InvalidOperationException($"privileged tests need root on Linux ({what})");
    }
}
