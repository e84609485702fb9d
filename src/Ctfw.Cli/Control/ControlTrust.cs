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
/// writable by group or others (the daemon makes it 0600).</item>
/// <item>After connecting, the process that listens on it (SO_PEERCRED) runs as a trusted uid:
/// that also covers a name planted in a sticky directory between the check and the connect.</item>
/// <item>The daemon answers only clients whose uid is root or its own; file permissions already
/// keep others out, this keeps them out if the mode was widened.</item>
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
        if (errno != Errno.None)
            return $"control socket {full}: cannot check it: {ErrnoException.Describe(errno)}";
        if (status.Kind == UnixFileKind.SymbolicLink)
            return $"control socket {full} is a symbolic link; give the socket's own path";
        if (status.Kind != UnixFileKind.Socket)
            return $"{full} is not a socket ({Describe(status.Kind)}); give the path of a ctfw control socket";
        if (!IsTrusted(status.OwnerId))
            return $"control socket {full} belongs to uid {status.OwnerId}, {NotTrusted()}: not made by a ctfw to trust; remove it";
        if ((status.Mode & GroupOrOtherWrite) != 0)
            return $"control socket {full} is writable by {Who(status.Mode)} (mode {Octal(status.Mode)}); ctfw makes it 0600: remove it and restart that ctfw";
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

    /// <summary>Why the client at the other end of <paramref name="accepted"/> is not served, or null.</summary>
    public static string? CheckClient(Socket accepted)
    {
        if (!UnixIdentity.TryGetPeerCredentials(accepted, out PeerCredentials peer))
            return "cannot tell who is asking (SO_PEERCRED failed)";
        return IsTrusted(peer.UserId)
            ? null
            : string.Create(CultureInfo.InvariantCulture,
                $"permission denied: uid {peer.UserId} is neither root nor the uid this ctfw runs as ({UnixIdentity.EffectiveUserId}){(UnixIdentity.ServiceUserId is { } service ? $" nor the {UnixIdentity.ServiceUserName} account ({service})" : "")}");
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
