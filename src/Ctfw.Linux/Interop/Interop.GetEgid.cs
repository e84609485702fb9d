using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>getegid(2) (Tmds.LibC): the group new files get (outside setgid directories).</summary>
    internal static uint GetEgid() => LibC.getegid();
}
