using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>lchown(2) (Tmds.LibC): owner and group of the path's own inode; uint.MaxValue leaves one unchanged.</summary>
    internal static unsafe int Lchown(byte* path, uint owner, uint group) => LibC.lchown(path, owner, group);
}
