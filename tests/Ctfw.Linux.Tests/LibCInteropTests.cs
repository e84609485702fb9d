using System.Reflection;
using Tmds.Linux;

namespace Ctfw.Linux.Tests;

/// <summary>
/// The setup calls go through Tmds.LibC, which takes bare int descriptors: these prove that the
/// SafeHandle discipline and the typed errno survive that (LayoutTests proves the package's
/// constants against the headers).
/// </summary>
public sealed class LibCInteropTests
{
    [Fact]
    public void ErrnoEnum_MatchesTmdsLibC()
    {
        List<string> failures = [];
        foreach (Errno e in Enum.GetValues<Errno>())
        {
            if (e == Errno.None)
                continue;
            PropertyInfo? p = typeof(LibC).GetProperty(e.ToString(), BindingFlags.Public | BindingFlags.Static);
            if (p is null)
                failures.Add($"{e}: not in Tmds.LibC");
            else if ((int)p.GetValue(null)! != (int)e)
                failures.Add($"{e}: Tmds.LibC says {p.GetValue(null)}, the enum has {(int)e}");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Socket_UnknownFamily_InvalidHandleAndTypedErrno()
    {
        using SocketHandle socket = Interop.Socket(4242, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, 0);
        Errno errno = Interop.GetLastErrno();
        Assert.True(socket.IsInvalid);
        Assert.Equal(Errno.EAFNOSUPPORT, errno);
    }

    [Fact]
    public unsafe void SetSockOpt_UnknownOption_TypedErrno()
    {
        using SocketHandle socket = OpenDatagramSocket();
        int value = 1;
        Assert.Equal(-1, Interop.SetSockOpt(socket, LibC.SOL_SOCKET, 4242, &value, sizeof(int)));
        Assert.Equal(Errno.ENOPROTOOPT, Interop.GetLastErrno());
    }

    [Fact]
    public unsafe void SafeHandleLease_DisposeDuringCall_ClosesOnlyAfterTheCallReturns()
    {
        SocketHandle socket = OpenDatagramSocket();
        using (var lease = new SafeHandleLease(socket))
        {
            socket.Dispose();
            Assert.False(socket.IsClosed); // the lease still holds a reference: the fd is open
            int size = 0;
            uint length = sizeof(int);
            Assert.Equal(0, LibC.getsockopt(lease.Fd, LibC.SOL_SOCKET, LibC.SO_RCVBUF, &size, (socklen_t*)&length));
            Assert.True(size > 0);
        }
        Assert.True(socket.IsClosed);
    }

    [Fact]
    public unsafe void SetSockOpt_DisposedHandle_ThrowsObjectDisposed()
    {
        SocketHandle socket = OpenDatagramSocket();
        socket.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_RCVBUF, null, 0));
    }

    private static SocketHandle OpenDatagramSocket()
    {
        // An unprivileged socket type, so these run in the unit tier.
        SocketHandle socket = Interop.Socket(LibC.AF_INET, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, 0);
        Assert.False(socket.IsInvalid, $"socket: {Interop.GetLastErrno()}");
        return socket;
    }
}
