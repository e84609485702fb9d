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
}
