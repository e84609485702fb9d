using Tmds.Linux;

namespace Ctfw.Linux.Netlink;

/// <summary>
/// The setup steps every netlink socket of ctfw shares (NFQUEUE, ctnetlink): a kernel-assigned port
/// id, buffers sized past the sysctl caps when allowed, a receive timeout. Setup path only; each
/// throws <see cref="ErrnoException"/> naming the call that failed.
/// </summary>
internal static class NetlinkSockets
{
    /// <summary>Binds to a port id the kernel picks (nl_pid 0) and returns it.</summary>
    public static unsafe uint BindAnyPort(SocketHandle socket)
    {
        var address = new Interop.SockAddrNl { Family = (ushort)(int)LibC.AF_NETLINK };
        if (Interop.Bind(socket, &address, (uint)sizeof(Interop.SockAddrNl)) != 0)
            throw ErrnoException.FromLastError("bind(AF_NETLINK)");
        return PortIdOf(socket);
    }

    /// <summary>The port id the socket is bound to (getsockname).</summary>
    public static unsafe uint PortIdOf(SocketHandle socket)
    {
        var address = new Interop.SockAddrNl();
        uint length = (uint)sizeof(Interop.SockAddrNl);
        if (Interop.GetSockName(socket, &address, &length) != 0)
            throw ErrnoException.FromLastError("getsockname(AF_NETLINK)");
        return address.PortId;
    }

    /// <summary>
    /// SO_RCVBUFFORCE (past net.core.rmem_max; needs CAP_NET_ADMIN), else SO_RCVBUF (capped by it).
    /// Returns what the kernel granted, as read back (twice the request, or the cap).
    /// </summary>
    public static unsafe int SetReceiveBuffer(SocketHandle socket, int bytes)
    {
        if (Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_RCVBUFFORCE, &bytes, sizeof(int)) != 0
            && Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_RCVBUF, &bytes, sizeof(int)) != 0)
            throw ErrnoException.FromLastError($"setsockopt(SO_RCVBUF, {bytes})");
        int granted = 0;
        uint length = sizeof(int);
        if (Interop.GetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_RCVBUF, &granted, &length) != 0)
            throw ErrnoException.FromLastError("getsockopt(SO_RCVBUF)");
        return granted;
    }

    /// <summary>SO_SNDBUFFORCE, else SO_SNDBUF.</summary>
    public static unsafe void SetSendBuffer(SocketHandle socket, int bytes)
    {
        if (Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_SNDBUFFORCE, &bytes, sizeof(int)) != 0
            && Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_SNDBUF, &bytes, sizeof(int)) != 0)
            throw ErrnoException.FromLastError($"setsockopt(SO_SNDBUF, {bytes})");
    }

    /// <summary>SO_RCVTIMEO, rounded up to the microsecond (a zero timeout would block forever: callers pass a positive one).</summary>
    public static unsafe void SetReceiveTimeout(SocketHandle socket, TimeSpan timeout)
    {
        long micros = (long)Math.Ceiling(timeout.TotalMicroseconds);
        var value = new Interop.TimeVal { Seconds = micros / 1_000_000, Microseconds = micros % 1_000_000 };
        if (Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_RCVTIMEO, &value, (uint)sizeof(Interop.TimeVal)) != 0)
            throw ErrnoException.FromLastError("setsockopt(SO_RCVTIMEO)");
    }
}
