using System.Runtime.InteropServices;

namespace Ctfw.Linux;

/// <summary>
/// A failed setup step (socket, bind, queue configuration, namespace switch). Thrown only on setup
/// paths; the per-packet path reports <see cref="Linux.Errno"/> values and counters instead.
/// </summary>
public sealed class ErrnoException : Exception
{
    public ErrnoException()
    {
    }

    public ErrnoException(string message)
        : base(message)
    {
    }

    public ErrnoException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public ErrnoException(string message, Errno errno)
        : base(message) => Errno = errno;

    /// <summary>The errno behind the failure, or <see cref="Errno.None"/> when it was not a syscall error.</summary>
    public Errno Errno { get; }

    /// <summary>"call failed: EXXX (text)", for messages.</summary>
    public static string Describe(Errno errno) =>
        errno == Errno.None ? "no error" : $"{errno} ({Marshal.GetPInvokeErrorMessage((int)errno)})";

    internal static ErrnoException FromLastError(string call)
    {
        Errno errno = Interop.GetLastErrno();
        return new ErrnoException($"{call} failed: {Describe(errno)}", errno);
    }
}
