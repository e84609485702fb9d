using System.Globalization;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Cli.Control;

/// <summary>
/// Whether a control socket, and whoever answers or calls on it, may be believed. Without these
/// checks another user who can write the socket's directory replaces the socket and serves fake
/// stats, or fake rules-reload answers, to root's `ctfw stats` and `ctfw reload` (or hands
/// `ctfw run --takeover` fake queues).
/// <para>
/// Trusted owners and peers: root, and this process's effective uid (`ctfw stats` as a user may
/// talk to a root daemon; a daemon running as a user is reached by that user and root).
/// </para>
/// <list type="bullet">
/// <item>Every directory the kernel walks through to reach the socket, from `/`, symbolic links
/// followed by walking their targets the same way, is owned by a trusted uid and not writable by
/// group or others, unless its sticky bit is set (like /tmp: others may add names there but cannot
/// remove or rename ours). A link is only as trusted as the directory it sits in, which is checked
/// before it is followed.</item>
/// <item>The socket itself (lstat: not through a link) is a socket, owned by a trusted uid, not
/// writable by others (the daemon makes it 0600, or 0660 with its group when a control group is
/// configured: write permission on a socket is permission to connect, not to replace it).</item>
/// <item>After connecting, the process that listens on it (SO_PEERCRED) runs as a trusted uid:
/// that also covers a name planted in a sticky directory between the check and the connect.</item>
/// <item>The daemon gives each client a role from its SO_PEERCRED and SO_PEERGROUPS
/// (<see cref="Classify"/>): admin for root, its own uid, the service account and members of the
/// admin group; read-only for members of the control group; anyone else is refused. File
/// permissions already keep most others out, this keeps them out if the mode was widened.</item>
/// </list>
/// Every refusal is one line saying what is wrong and how to fix it.
/// </summary>
internal static class ControlTrust
{
    /// <summary>Links followed before giving up, as the kernel's MAXSYMLINKS.</summary>
    private const int MaxLinks = 40;

    private const UnixFileMode GroupOrOtherWrite = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;

    /// <summary>
    /// Root, the effective uid of this process, or the dedicated service account
    /// (<see cref="UnixIdentity.ServiceUserName"/>, when it exists): the unit runs the daemon as that
    /// user, and whoever controls that account controls the daemon anyway.
    /// </summary>
    public static bool IsTrusted(uint uid) => uid == 0 || uid == UnixIdentity.EffectiveUserId || uid == UnixIdentity.ServiceUserId;

    /// <summary>Why <paramref name="directory"/> cannot hold a control socket, or null when it can (see the class remarks).</summary>
    public static string? CheckDirectory(string directory)
    {
        // Not Path.GetFullPath: it folds "x/.." away without looking, where the kernel goes up from
        // wherever a link x leads. The walk below resolves ".." as the kernel does.
        string full = Absolute(directory);
        var pending = new Stack<string>();
        Push(pending, full);
        string current = "/";
        if (Refusal(full, "/", isTarget: full == "/") is { } root)
            return root;
        int links = 0;
        while (pending.Count > 0)
        {
            string name = pending.Pop();
            if (name is "" or ".")
                continue;
            if (name == "..")
            {
                // current is fully resolved, so its lexical parent is where ".." leads.
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }
            string next = current == "/" ? "/" + name : current + "/" + name;
            Errno errno = UnixIdentity.TryLstat(next, out UnixFileStatus status);
            if (errno != Errno.None)
                return errno == Errno.ENOENT
                    ? $"control socket directory {full} does not exist ({next} is missing)"
                    : $"control socket directory {full}: cannot check {next}: {ErrnoException.Describe(errno)}";
            if (status.Kind == UnixFileKind.SymbolicLink)
            {
                if (++links > MaxLinks)
                    return $"control socket directory {full}: more than {MaxLinks} symbolic links on the way";
                string? target = new FileInfo(next).LinkTarget;
                if (string.IsNullOrEmpty(target))
                    return $"control socket directory {full}: cannot read the symbolic link {next}";
                if (target.StartsWith('/'))
                    current = "/";
                Push(pending, target);
                continue;
            }
            if (status.Kind != UnixFileKind.Directory)
                return $"control socket directory {full}: {next} is not a directory";
            if (Refusal(full, next, isTarget: OnlyEmptyNames(pending), status) is { } refusal)
                return refusal;
            current = next;
        }
        return null;
    }

    /// <summary>
    /// Why the socket at <paramref name="path"/> is not to be believed, or null. A missing socket is
    /// not refused here: connecting then says so, and the peer check covers one created meanwhile.
    /// </summary>
    public static string? CheckSocket(string path)
    {
        string full = Absolute(path);
        if (CheckDirectoryOf(full) is { } directory)
            return directory;
        Errno errno = UnixIdentity.TryLstat(full, out UnixFileStatus status);
        if (errno == Errno.ENOENT)
            return null;
        if (errno == Errno.EACCES)
            return PermissionDenied(full);
        if (errno != Errno.None)
            return $"control socket {full}: cannot check it: {ErrnoException.Describe(errno)}";
        if (status.Kind == UnixFileKind.SymbolicLink)
            return $"control socket {full} is a symbolic link; give the socket's own path";
        if (status.Kind != UnixFileKind.Socket)
            return $"{full} is not a socket ({Describe(status.Kind)}); give the path of a ctfw control socket";
        if (!IsTrusted(status.OwnerId))
            return $"control socket {full} belongs to uid {status.OwnerId}, {NotTrusted()}: not made by a ctfw to trust; remove it";
        if ((status.Mode & UnixFileMode.OtherWrite) != 0)
            return $"control socket {full} is writable by {Who(status.Mode)} (mode {Octal(status.Mode)}); ctfw makes it 0600 (0660 with a control group): remove it and restart that ctfw";
        return null;
    }

    /// <summary><see cref="CheckDirectory"/> of the directory a socket at <paramref name="path"/> would be in, as the kernel finds it.</summary>
    public static string? CheckDirectoryOf(string path)
    {
        string full = Absolute(path);
        int slash = full.LastIndexOf('/');
        return CheckDirectory(slash == 0 ? "/" : full[..slash]);
    }

    /// <summary>Why the server at the other end of <paramref name="connected"/> is not to be believed, or null.</summary>
    public static string? CheckServer(Socket connected, string path)
    {
        if (!UnixIdentity.TryGetPeerCredentials(connected, out PeerCredentials peer))
            return $"cannot tell who serves {path} (SO_PEERCRED failed)";
        return IsTrusted(peer.UserId)
            ? null
            : string.Create(CultureInfo.InvariantCulture,
                $"the process serving {path} (pid {peer.ProcessId}) runs as uid {peer.UserId}, {NotTrusted()}: not a ctfw to trust");
    }

    /// <summary>Why the client at the other end of <paramref name="accepted"/> is not served, or null (without groups: admins only).</summary>
    public static string? CheckClient(Socket accepted)
    {
        Classify(accepted, ControlAccess.AdminsOnly, out _, out string? refusal);
        return refusal;
    }

    /// <summary>
    /// The role of the client at the other end of <paramref name="accepted"/> under
    /// <paramref name="access"/>, with its credentials; <see cref="ControlRole.None"/> with a one-line
    /// <paramref name="refusal"/> when it is not served at all. Groups count by the peer's effective
    /// gid (SO_PEERCRED) and its supplementary groups (SO_PEERGROUPS), both as the kernel recorded
    /// them when it connected.
    /// </summary>
    public static ControlRole Classify(Socket accepted, ControlAccess access, out PeerCredentials peer, out string? refusal)
    {
        refusal = null;
        if (!UnixIdentity.TryGetPeerCredentials(accepted, out peer))
        {
            refusal = "cannot tell who is asking (SO_PEERCRED failed)";
            return ControlRole.None;
        }
        if (IsTrusted(peer.UserId))
            return ControlRole.Admin;
        if (access.Admin is not null || access.Read is not null)
        {
            uint[] groups = UnixIdentity.TryGetPeerGroups(accepted, out uint[] g) ? g : [];
            if (access.Admin is { } admin && InGroup(peer, groups, admin.Id))
                return ControlRole.Admin;
            if (access.Read is { } read && InGroup(peer, groups, read.Id))
                return ControlRole.ReadOnly;
        }
        refusal = string.Create(CultureInfo.InvariantCulture,
            $"permission denied: uid {peer.UserId} is not root, not the uid this ctfw runs as ({UnixIdentity.EffectiveUserId}){(UnixIdentity.ServiceUserId is { } service ? $", not the {UnixIdentity.ServiceUserName} account ({service})" : "")}{access.GroupsClause()}");
        return ControlRole.None;
    }

    private static bool InGroup(PeerCredentials peer, uint[] groups, uint gid) => peer.GroupId == gid || Array.IndexOf(groups, gid) >= 0;

    /// <summary>
    /// "permission denied: …" for a socket (or the directory holding it) this user may not reach:
    /// which account or group the kernel would let in, from the directory's and the socket's owner
    /// and mode (so the message is right whatever --control-group the daemon was given).
    /// </summary>
    public static string PermissionDenied(string socketPath)
    {
        string full = Absolute(socketPath);
        int slash = full.LastIndexOf('/');
        string dir = slash == 0 ? "/" : full[..slash];
        string? reachable = null;
        if (UnixIdentity.TryLstat(full, out UnixFileStatus socket) == Errno.None)
            reachable = Grantee(socket, UnixFileMode.GroupWrite);
        else if (UnixIdentity.TryLstat(dir, out UnixFileStatus directory) == Errno.None)
            reachable = Grantee(directory, UnixFileMode.GroupExecute);
        return $"permission denied: cannot reach the control socket {full}; it is for {reachable ?? "root"} (a daemon started with --control-group GROUP lets members of GROUP read its counters)";
    }

    private static string Grantee(UnixFileStatus status, UnixFileMode groupBit)
    {
        string owner = status.OwnerId == 0 ? "root" : string.Create(CultureInfo.InvariantCulture, $"root and uid {status.OwnerId}{(UnixIdentity.LocalUserName(status.OwnerId) is { } name ? $" ({name})" : "")}");
        if ((status.Mode & groupBit) == 0 || status.GroupId == 0)
            return owner;
        string group = UnixIdentity.LocalGroupName(status.GroupId) ?? status.GroupId.ToString(CultureInfo.InvariantCulture);
        return $"{owner} and members of group {group}";
    }

    private static string Absolute(string path) =>
        path.StartsWith('/') ? path : Environment.CurrentDirectory.TrimEnd('/') + "/" + path;

    /// <summary>True when no name is left to walk: the directory just checked is the one asked about.</summary>
    private static bool OnlyEmptyNames(Stack<string> pending)
    {
        foreach (string name in pending)
        {
            if (name is not ("" or "."))
                return false;
        }
        return true;
    }

    /// <summary>The components of <paramref name="path"/>, pushed so that the first is popped first.</summary>
    private static void Push(Stack<string> pending, string path)
    {
        string[] names = path.Split('/');
        for (int i = names.Length - 1; i >= 0; i--)
            pending.Push(names[i]);
    }

    private static string? Refusal(string full, string directory, bool isTarget, UnixFileStatus? known = null)
    {
        UnixFileStatus status;
        if (known is { } k)
        {
            status = k;
        }
        else
        {
            Errno errno = UnixIdentity.TryLstat(directory, out status);
            if (errno != Errno.None)
                return $"control socket directory {full}: cannot check {directory}: {ErrnoException.Describe(errno)}";
        }
        string where = isTarget ? $"control socket directory {full}" : $"directory {directory} (above control socket directory {full})";
        if (!IsTrusted(status.OwnerId))
            return $"{where} belongs to uid {status.OwnerId}, {NotTrusted()}: another user could replace the socket; chown root {directory}";
        if ((status.Mode & GroupOrOtherWrite) != 0 && (status.Mode & UnixFileMode.StickyBit) == 0)
            return $"{where} is writable by {Who(status.Mode)} (mode {Octal(status.Mode)}): another user could replace the socket; chmod go-w {directory}";
        return null;
    }

    private static string NotTrusted() => (UnixIdentity.EffectiveUserId == 0
        ? "not root"
        : string.Create(CultureInfo.InvariantCulture, $"neither root nor uid {UnixIdentity.EffectiveUserId} (you)"))
        + (UnixIdentity.ServiceUserId is { } service ? string.Create(CultureInfo.InvariantCulture, $" nor the {UnixIdentity.ServiceUserName} account ({service})") : "");

    private static string Who(UnixFileMode mode) => (mode & GroupOrOtherWrite) switch
    {
        GroupOrOtherWrite => "group and others",
        UnixFileMode.GroupWrite => "its group",
        _ => "others",
    };

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0');

    /// <summary>"a regular file", "a symbolic link"…, for messages.</summary>
    public static string Describe(UnixFileKind kind) => kind switch
    {
        UnixFileKind.Regular => "a regular file",
        UnixFileKind.Directory => "a directory",
        UnixFileKind.SymbolicLink => "a symbolic link",
        UnixFileKind.Socket => "a socket",
        _ => "a device, pipe or other special file",
    };
}

/// <summary>What a control client may do: <see cref="ReadOnly"/> reads (stats, list, rules, events), <see cref="Admin"/> also changes.</summary>
internal enum ControlRole
{
    None,
    ReadOnly,
    Admin,
}

/// <summary>A group by name and gid, as given to `--control-group` / `--control-admin-group`.</summary>
internal sealed record ControlGroup(string Name, uint Id)
{
    public override string ToString() => Name;
}

/// <summary>
/// Who besides root, the daemon's uid and the service account may use the control socket: members of
/// <see cref="Admin"/> with every request, members of <see cref="Read"/> with the read-only ones.
/// </summary>
internal sealed record ControlAccess(ControlGroup? Read, ControlGroup? Admin)
{
    public static readonly ControlAccess AdminsOnly = new(null, null);

    /// <summary>
    /// The group that owns the socket (and a directory the daemon made) so that its members can
    /// connect: <see cref="Read"/> when given, else <see cref="Admin"/>. A socket has one group: with
    /// both, members of the admin group reach it through the read group (put them in both).
    /// </summary>
    public ControlGroup? SocketGroup => Read ?? Admin;

    /// <summary>
    /// Looks the groups up (a name in the local /etc/group, or a number); null with a one-line
    /// <paramref name="error"/> when one does not exist.
    /// </summary>
    public static ControlAccess? Resolve(string? readGroup, string? adminGroup, out string? error)
    {
        error = null;
        ControlGroup? read = null, admin = null;
        if (readGroup is not null && (read = Lookup("--control-group", readGroup, out error)) is null)
            return null;
        if (adminGroup is not null && (admin = Lookup("--control-admin-group", adminGroup, out error)) is null)
            return null;
        return new ControlAccess(read, admin);
    }

    private static ControlGroup? Lookup(string option, string name, out string? error)
    {
        error = null;
        if (name.Length == 0 || UnixIdentity.LocalGroupId(name) is not { } gid)
        {
            error = $"{option} {name}: no such group in /etc/group (create it with groupadd, or give a gid)";
            return null;
        }
        return new ControlGroup(name, gid);
    }

    /// <summary>"root or group G": who may make a change, for a refusal.</summary>
    public string AdminWho() => Admin is { } admin ? $"root or group {admin.Name}" : "root or the uid ctfw runs as";

    /// <summary>The end of a connect refusal: the groups that would let the client in.</summary>
    public string GroupsClause() => (Read, Admin) switch
    {
        (null, null) => ", and this ctfw has no --control-group",
        ({ } r, null) => $", and not in group {r.Name}",
        (null, { } a) => $", and not in group {a.Name}",
        ({ } r, { } a) => $", and in neither group {r.Name} nor {a.Name}",
    };
}
