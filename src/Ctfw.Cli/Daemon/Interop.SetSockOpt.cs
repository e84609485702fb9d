using System.Runtime.InteropServices;

namespace Ctfw.Cli.Daemon;

internal static partial class Interop
{
    internal const int SolSocket = 1;

    /// <summary>SO_MARK (needs CAP_NET_ADMIN): the skb mark of every packet sent on the socket.</summary>
    internal const int SoMark = 36;

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    internal static unsafe partial int SetSockOpt(RawSocketHandle socket, int level, int name, void* value, uint length);
}
