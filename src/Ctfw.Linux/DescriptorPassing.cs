using System.Net.Sockets;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>
/// Hands open descriptors from one process to another over an AF_UNIX stream socket (SCM_RIGHTS):
/// the receiver gets its own descriptors for the same open sockets, so a bound NFQUEUE socket
/// changes owner without the kernel ever seeing it unbound. Setup path only (the upgrade hand-over).
/// </summary>
public static class DescriptorPassing
{
    /// <summary>At most this many descriptors travel in one message (the kernel's SCM_MAX_FD is 253).</summary>
    public const int MaxDescriptors = 64;

    /// <summary>
    /// Sends <paramref name="descriptors"/> with a one-byte payload <paramref name="marker"/>.
    /// Throws <see cref="ErrnoException"/> when sendmsg fails.
    /// </summary>
    public static unsafe void Send(Socket unixSocket, ReadOnlySpan<SafeHandle> descriptors, byte marker)
    {
        ArgumentNullException.ThrowIfNull(unixSocket);
        if (descriptors.Length is 0 or > MaxDescriptors)
            throw new ArgumentOutOfRangeException(nameof(descriptors), descriptors.Length, $"1..{MaxDescriptors} descriptors");
        int dataBytes = descriptors.Length * sizeof(int);
        int controlBytes = (int)(ulong)LibC.CMSG_SPACE(dataBytes);
        byte* control = stackalloc byte[controlBytes];
        new Span<byte>(control, controlBytes).Clear();
        byte payload = marker;
        var iov = new iovec { iov_base = &payload, iov_len = 1 };
        var message = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = (socklen_t)(uint)controlBytes };
        cmsghdr* header = LibC.CMSG_FIRSTHDR(&message);
        header->cmsg_level = LibC.SOL_SOCKET;
        header->cmsg_type = LibC.SCM_RIGHTS;
        // CMSG_LEN by hand (header rounded up, then the data): exactly the descriptors, no padding
        // the kernel would read as one more descriptor.
        header->cmsg_len = (socklen_t)(uint)(((byte*)LibC.CMSG_DATA(header) - (byte*)header) + dataBytes);

        // Every descriptor is held (AddRef) until sendmsg has copied it into the message.
        Span<bool> added = stackalloc bool[descriptors.Length];
        try
        {
            int* fds = (int*)LibC.CMSG_DATA(header);
            for (int i = 0; i < descriptors.Length; i++)
            {
                descriptors[i].DangerousAddRef(ref added[i]);
                fds[i] = (int)descriptors[i].DangerousGetHandle();
            }
            using var socket = new SafeHandleLease(unixSocket.SafeHandle);
            long sent;
            do
            {
                sent = (long)LibC.sendmsg(socket.Fd, &message, LibC.MSG_NOSIGNAL);
            }
            while (sent < 0 && Interop.GetLastErrno() == Errno.EINTR);
            if (sent < 0)
                throw ErrnoException.FromLastError("sendmsg(SCM_RIGHTS)");
        }
        finally
        {
            for (int i = 0; i < descriptors.Length; i++)
            {
                if (added[i])
                    descriptors[i].DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Receives one message of <see cref="Send"/>: the marker byte and up to <paramref name="maxDescriptors"/>
    /// descriptors, each returned as an owned handle (close-on-exec). Blocks until the message comes
    /// or <paramref name="timeout"/> passes (<see cref="ErrnoException"/> with EAGAIN). Descriptors
    /// beyond what fits are closed by the kernel (MSG_CTRUNC), which is reported as an error.
    /// </summary>
    public static unsafe List<SafeHandle> Receive(Socket unixSocket, int maxDescriptors, TimeSpan timeout, out byte marker)
    {
        ArgumentNullException.ThrowIfNull(unixSocket);
        if (maxDescriptors is <= 0 or > MaxDescriptors)
            throw new ArgumentOutOfRangeException(nameof(maxDescriptors), maxDescriptors, $"1..{MaxDescriptors}");
        int controlBytes = (int)(ulong)LibC.CMSG_SPACE(maxDescriptors * sizeof(int));
        byte* control = stackalloc byte[controlBytes];
        new Span<byte>(control, controlBytes).Clear();
        byte payload = 0;
        var iov = new iovec { iov_base = &payload, iov_len = 1 };
        var message = new msghdr { msg_iov = &iov, msg_iovlen = 1, msg_control = control, msg_controllen = (socklen_t)(uint)controlBytes };
        long received;
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        using (var socket = new SafeHandleLease(unixSocket.SafeHandle))
        {
            while (true)
            {
                // Non-blocking receive and poll(2): works whether the runtime left the socket blocking or not.
                received = (long)LibC.recvmsg(socket.Fd, &message, LibC.MSG_CMSG_CLOEXEC | LibC.MSG_DONTWAIT);
                if (received >= 0)
                    break;
                Errno errno = Interop.GetLastErrno();
                if (errno == Errno.EINTR)
                    continue;
                if (errno != Errno.EAGAIN)
                    throw new ErrnoException($"recvmsg(SCM_RIGHTS) failed: {ErrnoException.Describe(errno)}", errno);
                long left = deadline - Environment.TickCount64;
                if (left <= 0)
                    throw new ErrnoException($"no descriptors within {timeout.TotalSeconds:0.#} s", Errno.EAGAIN);
                var poll = new pollfd { fd = socket.Fd, events = LibC.POLLIN };
                _ = LibC.poll(&poll, 1, (int)Math.Min(left, int.MaxValue)); // a failure shows in the next recvmsg
            }
        }
        marker = payload;
        var handles = new List<SafeHandle>();
        for (cmsghdr* header = LibC.CMSG_FIRSTHDR(&message); header != null; header = LibC.CMSG_NXTHDR(&message, header))
        {
            if (header->cmsg_level != LibC.SOL_SOCKET || header->cmsg_type != LibC.SCM_RIGHTS)
                continue;
            int* fds = (int*)LibC.CMSG_DATA(header);
            long dataOffset = (byte*)fds - (byte*)header;
            int count = (int)(((long)(ulong)header->cmsg_len - dataOffset) / sizeof(int));
            for (int i = 0; i < count; i++)
            {
                var handle = new SocketHandle();
                handle.Own(fds[i]);
                handles.Add(handle);
            }
        }
        if (received == 0)
        {
            foreach (SafeHandle h in handles)
                h.Dispose();
            throw new ErrnoException("the peer closed the connection before sending the descriptors", Errno.ECONNRESET);
        }
        if ((message.msg_flags & LibC.MSG_CTRUNC) != 0)
        {
            foreach (SafeHandle h in handles)
                h.Dispose();
            throw new ErrnoException($"more than {maxDescriptors} descriptors were sent; the kernel closed the rest", Errno.EMSGSIZE);
        }
        return handles;
    }
}
