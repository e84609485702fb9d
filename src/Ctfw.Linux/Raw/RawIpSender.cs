using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>
/// Sends complete IP packets (the answers REJECT rules build: TCP resets, ICMP errors) through
/// raw IPPROTO_RAW sockets, one per family, shared by every worker (sendto on one fd from several
/// threads is safe). The packets carry <see cref="Mark"/> so that, when ctfw also queues OUTPUT,
/// its own answers skip the queue instead of being judged as unknown flows.
/// </summary>
public sealed class RawIpSender : IDisposable
{
    /// <summary>skb mark of ctfw's own answers ("CTFW"); the NFQUEUE rule excludes it.</summary>
    public const uint Mark = 0x43544657;

    private const int SockAddrIn6Size = 28;

    private readonly SocketHandle? _v4;
    private readonly SocketHandle? _v6;

    private RawIpSender(SocketHandle? v4, SocketHandle? v6)
    {
        _v4 = v4;
        _v6 = v6;
    }

    /// <summary>Why a family cannot send answers (null when both can).</summary>
    public string? SetupProblem { get; private init; }

    public static RawIpSender Open()
    {
        SocketHandle? v4 = OpenFamily(LibC.AF_INET, out string? error4);
        SocketHandle? v6 = OpenFamily(LibC.AF_INET6, out string? error6);
        return new RawIpSender(v4, v6) { SetupProblem = error4 ?? error6 };
    }

    /// <summary>Sends one IP packet to its destination address. Returns 0 or the errno.</summary>
    public unsafe int Send(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 20)
            return 22; // EINVAL
        Span<byte> address = stackalloc byte[SockAddrIn6Size];
        address.Clear();
        SocketHandle? socket;
        uint addressLength;
        if (packet[0] >> 4 == 4)
        {
            socket = _v4;
            BinaryPrimitives.WriteUInt16LittleEndian(address, (ushort)(int)LibC.AF_INET); // sa_family_t is host order
            packet.Slice(16, 4).CopyTo(address[4..]);
            addressLength = 16;
        }
        else
        {
            if (packet.Length < 40)
                return 22;
            socket = _v6;
            BinaryPrimitives.WriteUInt16LittleEndian(address, (ushort)(int)LibC.AF_INET6);
            // sin6_port stays 0: a raw IPv6 socket rejects any port but its own protocol number.
            packet.Slice(24, 16).CopyTo(address[8..]);
            addressLength = SockAddrIn6Size;
        }
        if (socket is null)
            return 97; // EAFNOSUPPORT: this family could not be opened
        fixed (byte* p = packet)
        fixed (byte* a = address)
        {
            if (Interop.SendToAddress(socket, p, (nuint)packet.Length, 0, a, addressLength) < 0)
                return Marshal.GetLastPInvokeError();
        }
        return 0;
    }

    public void Dispose()
    {
        _v4?.Dispose();
        _v6?.Dispose();
    }

    private static unsafe SocketHandle? OpenFamily(int family, out string? error)
    {
        error = null;
        SocketHandle socket = Interop.Socket(family, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, LibC.IPPROTO_RAW);
        string name = family == (int)LibC.AF_INET ? "AF_INET" : "AF_INET6";
        if (socket.IsInvalid)
        {
            int errno = Marshal.GetLastPInvokeError();
            // EPERM: the one capability raw sockets need is missing (a unit without it in AmbientCapabilities).
            string why = errno == 1 ? "EPERM: needs CAP_NET_RAW" : $"errno {errno}";
            error = $"socket({name}, SOCK_RAW, IPPROTO_RAW) failed ({why}); REJECT answers of that family are not sent";
            socket.Dispose();
            return null;
        }
        uint mark = Mark;
        if (Interop.SetSockOpt(socket, LibC.SOL_SOCKET, LibC.SO_MARK, &mark, sizeof(uint)) != 0)
            error = $"setsockopt({name} raw, SO_MARK) failed: errno {Marshal.GetLastPInvokeError()}";
        return socket;
    }
}
