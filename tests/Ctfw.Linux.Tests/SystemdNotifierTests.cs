using System.Net.Sockets;
using System.Text;
using Ctfw.Linux;

namespace Ctfw.Linux.Tests;

/// <summary>sd_notify(3) without systemd: a datagram socket of the test's own plays the service manager.</summary>
public sealed class SystemdNotifierTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ctfw-notify-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Socket Manager(string address)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { ReceiveTimeout = 5000 };
        socket.Bind(new UnixDomainSocketEndPoint(address));
        return socket;
    }

    private static string Receive(Socket manager)
    {
        byte[] buffer = new byte[4096];
        int n = manager.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Fact]
    public void NoNotifySocket_DisabledAndEverySendIsANoOp()
    {
        using SystemdNotifier n = SystemdNotifier.Create(null, null, null, 42);
        Assert.False(n.Enabled);
        Assert.Equal(0, n.WatchdogUsec);
        Assert.Null(n.SetupProblem);
        Assert.False(n.Send("READY=1"));
    }

    [Fact]
    public void PathSocket_ReadyReloadingWatchdogStopping_ArriveAsSdNotifyMessages()
    {
        string path = Path.Combine(_dir, "notify");
        using Socket manager = Manager(path);
        using SystemdNotifier n = SystemdNotifier.Create(path, "400000", null, 42);

        Assert.True(n.Enabled);
        Assert.Equal(400_000, n.WatchdogUsec);
        n.Ready("filtering queue 0 with 3 rules");
        Assert.Equal("READY=1\nSTATUS=filtering queue 0 with 3 rules", Receive(manager));
        n.Reloading();
        Assert.Matches(@"^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*$", Receive(manager));
        n.Watchdog();
        Assert.Equal("WATCHDOG=1", Receive(manager));
        n.Stopping("removing the rules");
        Assert.Equal("STOPPING=1\nSTATUS=removing the rules", Receive(manager));
        Assert.Equal(0, n.Failures);
    }

    [Fact]
    public void AbstractName_AtSignMeansTheAbstractNamespace()
    {
        string name = $"ctfw-notify-test-{Environment.ProcessId}-{Guid.NewGuid():N}";
        using Socket manager = Manager("\0" + name);
        using SystemdNotifier n = SystemdNotifier.Create("@" + name, null, null, 42);

        n.Status("hello");
        Assert.Equal("STATUS=hello", Receive(manager));
    }

    [Fact]
    public void ManagerGone_SendFailsAndIsCountedWithoutThrowing()
    {
        using SystemdNotifier n = SystemdNotifier.Create(Path.Combine(_dir, "nobody"), null, null, 42);
        Assert.True(n.Enabled);
        Assert.False(n.Send("READY=1"));
        Assert.Equal(1, n.Failures);
    }

    [Theory]
    [InlineData("400000", null, 400_000L, false)]
    [InlineData("400000", "42", 400_000L, false)]
    [InlineData("400000", "7", 0L, false)]      // the watchdog is another process's (a parent shell's)
    [InlineData("0", null, 0L, true)]
    [InlineData("soon", null, 0L, true)]
    public void WatchdogVariables_ForThisProcessOnly(string usec, string? pid, long expected, bool problem)
    {
        using SystemdNotifier n = SystemdNotifier.Create(Path.Combine(_dir, "x"), usec, pid, 42);
        Assert.Equal(expected, n.WatchdogUsec);
        Assert.Equal(problem, n.SetupProblem is not null);
    }

    [Fact]
    public void RelativeNotifySocket_RefusedWithAReason()
    {
        using SystemdNotifier n = SystemdNotifier.Create("run/notify", null, null, 42);
        Assert.False(n.Enabled);
        Assert.Contains("neither a path nor an abstract name", n.SetupProblem, StringComparison.Ordinal);
    }
}
