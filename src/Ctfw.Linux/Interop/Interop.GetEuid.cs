using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>geteuid(2) (Tmds.LibC): the uid file permissions and SO_PEERCRED see for this process.</summary>
    internal static uint GetEuid() => LibC.geteuid();
}
