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

    /// <summary>Sends one datagram to the kernel (nl_pid 0), retrying EINTR; the errno otherwise.</summary>
    public static unsafe Errno TrySendToKernel(SocketHandle socket, ReadOnlySpan<byte> datagram)
    {
        var kernel = new Interop.SockAddrNl { Family = (ushort)(int)LibC.AF_NETLINK };
        while (true)
        {
            fixed (byte* p = datagram)
            {
                if (Interop.SendTo(socket, p, (nuint)datagram.Length, 0, &kernel, (uint)sizeof(Interop.SockAddrNl)) >= 0)
                    return Errno.None;
            }
            Errno error = Interop.GetLastErrno();
            if (error != Errno.EINTR)
                return error;
        }
    }

    /// <summary>
    /// One datagram from the kernel into <paramref name="buffer"/> (others' datagrams are skipped). EAGAIN
    /// means the reply timeout passed (blocking) or nothing is queued (non-blocking); EINTR is retried.
    /// </summary>
    public static unsafe Errno ReceiveFromKernel(SocketHandle socket, byte[] buffer, bool blocking, out int length, out bool truncated)
    {
        while (true)
        {
            var source = default(Interop.SockAddrNl);
            uint sourceLength = (uint)sizeof(Interop.SockAddrNl);
            nint n;
            fixed (byte* p = buffer)
                n = Interop.RecvFrom(socket, p, (nuint)buffer.Length, LibC.MSG_TRUNC | (blocking ? 0 : LibC.MSG_DONTWAIT), &source, &sourceLength);
            if (n < 0)
            {
                Errno error = Interop.GetLastErrno();
                if (error == Errno.EINTR)
                    continue;
                length = 0;
                truncated = false;
                return error;
            }
            if (source.PortId != 0)
                continue; // not from the kernel
            truncated = n > buffer.Length;
            length = (int)Math.Min(n, buffer.Length);
            return Errno.None;
        }
    }

    /// <summary>Drops whatever an earlier, abandoned exchange left queued (and a pending ENOBUFS).</summary>
    public static void DiscardPending(SocketHandle socket, byte[] buffer)
    {
        while (ReceiveFromKernel(socket, buffer, blocking: false, out _, out _) is Errno.None or Errno.ENOBUFS)
        {
        }
    }

    /// <summary>Points each receive slot at its <paramref name="slotSize"/>-byte share of <paramref name="pinned"/> (a pinned array: its address is stable for its life).</summary>
    public static unsafe void PointSlots(byte[] pinned, Interop.Shim.RxSlot[] slots, int slotSize)
    {
        byte* start = (byte*)System.Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(pinned, 0);
        for (int i = 0; i < slots.Length; i++)
        {
            slots[i].Buffer = (ulong)(start + (i * slotSize));
            slots[i].Capacity = (uint)slotSize;
        }
    }
}

