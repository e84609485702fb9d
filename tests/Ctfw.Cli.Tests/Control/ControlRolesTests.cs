using System.Diagnostics;
using System.Globalization;
using Ctfw.Cli.Control;
using Ctfw.Linux;

namespace Ctfw.Cli.Tests.Control;

/// <summary>
/// Roles by SO_PEERCRED and SO_PEERGROUPS: clients run as uid 65534 (setpriv) with chosen
/// supplementary groups against a server given a read-only and an admin group. Groups are bare gids
/// (no /etc/group entry needed: the kernel compares numbers).
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ControlRolesTests : IDisposable
{
    private const uint ReadGid = 64101, AdminGid = 64102, OtherGid = 64103;

    private static readonly ControlAccess s_access = new(new ControlGroup("ctfw-read", ReadGid), new ControlGroup("ctfw-admin", AdminGid));

    private readonly TempDir _dir = new();
    private readonly FakeControlTarget _target = new();
    private readonly List<string> _log = [];

    public ControlRolesTests()
    {
        // Others may walk into the test directory (TempDir makes it 0700 as root's umask allows).
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0x1ED);   // 0755
        _target.Counters.Add(new("packets", 7));
        _target.Add(Flows.Tcp("10.0.0.1", 1, "10.0.0.2", 2));
    }

    public void Dispose() => _dir.Dispose();

    private string SocketPath => Path.Combine(_dir.Path, "run", "ctfw-1.sock");

    private ControlServer Start() => ControlServer.Start(SocketPath, _target, s_access, line =>
    {
        lock (_log)
            _log.Add(line);
    });

    [RootPythonFact]
    public void Start_WithGroups_SocketAndNewDirectoryOpenToTheSocketGroupOnly()
    {
        using ControlServer server = Start();
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(SocketPath, out UnixFileStatus socket));
        Assert.Equal((UnixFileKind.Socket, ReadGid, (UnixFileMode)0x1B0), (socket.Kind, socket.GroupId, socket.Mode));   // 0660
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(Path.GetDirectoryName(SocketPath)!, out UnixFileStatus dir));
        Assert.Equal((ReadGid, (UnixFileMode)0x1E8), (dir.GroupId, dir.Mode));   // 0750
        // What a client (root here) checks before it connects still accepts it.
        Assert.Null(ControlTrust.CheckSocket(SocketPath));
    }

    [RootPythonFact]
    public void ReadOnlyMember_Reads_ChangesDeniedWithTheMessage()
    {
        using ControlServer server = Start();
        Assert.Equal("ok\npackets 7\n", AsNobody([ReadGid], "stats"));
        Assert.StartsWith("ok\ntcp ", AsNobody([ReadGid], "list"));
        Assert.StartsWith("ok\nChain INPUT", AsNobody([ReadGid], "rules"));
        Assert.Equal("error: permission denied: flush needs the admin role (root or group ctfw-admin)\n", AsNobody([ReadGid], "flush"));
        Assert.Equal("error: permission denied: rules needs the admin role (root or group ctfw-admin)\n", AsNobody([ReadGid], "rules\tzero"));
        Assert.Equal("error: permission denied: takeover needs the admin role (root or group ctfw-admin)\n", AsNobody([ReadGid], "takeover\t1"));
        Assert.Equal(1, _target.FlowCount);
        Assert.Equal(0, _target.Zeroings);
        Assert.Empty(_target.Takeovers);
        // The first denial is logged; the next ones within RefusalLogIntervalMs are counted into the next line.
        lock (_log)
            Assert.Matches(@"^ctfw: control: flush denied to uid 65534 \(nobody\) pid \d+: read-only$", Assert.Single(_log));
    }

    [RootPythonFact]
    public void AdminGroupMember_Changes()
    {
        using ControlServer server = Start();
        // Admins reach the socket through its group (the read group): the documented set-up is both groups.
        Assert.Equal("ok\n1\n", AsNobody([ReadGid, AdminGid], "flush"));
        Assert.Equal(0, _target.FlowCount);
        lock (_log)
            Assert.Matches(@"^ctfw: control: flush by uid 65534 \(nobody\) pid \d+: 1 entries removed$", Assert.Single(_log));
    }

    [RootPythonFact]
    public void NonMember_RefusedWhateverItAsks()
    {
        using ControlServer server = Start();
        // Widened by hand: the file no longer keeps others out, the peer check still does.
        File.SetUnixFileMode(SocketPath, (UnixFileMode)0x1B6);
        File.SetUnixFileMode(Path.GetDirectoryName(SocketPath)!, (UnixFileMode)0x1ED);
        const string Refusal = "error: permission denied: uid 65534 is not root, not the uid this ctfw runs as (0), and in neither group ctfw-read nor ctfw-admin\n";
        Assert.Equal(Refusal, AsNobody([OtherGid], "stats"));
        Assert.Equal(Refusal, AsNobody([OtherGid], "flush"));
        Assert.Equal(1, _target.FlowCount);
    }

    [RootPythonFact]
    public void NonMember_CannotReachTheSocket_ClientSaysPermissionDenied()
    {
        using ControlServer server = Start();
        // As uid 65534 in no group: the 0750 directory keeps it out (EACCES), and `ctfw` says so.
        string answer = AsNobody([OtherGid], "stats", clientOnly: true);
        Assert.Equal($"PermissionError {SocketPath}\n", answer);
        File.SetUnixFileMode(Path.GetDirectoryName(SocketPath)!, (UnixFileMode)0x1ED);   // 0755: now the socket's 0660 does
        Assert.Equal($"PermissionError {SocketPath}\n", AsNobody([OtherGid], "stats", clientOnly: true));
        // What `ctfw stats` then says: who the socket is for, read from its owner, group and mode.
        Assert.Equal($"permission denied: cannot reach the control socket {SocketPath}; it is for root and members of group {UnixIdentity.LocalGroupName(ReadGid) ?? ReadGid.ToString(CultureInfo.InvariantCulture)} (a daemon started with --control-group GROUP lets members of GROUP read its counters)",
            ControlTrust.PermissionDenied(SocketPath));
    }

    /// <summary>
    /// One request as uid/gid 65534 with <paramref name="groups"/> as supplementary groups; the
    /// answer, or with <paramref name="clientOnly"/> "PermissionError PATH" when connect is refused.
    /// </summary>
    private string AsNobody(uint[] groups, string request, bool clientOnly = false)
    {
        var psi = new ProcessStartInfo("setpriv") { UseShellExecute = false, RedirectStandardOutput = true };
        string groupList = string.Join(',', groups.Select(g => g.ToString(CultureInfo.InvariantCulture)));
        foreach (string a in (string[])["--reuid=65534", "--regid=65534", $"--groups={groupList}", RootPythonFactAttribute.Python, "-c", Script, SocketPath, request, clientOnly ? "1" : "0"])
            psi.ArgumentList.Add(a);
        using Process client = Process.Start(psi)!;
        string answer = client.StandardOutput.ReadToEnd();
        client.WaitForExit();
        return answer;
    }

    private const string Script = """
        import socket, sys
        c = socket.socket(socket.AF_UNIX)
        try:
            c.connect(sys.argv[1])
        except PermissionError:
            sys.stdout.write("PermissionError " + sys.argv[1] + "\n")
            sys.exit(0)
        try:
            c.sendall(sys.argv[2].encode() + b"\n")
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        while True:
            try:
                d = c.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            data += d
        sys.stdout.write(data.decode())
        """;
}
