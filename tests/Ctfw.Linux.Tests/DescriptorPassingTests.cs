using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Ctfw.Linux.Tests;

/// <summary>SCM_RIGHTS over an AF_UNIX stream: what the takeover hands the NFQUEUE sockets over with.</summary>
public sealed class DescriptorPassingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ctfw-fd-").FullName;
    private readonly Socket _listener;

    public DescriptorPassingTests()
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_dir, "s")));
        _listener.Listen(1);
    }

    public void Dispose()
    {
        _listener.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private (Socket Client, Socket Server) Pair()
    {
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(Path.Combine(_dir, "s")));
        return (client, _listener.Accept());
    }

    private SafeFileHandle FileWith(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return File.OpenHandle(path);
    }

    private static string ReadAll(SafeHandle handle)
    {
        using var view = new SafeFileHandle(handle.DangerousGetHandle(), ownsHandle: false);
        byte[] buffer = new byte[64];
        int n = RandomAccess.Read(view, buffer, 0);
        return Encoding.ASCII.GetString(buffer, 0, n);
    }

    [Fact]
    public void SendReceive_TwoDescriptors_ArriveInOrderAsOwnedCopies()
    {
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        using (SafeFileHandle a = FileWith("a", "first"))
        using (SafeFileHandle b = FileWith("b", "second"))
        {
            DescriptorPassing.Send(server, [a, b], (byte)'F');
            List<SafeHandle> got = DescriptorPassing.Receive(client, 4, TimeSpan.FromSeconds(5), out byte marker);

            Assert.Equal((byte)'F', marker);
            Assert.Equal(2, got.Count);
            Assert.NotEqual(a.DangerousGetHandle(), got[0].DangerousGetHandle()); // a new descriptor for the same file
            Assert.Equal("first", ReadAll(got[0]));
            Assert.Equal("second", ReadAll(got[1]));
            a.Dispose(); // the copy outlives the original
            Assert.Equal("first", ReadAll(got[0]));
            foreach (SafeHandle h in got)
                h.Dispose();
        }
    }

    [Fact]
    public void Receive_NothingSent_TimesOutWithEagain()
    {
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        {
            var e = Assert.Throws<ErrnoException>(() => DescriptorPassing.Receive(client, 1, TimeSpan.FromMilliseconds(100), out _));
            Assert.Equal(Errno.EAGAIN, e.Errno);
        }
    }

    [Fact]
    public void Receive_PeerClosedWithoutSending_SaysSo()
    {
        (Socket client, Socket server) = Pair();
        using (client)
        {
            server.Dispose();
            var e = Assert.Throws<ErrnoException>(() => DescriptorPassing.Receive(client, 1, TimeSpan.FromSeconds(5), out _));
            Assert.Equal(Errno.ECONNRESET, e.Errno);
        }
    }

    [Fact]
    public void Receive_MoreDescriptorsThanRoomFor_IsAnErrorNotASilentLoss()
    {
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        using (SafeFileHandle a = FileWith("a", "1"))
        using (SafeFileHandle b = FileWith("b", "2"))
        using (SafeFileHandle c = FileWith("c", "3"))
        {
            DescriptorPassing.Send(server, [a, b, c], (byte)'F');
            var e = Assert.Throws<ErrnoException>(() => DescriptorPassing.Receive(client, 2, TimeSpan.FromSeconds(5), out _));
            Assert.Equal(Errno.EMSGSIZE, e.Errno);
        }
    }

    [Fact]
    public void Send_NoDescriptors_IsRefused()
    {
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
            Assert.Throws<ArgumentOutOfRangeException>(() => DescriptorPassing.Send(server, [], (byte)'F'));
    }
}
