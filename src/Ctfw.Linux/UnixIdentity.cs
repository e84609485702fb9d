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
public readonly record struct UnixFileStatus(UnixFileKind Kind, uint OwnerId, UnixFileMode Mode)
{
    /// <summary>The inode's group (st_gid).</summary>
    public uint GroupId { get; init; }
}

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
    // SO_PEERGROUPS (Linux 4.13): the peer's supplementary groups as the kernel recorded them at
    // connect, an array of gid_t; ERANGE with the needed length when the buffer is short.
    internal const int SoPeerGroups = 59;
    /// <summary>NGROUPS_MAX (linux/limits.h): no process has more supplementary groups.</summary>
    internal const int MaxGroups = 65536;
    // S_IFMT and the types sys/stat.h names (the same on every Linux architecture).
    internal const uint SIfMt = 0xF000, SIfReg = 0x8000, SIfDir = 0x4000, SIfLnk = 0xA000, SIfSock = 0xC000;

    /// <summary>The effective uid: whose files this process may write, and what peers see through SO_PEERCRED.</summary>
    public static uint EffectiveUserId => Interop.GetEuid();

    /// <summary>The effective gid: the group of files this process creates (outside setgid directories).</summary>
    public static uint EffectiveGroupId => Interop.GetEgid();

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

    /// <summary>The name of <paramref name="uid"/> in passwd(5) text, or null.</summary>
    public static string? FindUserName(string passwd, uint uid)
    {
        foreach (string line in passwd.Split('\n'))
        {
            string[] fields = line.Split(':');
            if (fields.Length >= 3 && fields[0].Length > 0
                && uint.TryParse(fields[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint id) && id == uid)
            {
                return fields[0];
            }
        }
        return null;
    }

    /// <summary>The gid of <paramref name="name"/> in group(5) text ("name:x:gid:members"), or null.</summary>
    public static uint? FindGroupId(string group, string name)
    {
        foreach (string line in group.Split('\n'))
        {
            string[] fields = line.Split(':');
            if (fields.Length >= 3 && fields[0] == name
                && uint.TryParse(fields[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint gid))
            {
                return gid;
            }
        }
        return null;
    }

    /// <summary>The name of group <paramref name="gid"/> in group(5) text, or null.</summary>
    public static string? FindGroupName(string group, uint gid) => FindUserName(group, gid); // same layout: name:x:id:…

    /// <summary>The name of group <paramref name="gid"/> from the local /etc/group, or null.</summary>
    public static string? LocalGroupName(uint gid)
    {
        try
        {
            return FindGroupName(File.ReadAllText("/etc/group"), gid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The user name of <paramref name="uid"/> from the local /etc/passwd (not NSS: no LDAP or sssd
    /// look-up on the control thread), or null when it has none or the file cannot be read.
    /// </summary>
    public static string? LocalUserName(uint uid)
    {
        try
        {
            return FindUserName(File.ReadAllText("/etc/passwd"), uid);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The gid of the group <paramref name="nameOrId"/>: a number is taken as it is, a name is
    /// looked up in the local /etc/group (as <see cref="ServiceUserId"/> reads /etc/passwd: no NSS).
    /// Null when there is no such group or the file cannot be read.
    /// </summary>
    public static uint? LocalGroupId(string nameOrId)
    {
        ArgumentNullException.ThrowIfNull(nameOrId);
        if (uint.TryParse(nameOrId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint gid))
            return gid;
        try
        {
            return FindGroupId(File.ReadAllText("/etc/group"), nameOrId);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>lchown(2) of <paramref name="path"/> to group <paramref name="groupId"/>, its owner unchanged; <see cref="Errno.None"/> on success.</summary>
    public static unsafe Errno TryChangeGroup(string path, uint groupId)
    {
        ArgumentNullException.ThrowIfNull(path);
        int length = Encoding.UTF8.GetByteCount(path);
        if (path.Contains('\0', StringComparison.Ordinal) || length >= 4096)
            return Errno.ENAMETOOLONG;
        byte* name = stackalloc byte[length + 1];
        Encoding.UTF8.GetBytes(path, new Span<byte>(name, length));
        name[length] = 0;
        return Interop.Lchown(name, uint.MaxValue, groupId) == 0 ? Errno.None : Interop.GetLastErrno();
    }

    /// <summary>fstat(2) of descriptor <paramref name="fd"/>: its device and inode numbers (st_dev, st_ino).</summary>
    public static unsafe Errno TryGetDeviceAndInode(int fd, out ulong device, out ulong inode)
    {
        device = inode = 0;
        stat st;
        if (Interop.Fstat(fd, &st) != 0)
            return Interop.GetLastErrno();
        device = (ulong)st.st_dev;
        inode = (ulong)st.st_ino;
        return Errno.None;
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
        status = new UnixFileStatus(kind, st.st_uid, (UnixFileMode)(mode & 0xFFF)) { GroupId = st.st_gid };
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

    /// <summary>
    /// SO_PEERGROUPS of a connected (or accepted) AF_UNIX socket: the peer's supplementary groups as
    /// the kernel recorded them at connect (so they cannot change between the check and the request,
    /// unlike /proc/PID/status of a pid that may be gone or reused). False when the kernel has no
    /// SO_PEERGROUPS (before 4.13) or this is not a unix socket.
    /// </summary>
    public static bool TryGetPeerGroups(Socket unixSocket, out uint[] groups)
    {
        ArgumentNullException.ThrowIfNull(unixSocket);
        groups = [];
        if (unixSocket.AddressFamily != AddressFamily.Unix)
            return false;
        // Most processes have a handful of groups; a second try with the most there can be.
        foreach (int count in (ReadOnlySpan<int>)[64, MaxGroups])
        {
            byte[] buffer = new byte[count * sizeof(uint)];
            int length;
            try
            {
                length = unixSocket.GetRawSocketOption(SolSocket, SoPeerGroups, buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.MessageSize || e.NativeErrorCode == (int)Errno.ERANGE)
            {
                continue;
            }
            catch (SocketException)
            {
                return false;
            }
            groups = MemoryMarshal.Cast<byte, uint>(buffer.AsSpan(0, length - length % sizeof(uint))).ToArray();
            return true;
        }
        return false;
    }
}
