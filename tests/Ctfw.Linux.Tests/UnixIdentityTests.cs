using System.Net.Sockets;
using System.Runtime.Versioning;
using Tmds.Linux;

namespace Ctfw.Linux.Tests;

/// <summary>lstat and SO_PEERCRED as the control socket's trust checks use them, against the real kernel.</summary>
[SupportedOSPlatform("linux")]
public sealed class UnixIdentityTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ctfw-identity-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TryLstat_EachKind_OwnerAndModeAsCreated()
    {
        string file = Path.Combine(_dir, "file"), link = Path.Combine(_dir, "link"), sock = Path.Combine(_dir, "s.sock");
        File.WriteAllText(file, "");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupWrite | UnixFileMode.StickyBit);
        File.CreateSymbolicLink(link, file);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));

        Assert.Equal(Errno.None, UnixIdentity.TryLstat(file, out UnixFileStatus f));
        Assert.Equal(new UnixFileStatus(UnixFileKind.Regular, UnixIdentity.EffectiveUserId, UnixFileMode.UserRead | UnixFileMode.GroupWrite | UnixFileMode.StickyBit) { GroupId = UnixIdentity.EffectiveGroupId }, f);
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(link, out UnixFileStatus l));
        Assert.Equal(UnixFileKind.SymbolicLink, l.Kind);   // the link, not its target
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(_dir, out UnixFileStatus d));
        Assert.Equal((UnixFileKind.Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute), (d.Kind, d.Mode));
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(sock, out UnixFileStatus s));
        Assert.Equal(UnixFileKind.Socket, s.Kind);
        Assert.Equal(Errno.ENOENT, UnixIdentity.TryLstat(Path.Combine(_dir, "none"), out _));
        Assert.Equal(Errno.ENOTDIR, UnixIdentity.TryLstat(Path.Combine(file, "x"), out _));
    }

    [Fact]
    public void TryGetPeerCredentials_BothEnds_ThisProcess()
    {
        string sock = Path.Combine(_dir, "s.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(sock));
        using Socket accepted = listener.Accept();
        var me = new PeerCredentials(Environment.ProcessId, UnixIdentity.EffectiveUserId, (uint)LibC.getegid());

        Assert.True(UnixIdentity.TryGetPeerCredentials(client, out PeerCredentials server));
        Assert.True(UnixIdentity.TryGetPeerCredentials(accepted, out PeerCredentials caller));

        Assert.Equal(me, server);
        Assert.Equal(me, caller);
        Assert.Equal((uint)LibC.geteuid(), UnixIdentity.EffectiveUserId);
    }

    [Fact]
    public void TryGetPeerCredentials_NotAUnixSocketOrNoPeer_False()
    {
        // The kernel answers both with pid 0 and the overflow uid instead of an error.
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        using var unconnected = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        Assert.False(UnixIdentity.TryGetPeerCredentials(udp, out _));
        Assert.False(UnixIdentity.TryGetPeerCredentials(unconnected, out _));
    }

    [Theory]
    [InlineData("root:x:0:0:root:/root:/bin/bash\nctfw:x:998:998::/var/lib/ctfw:/usr/sbin/nologin\n", 998u)]
    [InlineData("ctfwd:x:997:997::/:/bin/false\nxctfw:x:996:996::/:/bin/false\n", null)] // only the exact name
    [InlineData("ctfw:x:notanumber:1::/:/bin/false\n", null)]
    [InlineData("", null)]
    public void FindUserId_OnlyTheExactAccount(string passwd, uint? expected) =>
        Assert.Equal(expected, UnixIdentity.FindUserId(passwd, UnixIdentity.ServiceUserName));

    [Theory]
    [InlineData("root:x:0:\nctfw-read:x:64101:alice,bob\n", "ctfw-read", 64101u)]
    [InlineData("ctfw-reader:x:64102:\nxctfw-read:x:64103:\n", "ctfw-read", null)] // only the exact name
    [InlineData("ctfw-read:x:bad:\n", "ctfw-read", null)]
    [InlineData("", "ctfw-read", null)]
    public void FindGroupId_OnlyTheExactGroup(string group, string name, uint? expected) =>
        Assert.Equal(expected, UnixIdentity.FindGroupId(group, name));

    [Theory]
    [InlineData("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n", 1000u, "alice")]
    [InlineData("root:x:0:0:root:/root:/bin/bash\n", 1000u, null)]
    [InlineData(":x:1000:1000::/:/bin/sh\n", 1000u, null)]
    public void FindUserName_ByUid(string passwd, uint uid, string? expected) =>
        Assert.Equal(expected, UnixIdentity.FindUserName(passwd, uid));

    [Fact]
    public void LocalGroupId_NumberAsItIs_RootByName()
    {
        Assert.Equal(4242u, UnixIdentity.LocalGroupId("4242"));
        Assert.Equal(0u, UnixIdentity.LocalGroupId("root"));
        Assert.Null(UnixIdentity.LocalGroupId("no-such-group-ctfw"));
        Assert.Equal("root", UnixIdentity.LocalGroupName(0));
    }

    [Fact]
    public void TryGetPeerGroups_BothEnds_ThisProcessesSupplementaryGroups()
    {
        string sock = Path.Combine(_dir, "g.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(sock));
        using Socket accepted = listener.Accept();
        // What the kernel says this process has: /proc/self/status "Groups:\t0 4 24 ".
        string line = File.ReadAllLines("/proc/self/status").Single(l => l.StartsWith("Groups:", StringComparison.Ordinal));
        uint[] mine = [.. line["Groups:".Length..].Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(g => uint.Parse(g, System.Globalization.CultureInfo.InvariantCulture)).Order()];

        Assert.True(UnixIdentity.TryGetPeerGroups(accepted, out uint[] caller));
        Assert.True(UnixIdentity.TryGetPeerGroups(client, out uint[] server));
        Assert.Equal(mine, caller.Order());
        Assert.Equal(mine, server.Order());
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        Assert.False(UnixIdentity.TryGetPeerGroups(udp, out _));
    }

    [Fact]
    public void TryGetDeviceAndInode_OpenFile_AsStatSaysIt()
    {
        string file = Path.Combine(_dir, "f");
        File.WriteAllText(file, "x");
        using var stream = new FileStream(file, FileMode.Open);
        int fd = (int)stream.SafeFileHandle.DangerousGetHandle();
        Assert.Equal(Errno.None, UnixIdentity.TryGetDeviceAndInode(fd, out ulong device, out ulong inode));
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%d:%i", file]) { RedirectStandardOutput = true })!;
        string expected = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        Assert.Equal(expected, $"{device}:{inode}");
        Assert.Equal(Errno.EBADF, UnixIdentity.TryGetDeviceAndInode(-1, out _, out _));
    }

    [Fact]
    public void TryChangeGroup_OwnFile_GroupChanged_MissingFileENOENT()
    {
        string file = Path.Combine(_dir, "g");
        File.WriteAllText(file, "");
        // Root may give it to any group (nogroup, 65534: a real change); anyone else to a group it is in (its egid).
        uint group = UnixIdentity.EffectiveUserId == 0 ? 65534 : UnixIdentity.EffectiveGroupId;
        Assert.Equal(Errno.None, UnixIdentity.TryChangeGroup(file, group));
        Assert.Equal(Errno.None, UnixIdentity.TryLstat(file, out UnixFileStatus status));
        Assert.Equal((UnixIdentity.EffectiveUserId, group), (status.OwnerId, status.GroupId));
        Assert.Equal(Errno.ENOENT, UnixIdentity.TryChangeGroup(Path.Combine(_dir, "none"), 0));
    }
}
