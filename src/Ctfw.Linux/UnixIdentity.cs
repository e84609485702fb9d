using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;

namespace Ctfw.Linux;

/// <summary>The kind of inode <see cref="UnixIdentity.TryLstat"/> found (the S_IFMT bits).</summary>
public enum UnixFileKind
{
    Other,
    Regular,
    Directory,
    SymbolicLink,
    Socket,
}

/// <summary>What lstat(2) says about a path: its kind, its owner and its permission bits (07777, setuid to sticky).</summary>
public readonly record struct UnixFileStatus(UnixFileKind Kind, uint OwnerId, UnixFileMode Mode);

/// <summary>The process at the other end of a unix socket, as the kernel recorded it at connect or listen (SO_PEERCRED).</summary>
public readonly record struct PeerCredentials(int ProcessId, uint UserId, uint GroupId);

/// <summary>
/// Who owns what, for the checks that decide whether a path or a peer may be trusted (the control
/// socket): this process's effective uid, a path's owner and mode without following a final
/// symbolic link, and the credentials of a unix socket's peer. Setup path only.
/// </summary>
public static class UnixIdentity
{
    // socket(7) / asm-generic/socket.h: identical on x86-64 and arm64. struct ucred is pid, uid, gid
    // (3 × 4 bytes). LayoutTests proves them against the headers.
    internal const int SolSocket = 1;
    internal const int SoPeerCred = 17;
    internal const int UcredLength = 12;
    // S_IFMT and the types sys/stat.h names (the same on every Linux architecture).
    internal const uint SIfMt = 0xF000, SIfReg = 0x8000, SIfDir = 0x4000, SIfLnk = 0xA000, SIfSock = 0xC000;

    /// <summary>The effective uid: whose files this process may write, and what peers see through SO_PEERCRED.</summary>
    public static uint EffectiveUserId => Interop.GetEuid();

    /// <summary>The account deploy/ctfw.service runs the daemon as.</summary>
    public const string ServiceUserName = "ctfw";

    private static readonly Lazy<uint?> s_serviceUserId = new(() =>
    {
        try
        {
            return FindUserId(File.ReadAllText("/etc/passwd"), ServiceUserName);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    });

    /// <summary>
    /// The uid of the local account <see cref="ServiceUserName"/> (from /etc/passwd), or null when
    /// there is none: the dedicated user the service runs as, whose sockets root's `ctfw stats` trusts.
    /// </summary>
    public static uint? ServiceUserId => s_serviceUserId.Value;

    /// <summary>The uid of <paramref name="name"/> in passwd(5) text ("name:x:uid:gid:…"), or null.</summary>
    public static uint? FindUserId(string passwd, string name)
    {
        foreach (string line in passwd.Split('\n'))
        {
            string[] fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == name
                && uint.TryParse(fields[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint uid))
            {
                return uid;
            }
        }
        return null;
    }

    /// <summary>lstat(2) of <paramref name="path"/>; <see cref="Errno.None"/> on success.</summary>
    public static unsafe Errno TryLstat(string path, out UnixFileStatus status)
    {
        ArgumentNullException.ThrowIfNull(path);
        status = default;
        int length = Encoding.UTF8.GetByteCount(path);
        if (path.Contains('\0', StringComparison.Ordinal) || length >= 4096)
            return Errno.ENAMETOOLONG;
        byte* name = stackalloc byte[length + 1];
        Encoding.UTF8.GetBytes(path, new Span<byte>(name, length));
        name[length] = 0;
        stat st;
        if (Interop.Lstat(name, &st) != 0)
            return Interop.GetLastErrno();
        uint mode = (uint)st.st_mode;
        UnixFileKind kind = (mode & SIfMt) switch
        {
            SIfReg => UnixFileKind.Regular,
            SIfDir => UnixFileKind.Directory,
            SIfLnk => UnixFileKind.SymbolicLink,
            SIfSock => UnixFileKind.Socket,
            _ => UnixFileKind.Other,
        };
        status = new UnixFileStatus(kind, st.st_uid, (UnixFileMode)(mode & 0xFFF));
        return Errno.None;
    }

    /// <summary>
    /// SO_PEERCRED of a connected (or accepted) AF_UNIX socket; false for any other socket, or one
    /// with no peer (the kernel then answers pid 0 and the overflow uid rather than failing).
    /// </summary>
    public static bool TryGetPeerCredentials(Socket unixSocket, out PeerCredentials peer)
    {
        ArgumentNullException.ThrowIfNull(unixSocket);
        peer = default;
        if (unixSocket.AddressFamily != AddressFamily.Unix)
            return false;
        Span<byte> ucred = stackalloc byte[UcredLength];
        try
        {
            if (unixSocket.GetRawSocketOption(SolSocket, SoPeerCred, ucred) != UcredLength)
                return false;
        }
        catch (SocketException)
        {
            return false;
        }
        // Native byte order, as the kernel wrote it.
        peer = new PeerCredentials(MemoryMarshal.Read<int>(ucred), MemoryMarshal.Read<uint>(ucred[4..]), MemoryMarshal.Read<uint>(ucred[8..]));
        return peer.ProcessId != 0;
    }
}
