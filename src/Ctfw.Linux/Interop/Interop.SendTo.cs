using Tmds.Linux;

namespace Ctfw.Linux;

internal static partial class Interop
{
    /// <summary>sendto(2) (Tmds.LibC): the setup path's one-off requests. Verdicts go through <see cref="Shim.Send"/>.</summary>
    internal static unsafe nint SendTo(SocketHandle socket, byte* buffer, nuint length, int flags, SockAddrNl* destination, uint destinationLength)
    {
        using var fd = new SafeHandleLease(socket);
        return (nint)(long)LibC.sendto(fd.Fd, buffer, (size_t)(ulong)length, flags, (sockaddr*)destination, destinationLength);
    }

    /// <summary>sendto(2) (Tmds.LibC) with an AF_INET/AF_INET6 address: REJECT answers on a raw IP socket.</summary>
    internal static unsafe nint SendToAddress(SocketHandle socket, byte* buffer, nuint length, int flags, byte* address, uint addressLength)
    {
        using var fd = new SafeHandleLease(socket);
        return (nint)(long)LibC.sendto(fd.Fd, buffer, (size_t)(ulong)length, flags, (sockaddr*)address, addressLength);
    }
}
