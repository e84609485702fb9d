using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace Ctfw.Kernel.Tests;

/// <summary>A failed libc call: the errno it left, never a bare int.</summary>
public sealed class ErrnoException(string call, int errno)
    : Exception($"{call} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})")
{
    public string Call { get; } = call;
    public int Errno { get; } = errno;

    internal static void ThrowIfFailed(int result, string call)
    {
        if (result == -1)
            throw new ErrnoException(call, Marshal.GetLastPInvokeError());
    }
}
