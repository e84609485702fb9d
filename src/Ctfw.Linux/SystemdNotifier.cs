using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Ctfw.Linux;

/// <summary>
/// The service manager's notification protocol (sd_notify(3)): one datagram per state change to
/// the AF_UNIX socket named by <c>$NOTIFY_SOCKET</c> (a path, or "@name" for the abstract
/// namespace), newline-separated <c>KEY=VALUE</c> assignments such as <c>READY=1</c>,
/// <c>STOPPING=1</c>, <c>WATCHDOG=1</c>, <c>RELOADING=1</c>, <c>STATUS=…</c>. Without the
/// variable (not started by systemd with <c>Type=notify</c>) every call does nothing. The protocol
/// is written here, not taken from libsystemd: it is these few lines, and testable without systemd.
/// Sends never block: the socket is non-blocking and a message the manager cannot take is counted.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endPoint;
    private readonly Lock _lock = new();
    private long _failures;

    private SystemdNotifier(Socket? socket, UnixDomainSocketEndPoint? endPoint, long watchdogUsec, string? setupProblem)
    {
        _socket = socket;
        _endPoint = endPoint;
        WatchdogUsec = watchdogUsec;
        SetupProblem = setupProblem;
    }

    /// <summary>True when a service manager listens ($NOTIFY_SOCKET was set and usable).</summary>
    public bool Enabled => _socket is not null;

    /// <summary>
    /// The watchdog period the manager asked for (<c>$WATCHDOG_USEC</c>, for this process when
    /// <c>$WATCHDOG_PID</c> names it or is unset), in microseconds; 0 when no watchdog is wanted.
    /// </summary>
    public long WatchdogUsec { get; }

    /// <summary>Why $NOTIFY_SOCKET or $WATCHDOG_USEC could not be used (null when fine or unset).</summary>
    public string? SetupProblem { get; }

    /// <summary>Messages the manager's socket refused (full, gone).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>From this process's environment.</summary>
    public static SystemdNotifier FromEnvironment() => Create(
        Environment.GetEnvironmentVariable("NOTIFY_SOCKET"),
        Environment.GetEnvironmentVariable("WATCHDOG_USEC"),
        Environment.GetEnvironmentVariable("WATCHDOG_PID"),
        Environment.ProcessId);

    /// <summary>From the given values of $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID (tests).</summary>
    public static SystemdNotifier Create(string? notifySocket, string? watchdogUsec, string? watchdogPid, int pid)
    {
        long watchdog = 0;
        string? problem = null;
        if (!string.IsNullOrEmpty(watchdogUsec))
        {
            bool forUs = string.IsNullOrEmpty(watchdogPid)
                || (int.TryParse(watchdogPid, NumberStyles.None, CultureInfo.InvariantCulture, out int wanted) && wanted == pid);
            if (!long.TryParse(watchdogUsec, NumberStyles.None, CultureInfo.InvariantCulture, out long usec) || usec <= 0)
                problem = $"WATCHDOG_USEC={watchdogUsec} is not a positive number of microseconds: no watchdog";
            else if (forUs)
                watchdog = usec;
        }
        if (string.IsNullOrEmpty(notifySocket))
            return new SystemdNotifier(null, null, 0, problem);
        // "@name" is the abstract namespace: a leading NUL in the address.
        string address = notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket;
        if (address[0] != '/' && address[0] != '\0')
            return new SystemdNotifier(null, null, 0, $"NOTIFY_SOCKET={notifySocket} is neither a path nor an abstract name: not notifying the service manager");
        Socket socket;
        try
        {
            socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
        }
        catch (SocketException e)
        {
            return new SystemdNotifier(null, null, 0, $"NOTIFY_SOCKET: {e.Message}");
        }
        return new SystemdNotifier(socket, new UnixDomainSocketEndPoint(address), watchdog, problem);
    }

    /// <summary>Startup finished: the service is doing its job (sent once the queues are bound and the rules installed).</summary>
    public void Ready(string status) => Send($"READY=1\nSTATUS={status}");

    /// <summary>A reload (SIGHUP) began; <see cref="Ready"/> ends it. MONOTONIC_USEC is what Type=notify-reload wants with it.</summary>
    public void Reloading() =>
        Send(string.Create(CultureInfo.InvariantCulture, $"RELOADING=1\nMONOTONIC_USEC={MonotonicUsec()}"));

    /// <summary>The stop began.</summary>
    public void Stopping(string status) => Send($"STOPPING=1\nSTATUS={status}");

    /// <summary>Still alive: only call when the work itself made progress, never from a bare timer.</summary>
    public void Watchdog() => Send("WATCHDOG=1");

    /// <summary>A free-form status line (`systemctl status` shows it).</summary>
    public void Status(string status) => Send($"STATUS={status}");

    /// <summary>Sends one message (any KEY=VALUE lines). False when not enabled or refused (counted).</summary>
    public bool Send(string message)
    {
        if (_socket is null)
            return false;
        byte[] bytes = Encoding.UTF8.GetBytes(message);
        try
        {
            // One writer at a time keeps messages whole; the socket is non-blocking, so nobody waits long.
            lock (_lock)
                _socket.SendTo(bytes, SocketFlags.None, _endPoint!);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _failures);
            return false;
        }
    }

    private static long MonotonicUsec() =>
        // CLOCK_MONOTONIC, as systemd compares it: Stopwatch's timestamp is that clock on Linux.
        (long)(System.Diagnostics.Stopwatch.GetTimestamp() / (double)System.Diagnostics.Stopwatch.Frequency * 1_000_000);

    public void Dispose() => _socket?.Dispose();
}
