using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>lstat(2) (Tmds.LibC): the path's own inode, a final symbolic link not followed.</summary>
    internal static unsafe int Lstat(byte* path, stat* status) => LibC.lstat(path, status);
}
