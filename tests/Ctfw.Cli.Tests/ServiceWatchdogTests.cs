using System.Net.Sockets;
using System.Text;
using Ctfw.Cli.Daemon;
using Ctfw.Linux;

namespace Ctfw.Cli.Tests;

/// <summary>The watchdog pings systemd only while every queue worker makes progress.</summary>
public sealed class ServiceWatchdogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ctfw-watchdog-").FullName;
    private readonly Socket _manager;
    private readonly SystemdNotifier _notifier;
    private readonly StringWriter _err = new();

    public ServiceWatchdogTests()
    {
        string path = Path.Combine(_dir, "notify");
        _manager = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
        _manager.Bind(new UnixDomainSocketEndPoint(path));
        _notifier = SystemdNotifier.Create(path, "1000000", null, Environment.ProcessId);
    }

    public void Dispose()
    {
        _notifier.Dispose();
        _manager.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private sealed class FakeWorker(ushort queue) : IWorkerProgress
    {
        public long Loops { get; set; }

        public bool IsPaused { get; set; }

        public ushort QueueNumber { get; } = queue;
    }

    private List<string> Messages()
    {
        List<string> got = [];
        byte[] buffer = new byte[256];
        while (_manager.Available > 0)
            got.Add(Encoding.UTF8.GetString(buffer, 0, _manager.Receive(buffer)));
        return got;
    }

    [Fact]
    public void Look_EveryWorkerMoved_Pings_OneStuck_NoPingAndOneAlertNamingIt_ThenResumes()
    {
        FakeWorker a = new(0), b = new(1);
        using var watchdog = new ServiceWatchdog(_notifier, [a, b], _err);

        a.Loops = 5;
        b.Loops = 3;
        Assert.True(watchdog.Look());
        Assert.Equal(["WATCHDOG=1"], Messages());

        a.Loops = 6; // queue 1's worker is stuck
        Assert.False(watchdog.Look());
        a.Loops = 7;
        Assert.False(watchdog.Look());
        Assert.Empty(Messages());
        Assert.Equal(2, watchdog.Stalls);
        string[] lines = _err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("ctfw: ALERT: the worker of queue 1 made no progress for 500 ms", lines[0], StringComparison.Ordinal);

        a.Loops = 8;
        b.Loops = 4;
        Assert.True(watchdog.Look());
        Assert.Equal(["WATCHDOG=1"], Messages());
        Assert.EndsWith("watchdog pings resumed\n", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, watchdog.Pings);
    }

    [Fact]
    public void Look_WorkerPausedForAHandOver_IsNotStuck()
    {
        FakeWorker a = new(4) { Loops = 10, IsPaused = true };
        using var watchdog = new ServiceWatchdog(_notifier, [a], _err);

        Assert.True(watchdog.Look());
        Assert.Equal(0, watchdog.Stalls);
    }
}
