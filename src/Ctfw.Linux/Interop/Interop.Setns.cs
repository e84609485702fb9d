using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>setns(2) (Tmds.LibC): moves only the calling thread into the namespace <paramref name="nsFd"/> refers to.</summary>
    internal static int Setns(SafeFileHandle nsFd, int nsType)
    {
        using var fd = new SafeHandleLease(nsFd);
        return LibC.setns(fd.Fd, nsType);
    }
}
