using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>fstat(2) (Tmds.LibC): the inode an open descriptor refers to.</summary>
    internal static unsafe int Fstat(int fd, stat* status) => LibC.fstat(fd, status);
}
