using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using Ctfw.Cli.Control;

namespace Ctfw.Cli.Tests.Control;

/// <summary>
/// The control socket is believed only where no other user could have put it (issue 13 part 5: a
/// socket in a directory others can write was replaced, and root's `ctfw stats` showed the fake's
/// numbers). Unprivileged where a mode is enough; what needs files or processes of another user
/// (uid 65534) runs as root only and is skipped otherwise.
/// </summary>
[Collection("Console")]
[SupportedOSPlatform("linux")]
public sealed class ControlTrustTests : IDisposable
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode Everyone = (UnixFileMode)0x1FF;   // 0777
    private const UnixFileMode Sticky = Everyone | UnixFileMode.StickyBit;

    private readonly TempDir _root = new();
    private readonly FakeControlTarget _target = new();
    private readonly string? _oldRunDir = Environment.GetEnvironmentVariable(ControlPaths.RunDirectoryVariable);

    public ControlTrustTests() => File.SetUnixFileMode(_root.Path, Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(ControlPaths.RunDirectoryVariable, _oldRunDir);
        _root.Dispose();
    }

    /// <summary>A directory under the test's root with exactly <paramref name="mode"/> (chmod, so no umask).</summary>
    private string Dir(string name, UnixFileMode mode)
    {
        string path = _root.File(name);
        Directory.CreateDirectory(path);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0');

    [Theory]
    [InlineData(0x1FF, "group and others")]   // 0777
    [InlineData(0x1F8, "its group")]          // 0770
    [InlineData(0x1C2, "others")]             // 0702
    public void Directory_WritableByOthers_RefusedSayingHowToFix(int mode, string who)
    {
        string dir = Dir("run", (UnixFileMode)mode);

        Assert.Equal($"control socket directory {dir} is writable by {who} (mode {Octal((UnixFileMode)mode)}): another user could replace the socket; chmod go-w {dir}",
            ControlTrust.CheckDirectory(dir));
    }

    [Theory]
    [InlineData(0x1C0)]   // 0700
    [InlineData(0x1ED)]   // 0755
    [InlineData(0x3FF)]   // 1777, like /tmp: others add names but cannot replace ours
    public void Directory_PrivateOrSticky_Accepted(int mode) =>
        Assert.Null(ControlTrust.CheckDirectory(Dir("run", (UnixFileMode)mode)));

    [Fact]
    public void Directory_UnderADirectoryOthersCanWrite_RefusedNamingThatDirectory()
    {
        // Whoever can write the parent can rename the private directory away and put their own in its place.
        string parent = Dir("open", Everyone);
        string dir = Dir("open/run", Private);

        Assert.Equal($"directory {parent} (above control socket directory {dir}) is writable by group and others (mode 0777): "
            + $"another user could replace the socket; chmod go-w {parent}", ControlTrust.CheckDirectory(dir));
    }

    [Fact]
    public void Directory_ThroughALinkInAPrivateDirectory_FollowedAndAccepted()
    {
        string real = Dir("real", Private);
        string link = _root.File("link");
        File.CreateSymbolicLink(link, real);

        Assert.Null(ControlTrust.CheckDirectory(link));
    }

    [Fact]
    public void Directory_DotDotAfterALink_WalkedWhereTheKernelGoes()
    {
        // link -> open/run, so the kernel takes link/../run to open/run, under the 0777 "open";
        // folding "link/.." away as text would check the private root/run instead.
        Dir("run", Private);
        string open = Dir("open", Everyone);
        Dir("open/run", Private);
        File.CreateSymbolicLink(_root.File("link"), "open/run");
        string tricky = _root.File("link/../run");

        Assert.StartsWith($"directory {open} (above control socket directory {tricky}) is writable", ControlTrust.CheckDirectory(tricky));
    }

    [Fact]
    public void Directory_ThroughALinkIntoADirectoryOthersCanWrite_Refused()
    {
        string open = Dir("open", Everyone);
        string target = Dir("open/run", Private);
        string link = _root.File("link");
        File.CreateSymbolicLink(link, "open/run");   // relative: resolved from the link's directory

        Assert.StartsWith($"directory {open} (above control socket directory {link}) is writable by group and others", ControlTrust.CheckDirectory(link));
        Assert.StartsWith($"directory {open} (above control socket directory {target})", ControlTrust.CheckDirectory(target));
    }

    [Fact]
    public void Directory_Missing_SaysSo() =>
        Assert.Equal($"control socket directory {_root.File("none/run")} does not exist ({_root.File("none")} is missing)",
            ControlTrust.CheckDirectory(_root.File("none/run")));

    [Fact]
    public void Server_InADirectoryOthersCanWrite_RefusesToBind()
    {
        string dir = Dir("run", Everyone);
        string path = Path.Combine(dir, "ctfw-1.sock");

        IOException e = Assert.Throws<IOException>(() => ControlServer.Start(path, _target));

        Assert.Equal($"control socket directory {dir} is writable by group and others (mode 0777): another user could replace the socket; chmod go-w {dir}", e.Message);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Server_InAPrivateDirectory_Serves()
    {
        string path = Path.Combine(Dir("run", Private), "ctfw-1.sock");
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(path, _target);

        Assert.True(ControlClient.TryRequest(path, "stats", out string body, out string? error), error);
        Assert.Equal("packets 7\n", body);
    }

    [Fact]
    public void Server_SomethingElseAtThePath_RefusedAndLeftAlone()
    {
        // Before: anything nobody answered on was deleted, a regular file or a link included.
        string dir = Dir("run", Private);
        string path = Path.Combine(dir, "ctfw-1.sock");
        File.WriteAllText(path, "not a socket");

        IOException e = Assert.Throws<IOException>(() => ControlServer.Start(path, _target));

        Assert.Equal($"{path} exists and is not a socket (a regular file); remove it or choose another --control path", e.Message);
        Assert.Equal("not a socket", File.ReadAllText(path));
    }

    [Fact]
    public void Client_SocketInADirectoryOthersCanWrite_RefusedBeforeConnecting()
    {
        // The issue's setup: a live socket, in a directory another user could have written it into.
        string dir = Dir("run", Private);
        string path = Path.Combine(dir, "ctfw-1.sock");
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(path, _target);
        File.SetUnixFileMode(dir, Everyone);

        Assert.False(ControlClient.TryRequest(path, "stats", out string body, out string? error));

        Assert.Equal("", body);
        Assert.Equal($"control socket directory {dir} is writable by group and others (mode 0777): another user could replace the socket; chmod go-w {dir}", error);
    }

    [Fact]
    public void Client_SocketReachedThroughALink_Refused()
    {
        string dir = Dir("run", Private);
        string path = Path.Combine(dir, "ctfw-1.sock"), alias = Path.Combine(dir, "alias.sock");
        using var server = ControlServer.Start(path, _target);
        File.CreateSymbolicLink(alias, path);

        Assert.False(ControlClient.TryRequest(alias, "stats", out _, out string? error));
        Assert.Equal($"control socket {alias} is a symbolic link; give the socket's own path", error);
    }

    [Fact]
    public void Client_SocketWritableByOthers_Refused()
    {
        string path = Path.Combine(Dir("run", Private), "ctfw-1.sock");
        using var server = ControlServer.Start(path, _target);
        File.SetUnixFileMode(path, (UnixFileMode)0x1B6);   // 0666

        Assert.False(ControlClient.TryRequest(path, "stats", out _, out string? error));
        Assert.Equal($"control socket {path} is writable by group and others (mode 0666); ctfw makes it 0600 (0660 with a control group): remove it and restart that ctfw", error);
    }

    [Fact]
    public void Client_SocketWritableByItsGroup_Accepted()
    {
        // 0660 is what --control-group makes: group members may connect; replacing it needs the directory.
        string path = Path.Combine(Dir("run", Private), "ctfw-1.sock");
        _target.Counters.Add(new("packets", 4));
        using var server = ControlServer.Start(path, _target);
        File.SetUnixFileMode(path, (UnixFileMode)0x1B0);   // 0660

        Assert.Null(ControlTrust.CheckSocket(path));
        Assert.True(ControlClient.TryRequest(path, "stats", out string body, out string? error), error);
        Assert.Equal("packets 4\n", body);
    }

    [Fact]
    public void Client_NotASocket_Refused()
    {
        string path = Path.Combine(Dir("run", Private), "ctfw-1.sock");
        File.WriteAllText(path, "");

        Assert.Equal($"{path} is not a socket (a regular file); give the path of a ctfw control socket", ControlTrust.CheckSocket(path));
    }

    [Fact]
    public void StatsCommand_RunDirectoryOthersCanWrite_ExitOneWithOneLine()
    {
        string dir = Dir("run", Private);
        Environment.SetEnvironmentVariable(ControlPaths.RunDirectoryVariable, dir);
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(ControlPaths.Default(Environment.ProcessId), _target);
        File.SetUnixFileMode(dir, Everyone);

        foreach (string[] args in (string[][])[["stats"], ["conntrack", "-L"], ["reload"], ["stats", "--pid", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)]])
        {
            var (code, output, err) = ConsoleCapture.Run(args);
            Assert.Equal(1, code);
            Assert.Equal("", output);
            Assert.Equal($"ctfw: control socket directory {dir} is writable by group and others (mode 0777): another user could replace the socket; chmod go-w {dir}\n", err);
        }
    }

    // ---- another user's files and processes: root only ----

    [RootFact]
    public void Directory_OwnedByAnotherUser_Refused()
    {
        string dir = Dir("run", Private);
        Chown("65534", dir);

        Assert.Equal($"control socket directory {dir} belongs to uid 65534, not root: another user could replace the socket; chown root {dir}",
            ControlTrust.CheckDirectory(dir));
    }

    [RootFact]
    public void Client_SocketOwnedByAnotherUser_Refused()
    {
        string path = Path.Combine(Dir("run", Private), "ctfw-1.sock");
        using var server = ControlServer.Start(path, _target);
        Chown("65534", path);

        Assert.False(ControlClient.TryRequest(path, "stats", out _, out string? error));
        Assert.Equal($"control socket {path} belongs to uid 65534, not root: not made by a ctfw to trust; remove it", error);
    }

    [RootPythonFact]
    public void Client_ServerRunningAsAnotherUser_RefusedOnItsCredentials()
    {
        // The issue's attack itself: another user serves fake stats on a socket that ends up where
        // root looks, looking like root's (moved in and chowned: every file check passes). Only
        // SO_PEERCRED tells: the listener runs as uid 65534.
        string drop = Dir("drop", Private);
        Chown("65534", drop);
        string fake = Path.Combine(drop, "fake.sock");
        string path = Path.Combine(Dir("run", Private), "ctfw-1.sock");
        using Process server = AsNobody("""
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.bind(sys.argv[1])
            s.listen(4)
            print("ready", flush=True)
            while True:
                c, _ = s.accept()
                c.recv(4096)
                c.sendall(b"ok\npackets 999999\n")
                c.close()
            """, fake);
        try
        {
            Assert.Equal("ready", server.StandardOutput.ReadLine());
            File.Move(fake, path);
            Chown("root", path);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Assert.Null(ControlTrust.CheckSocket(path));

            Assert.False(ControlClient.TryRequest(path, "stats", out string body, out string? error));

            Assert.Equal("", body);
            Assert.Equal($"the process serving {path} (pid {server.Id}) runs as uid 65534, not root: not a ctfw to trust", error);
        }
        finally
        {
            server.Kill();
        }
    }

    [RootPythonFact]
    public void Server_ClientRunningAsAnotherUser_AnsweredWithTheRefusalOnly()
    {
        string path = Path.Combine(Dir("run", (UnixFileMode)0x1ED), "ctfw-1.sock");   // 0755
        _target.Counters.Add(new("packets", 7));
        using var server = ControlServer.Start(path, _target);
        File.SetUnixFileMode(path, (UnixFileMode)0x1B6);   // 0666: the file no longer keeps others out

        using Process client = AsNobody("""
            import socket, sys
            c = socket.socket(socket.AF_UNIX)
            c.connect(sys.argv[1])
            try:
                c.sendall(b"stats\n")
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass   # the refusal may come, and the server close, before the request is sent
            data = b""
            while True:
                try:
                    d = c.recv(4096)
                except ConnectionResetError:
                    break   # the server closed with our request unread: the answer came first
                if not d:
                    break
                data += d
            sys.stdout.write(data.decode())
            """, path);
        string answer = client.StandardOutput.ReadToEnd();
        client.WaitForExit();

        Assert.Equal("error: permission denied: uid 65534 is not root, not the uid this ctfw runs as (0), and this ctfw has no --control-group\n", answer);
    }

    private static void Chown(string owner, string path)
    {
        using Process chown = Process.Start("chown", ["-h", owner, path]);
        chown.WaitForExit();
        Assert.Equal(0, chown.ExitCode);
    }

    /// <summary>A python3 script run as uid/gid 65534 with <paramref name="argument"/>; stdout redirected.</summary>
    private static Process AsNobody(string script, string argument)
    {
        var psi = new ProcessStartInfo("setpriv") { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (string a in (string[])["--reuid=65534", "--regid=65534", "--clear-groups", RootPythonFactAttribute.Python, "-c", script, argument])
            psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }
}

/// <summary>Runs as root only (it makes files owned by uid 65534); skipped, with the reason, otherwise.</summary>
internal class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
            Skip = "needs root to give files to another user (uid 65534)";
    }
}

/// <summary>As <see cref="RootFactAttribute"/>, and runs a python3 process as uid 65534 through setpriv.</summary>
internal sealed class RootPythonFactAttribute : RootFactAttribute
{
    public const string Python = "/usr/bin/python3";

    public RootPythonFactAttribute()
    {
        if (Skip is null && !File.Exists(Python))
            Skip = $"needs {Python} to run a process as another user (uid 65534)";
    }
}
