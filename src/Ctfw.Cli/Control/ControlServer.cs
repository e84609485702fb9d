using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Ctfw.Conntrack;
using Ctfw.Linux;

namespace Ctfw.Cli.Control;

/// <summary>
/// The control socket of a running daemon: `ctfw stats`, `ctfw conntrack`, `ctfw rules`, `ctfw reload`
/// and `ctfw lab` talk to it. Nothing here is on the packet path.
/// <para>
/// Threads. One thread accepts; each accepted connection is served on a thread of its own, at most
/// <see cref="ControlProtocol.MaxConnections"/> at once (one more waits up to <see cref="BusyWaitMs"/>
/// for a free slot, then is answered `error: busy` and counted in <c>control.busy</c>), so a
/// client that connects and stalls costs its own thread and nobody else's time. Calls into the
/// <see cref="IControlTarget"/> are serialised by one lock (the target sees one request at a time,
/// as before), held only for the call, never while a request is read or an answer written.
/// Conversations (`takeover`, and streams like `events`) run outside that lock; while a takeover
/// runs, reads are served and changes refused (`error: flush refused: a hand-over to another ctfw
/// is in progress; …`), one hand-over at a time. <see cref="Dispose"/> closes the listener and
/// every open connection, then joins the threads.
/// </para>
/// <para>
/// Protocol. An AF_UNIX SOCK_STREAM socket at a path (mode 0600, or 0660 owned by the socket group
/// when <c>--control-group</c> / <c>--control-admin-group</c> is given, see
/// <see cref="ControlAccess.SocketGroup"/>; in a directory only root or the daemon's user can
/// write, checked before binding and by every client: <see cref="ControlTrust"/>).
/// </para>
/// <para>
/// Roles (<see cref="ControlTrust.Classify"/>, from SO_PEERCRED and SO_PEERGROUPS): admin is root,
/// the daemon's own uid, the local `ctfw` service account and members of the admin group; read-only
/// is members of the control group. Read-only clients may send the requests
/// <see cref="ControlProtocol.IsReadOnly"/> accepts (`stats`, `list`, `rules` without `zero`,
/// `events`); any other is answered `error: permission denied: REQUEST needs the admin role (root or
/// group G)`. Anyone else is answered `error: permission denied: …` whatever they ask. Every change
/// (flush, delete, reload, reload-sysctls, zero-counters, rules … zero, takeover) is logged as one
/// line naming who made it (`ctfw: control: flush by uid 1000 (alice) pid 4242: 57 entries removed`);
/// refusals are logged at most once per <see cref="RefusalLogIntervalMs"/> with how many there
/// were, and counted (<c>control.refused</c>, <c>control.denied</c>). Groups are looked up by name
/// in the local /etc/group at start (<see cref="ControlAccess.Resolve"/>); membership is read from
/// SO_PEERGROUPS, fixed by the kernel at connect, rather than /proc/PID/status of a pid that may
/// have exited and been reused, or getgrouplist, which says what the group database lists, not
/// what the client process has.
/// </para>
/// <para>
/// The client sends one request line of UTF-8 ending in `\n` (at most
/// <see cref="ControlProtocol.MaxRequestBytes"/> bytes, within <see cref="ControlProtocol.RequestTimeoutMs"/> ms;
/// end of stream also ends it). Words are separated by tabs (by spaces when the line has no tab,
/// for hand-typed requests):
/// <list type="bullet">
/// <item>`stats` — body: one `name value` line per counter (<see cref="IControlTarget.Stats"/>; the
/// daemon's include this server's <see cref="Counters"/>).</item>
/// <item>`list [ARG]…` — ARGs are <see cref="ConntrackFilter"/> options and values, one per word;
/// body: one `conntrack -L` line (<see cref="ConntrackListing.Format"/>) per matching entry.</item>
/// <item>`flush` — body: one line, the number of entries removed.</item>
/// <item>`delete [ARG]…` — as `list`, but kills the matching entries; body: the killed entries as they were.</item>
/// <item>`reload-sysctls` — empty body.</item>
/// <item>`reload` — re-reads the rules file and the sysctls (<see cref="IControlTarget.Reload"/>); body: one
/// line saying what is in force; an error (the old rules stay) names every <c>file:line:col</c>.</item>
/// <item>`rules [verbose] [exact] [zero]` — body: the ruleset in force with its counters in `iptables -L -n`
/// layout (<see cref="IControlTarget.ListRules"/>; `verbose` is -v, `exact` is -x), zeroed after when `zero` (-L -Z).</item>
/// <item>`zero-counters` — zeroes every rule and policy counter (`iptables -Z`); empty body.</item>
/// <item>`takeover PID` — the upgrade hand-over, a conversation of its own (see <see cref="Daemon.HandoverProtocol"/>).</item>
/// <item>`events [ARG]…` — `conntrack -E`: ARGs are filter words plus `--output FORMAT` and
/// `--event-mask MASK`; `ok`, then event lines (and `lost N` lines) until the client closes
/// (<see cref="ConntrackEventStream"/>, which takes the connection over).</item>
/// <item>`cpu-stats` — `conntrack -S`: one `cpu=N found=…` line per worker.</item>
/// <item>`list-expect [--output json]` — `conntrack -L expect`: one line per live expectation
/// (<see cref="ConntrackListing.FormatExpectation"/>).</item>
/// <item>`flush-expect` — `conntrack -F expect`: body: one line, the number of expectations removed.</item>
/// <item>`sync SUB` — the state sync (<see cref="ControlProtocol.SyncRequests"/>: status, external, commit,
/// resync, flush, bulk); body: the answer's lines.</item>
/// <item>`list` and `delete` also take `--output extended|json`.</item>
/// </list>
/// The server answers `ok\n` and the body, or a single `error: MESSAGE\n`, then closes. A client that
/// connects and closes without a byte gets no answer (that is how liveness is probed).
/// </para>
/// </summary>
internal sealed class ControlServer : IDisposable
{
    /// <summary>Refused or denied requests are logged at most once per this many ms (the rest are counted in that line).</summary>
    public const int RefusalLogIntervalMs = 10_000;

    /// <summary>How long a connection beyond <see cref="ControlProtocol.MaxConnections"/> waits for a slot before it is answered busy.</summary>
    public const int BusyWaitMs = 200;

    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private readonly Socket _listener;
    private readonly IControlTarget _target;
    private readonly ControlAccess _access;
    private readonly Action<string>? _log;
    private readonly Thread _acceptor;
    // Serialises the calls into _target: the target sees one request at a time.
    private readonly Lock _targetLock = new();
    // Guards _connections and the disposed check of the acceptor against Dispose's snapshot.
    private readonly Lock _connectionsLock = new();
    private readonly Dictionary<Socket, Thread> _connections = [];
    // One per connection being served; a thread gives its slot back as its last act, so a client
    // that saw its answer end may connect again a moment before the slot is free: the acceptor
    // waits up to BusyWaitMs for one before it answers busy.
    private readonly SemaphoreSlim _slots = new(ControlProtocol.MaxConnections, ControlProtocol.MaxConnections);
    private bool _disposed;

    // 1 while a `takeover` conversation runs: changing requests are refused meanwhile.
    private int _handingOver;
    // Statistics, bumped with Interlocked by the acceptor and the connection threads and read with
    // Interlocked.Read by Counters(): each is a whole 64-bit value; together they may be a
    // connection apart (no ordering between them is relied on).
    private long _accepted;
    private long _busy;
    private long _refused;
    private long _denied;
    private readonly Lock _refusalLogLock = new();
    private long _refusalLoggedAtMs = long.MinValue / 2;
    private long _refusalsUnlogged;

    private ControlServer(string path, Socket listener, IControlTarget target, ControlAccess access, Action<string>? log)
    {
        Path = path;
        _listener = listener;
        _target = target;
        _access = access;
        _log = log;
        _acceptor = new Thread(Accept) { IsBackground = true, Name = "ctfw control" };
    }

    public string Path { get; }

    /// <summary>Connections being served now.</summary>
    public int Active
    {
        get
        {
            lock (_connectionsLock)
                return _connections.Count;
        }
    }

    /// <summary>Connections answered `error: busy` because <see cref="ControlProtocol.MaxConnections"/> were being served.</summary>
    public long Busy => Interlocked.Read(ref _busy);

    /// <summary>
    /// Binds <paramref name="path"/> and starts serving. Creates the directory (0700, or 0750 owned by
    /// the socket group) when missing and replaces a socket file nobody answers on, if it is ours.
    /// Throws <see cref="IOException"/> with a one-line message when the directory is one others
    /// could write (<see cref="ControlTrust"/>), something other than a socket of our uid is at the path,
    /// a live server owns it, or the socket cannot be made.
    /// </summary>
    /// <param name="access">Who besides root and the daemon's uid is served; null: nobody.</param>
    /// <param name="log">Where the change and refusal lines go (the daemon's non-blocking log queue); null: nowhere.</param>
    public static ControlServer Start(string path, IControlTarget target, ControlAccess? access = null, Action<string>? log = null)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("the control socket needs Linux");
        access ??= ControlAccess.AdminsOnly;
        ControlGroup? group = access.SocketGroup;
        string? dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir) && !Directory.Exists(dir))
        {
            try
            {
                Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"cannot create control socket directory {dir}: {e.Message}", e);
            }
        }
        if (ControlTrust.CheckDirectoryOf(path) is { } unsafeDirectory)
            throw new IOException(unsafeDirectory);
        if (group is not null && !string.IsNullOrEmpty(dir))
            OpenDirectoryToGroup(dir, group);
        RemoveStale(path);
        int swept = ControlPaths.TryParsePid(path, out _) && !string.IsNullOrEmpty(dir) ? SweepDead(dir, path) : 0;

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        bool bound = false;
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            bound = true;
            if (group is not null)
            {
                // Group first, then the mode: the socket is never 0660 with the daemon's own group.
                Errno chgrp = UnixIdentity.TryChangeGroup(path, group.Id);
                if (chgrp != Errno.None)
                    throw new IOException($"cannot give it to group {group.Name} ({group.Id}): {ErrnoException.Describe(chgrp)}");
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
            }
            else
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }
            listener.Listen(ControlProtocol.MaxConnections);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            listener.Dispose();
            if (bound)
                TryDelete(path);
            throw new IOException($"cannot listen on control socket {path}: {e.Message}", e);
        }
        var server = new ControlServer(path, listener, target, access, log) { SweptStale = swept };
        server._acceptor.Start();
        return server;
    }

    /// <summary>Sockets of dead daemons removed from the run directory when this one started (<see cref="SweepDead"/>).</summary>
    public int SweptStale { get; private init; }

    /// <summary>
    /// With a default-named socket (`ctfw-PID.sock`), the run directory's other `ctfw-PID.sock` files
    /// whose daemon is gone: its pid has no /proc entry and nothing answers on it. Each goes only if
    /// <see cref="RemoveStale"/> would remove it (a socket of this uid); the rest stay, silently.
    /// Without this, every daemon that was killed leaves its socket for ever (no later run has its pid).
    /// </summary>
    internal static int SweepDead(string dir, string own)
    {
        string[] files;
        try
        {
            files = Directory.GetFiles(dir, "ctfw-*.sock");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
        int removed = 0;
        foreach (string file in files)
        {
            if (file == own || !ControlPaths.TryParsePid(file, out int pid)
                || Directory.Exists(string.Create(CultureInfo.InvariantCulture, $"/proc/{pid}")))
                continue;
            try
            {
                if (UnixIdentity.TryLstat(file, out _) == Errno.None)
                {
                    RemoveStale(file);
                    if (UnixIdentity.TryLstat(file, out _) == Errno.ENOENT)
                        removed++;
                }
            }
            catch (IOException)
            {
                // Another uid's, not a socket, or in use after all: not ours to remove.
            }
        }
        return removed;
    }

    /// <summary>
    /// Lets the socket group reach a directory of ours: group search and read (0750), never write.
    /// A directory we do not own is left as it is (the operator set it up; systemd's
    /// RuntimeDirectoryMode says who may enter /run/ctfw).
    /// </summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void OpenDirectoryToGroup(string dir, ControlGroup group)
    {
        if (UnixIdentity.TryLstat(dir, out UnixFileStatus status) != Errno.None || status.Kind != UnixFileKind.Directory
            || status.OwnerId != UnixIdentity.EffectiveUserId)
            return;
        const UnixFileMode GroupReadSearch = UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
        if ((status.Mode & UnixFileMode.OtherExecute) != 0 || (status.GroupId == group.Id && (status.Mode & GroupReadSearch) == GroupReadSearch))
            return;
        Errno chgrp = UnixIdentity.TryChangeGroup(dir, group.Id);
        if (chgrp != Errno.None)
            throw new IOException($"cannot give control socket directory {dir} to group {group.Name} ({group.Id}): {ErrnoException.Describe(chgrp)}");
        File.SetUnixFileMode(dir, (status.Mode & ~(UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) | GroupReadSearch);
    }

    /// <summary>
    /// Removes a socket at <paramref name="path"/> that nobody answers on, when it is ours: a socket
    /// (lstat: a link is not followed) owned by this process's uid, in a directory
    /// <see cref="ControlTrust"/> already accepted. Anything else is refused, even for root: a socket
    /// another uid made is that user's (or another ctfw's) to remove.
    /// </summary>
    private static void RemoveStale(string path)
    {
        Errno existing = UnixIdentity.TryLstat(path, out UnixFileStatus status);
        if (existing == Errno.ENOENT)
            return;
        if (existing != Errno.None)
            throw new IOException($"cannot check {path}: {ErrnoException.Describe(existing)}");
        if (status.Kind != UnixFileKind.Socket)
            throw new IOException($"{path} exists and is not a socket ({ControlTrust.Describe(status.Kind)}); remove it or choose another --control path");
        if (ControlClient.Answers(path))
            throw new IOException($"control socket {path} is in use by another running ctfw");
        if (status.OwnerId != UnixIdentity.EffectiveUserId)
        {
            throw new IOException(string.Create(CultureInfo.InvariantCulture,
                $"{path} is a socket nobody answers on but it belongs to uid {status.OwnerId}, not {UnixIdentity.EffectiveUserId} (this ctfw); not removing it: remove it yourself or choose another --control path"));
        }
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot remove stale control socket {path}: {e.Message}", e);
        }
    }

    /// <summary>Stops serving (answers in progress are cut off) and removes the socket file.</summary>
    public void Dispose()
    {
        lock (_connectionsLock)
        {
            if (_disposed)
                return;
            _disposed = true;
        }
        // Closing the listener wakes the blocked Accept (the runtime shuts the socket down first).
        _listener.Dispose();
        _acceptor.Join();
        // The acceptor has ended: no connection is added after this snapshot (it checks _disposed
        // under the same lock before adding one).
        KeyValuePair<Socket, Thread>[] open;
        lock (_connectionsLock)
            open = [.. _connections];
        foreach (KeyValuePair<Socket, Thread> connection in open)
            connection.Key.Dispose(); // wakes a Receive or Send in progress with an error
        foreach (KeyValuePair<Socket, Thread> connection in open)
        {
            if (connection.Value != Thread.CurrentThread) // a conversation that stops the daemon itself
                connection.Value.Join();
        }
        // The runtime unlinks a bound path when it closes the socket; this covers runtimes that do not.
        TryDelete(Path);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Whoever starts next on this path replaces a file nobody answers on.
        }
    }

    private void Accept()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                lock (_connectionsLock)
                {
                    if (_disposed) // the listener was closed by Dispose: stop quietly
                        return;
                }
                // Out of descriptors or an aborted handshake: do not spin on it.
                Thread.Sleep(100);
                continue;
            }
            Interlocked.Increment(ref _accepted);
            if (!_slots.Wait(BusyWaitMs))
            {
                AnswerBusy(client);
                continue;
            }
            lock (_connectionsLock)
            {
                if (_disposed)
                {
                    client.Dispose();
                    return;
                }
                var thread = new Thread(Serve) { IsBackground = true, Name = "ctfw control client" };
                _connections.Add(client, thread);
                thread.Start(client);
            }
        }
    }

    /// <summary>
    /// One line and close, on the accepting thread: a fresh socket's send buffer takes it without
    /// waiting (the timeout bounds the exception). The request is not read, so the client may see
    /// a reset after the line; <see cref="ControlClient"/> counts that as the end of the answer.
    /// </summary>
    private void AnswerBusy(Socket client)
    {
        Interlocked.Increment(ref _busy);
        try
        {
            client.SendTimeout = 100;
            client.Send(s_utf8.GetBytes(string.Create(CultureInfo.InvariantCulture,
                $"error: busy: {ControlProtocol.MaxConnections} control connections in progress; try again\n")));
            client.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The client is gone already.
        }
        finally
        {
            client.Dispose();
        }
        LogRefusal(static () => "a connection answered busy (too many at once)");
    }

    private void Serve(object? state)
    {
        var client = (Socket)state!;
        bool kept = false;
        try
        {
            kept = Handle(client);
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            // The client went away, stopped reading, or Dispose closed it; the others are unaffected.
        }
        finally
        {
            lock (_connectionsLock)
                _connections.Remove(client);
            if (!kept) // an events subscriber's socket belongs to the event stream now (and holds no slot)
                client.Dispose();
            _slots.Release();
        }
    }

    /// <summary>Serves one connection; true when something else took the socket over (`events`).</summary>
    private bool Handle(Socket client)
    {
        client.SendTimeout = ControlProtocol.SendTimeoutMs;
        ControlRole role = ControlTrust.Classify(client, _access, out PeerCredentials peer, out string? refused);
        // An untrusted client's request is read too (bounded as any), never acted on: closing with
        // it unread would reset the connection and cut the refusal off.
        string? line = ReadRequest(client, out string? error);
        if (line == null && error == null)
            return false;
        string[] words = line == null ? [] : Words(line);
        string verb = words.Length == 0 ? "" : words[0];
        if (refused != null)
        {
            Interlocked.Increment(ref _refused);
            LogRefusal(() => $"{Shorten(verb)} refused to {Who(peer)}: not a member of a control group");
            error = refused;
        }
        else if (error == null && role != ControlRole.Admin && !ControlProtocol.IsReadOnly(verb, words.AsSpan(Math.Min(1, words.Length))))
        {
            Interlocked.Increment(ref _denied);
            LogRefusal(() => $"{Shorten(verb)} denied to {Who(peer)}: read-only");
            error = $"permission denied: {Shorten(verb)} needs the admin role ({_access.AdminWho()})";
        }
        bool changes = !ControlProtocol.IsReadOnly(verb, words.AsSpan(Math.Min(1, words.Length)));
        // Fresh read of the flag. Deliberate benign race: a change that read 0 just before a takeover's
        // Exchange runs as the hand-over begins, as any change did before this gate; the gate is for
        // the seconds the hand-over lasts, not its first microseconds.
        if (error == null && changes && Volatile.Read(ref _handingOver) != 0)
        {
            // The table and queues are on their way to another process: a change now would be lost
            // or half-applied there. Reads go on (they never wait for the hand-over).
            error = $"{Shorten(verb)} refused: a hand-over to another ctfw is in progress; try again on the new one";
        }
        if (error == null && verb == ControlProtocol.Takeover)
        {
            // A conversation, not a request/answer, outside the target lock: the target speaks the
            // hand-over protocol itself while other clients are served. One at a time (Exchange:
            // the winner alone sees 0).
            if (Interlocked.Exchange(ref _handingOver, 1) != 0)
            {
                error = "takeover refused: a hand-over to another ctfw is in progress";
            }
            else
            {
                try
                {
                    LogChange(ControlProtocol.Takeover, peer, $"hand-over to pid {string.Join(' ', words[1..])} starts");
                    _target.HandOver(client, words[1..]);
                }
                finally
                {
                    Volatile.Write(ref _handingOver, 0); // release: changes may go on here (the hand-over failed or is done)
                }
                return false;
            }
        }
        if (error == null && verb == ControlProtocol.Events)
        {
            // `conntrack -E`: the event stream takes the connection over (and answers ok or an error itself).
            return _target.StreamEvents(client, words[1..]);
        }
        using var output = new StreamWriter(new NetworkStream(client, ownsSocket: false), s_utf8, 1 << 16);
        if (error != null)
            WriteError(output, error);
        else
            Respond(words, output, peer);
        output.Flush();
        client.Shutdown(SocketShutdown.Send);
        return false;
    }

    private static string[] Words(string line) => line.Contains('\t', StringComparison.Ordinal)
        ? line.Split('\t')
        : line.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// The request line, or null: with an error to answer, or without one when the client closed
    /// before sending anything.
    /// </summary>
    private static string? ReadRequest(Socket client, out string? error)
    {
        error = null;
        byte[] buffer = new byte[ControlProtocol.MaxRequestBytes];
        int length = 0;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            long left = ControlProtocol.RequestTimeoutMs - clock.ElapsedMilliseconds;
            if (left <= 0)
            {
                error = $"no request line within {ControlProtocol.RequestTimeoutMs} ms";
                return null;
            }
            client.ReceiveTimeout = (int)left;
            int n;
            try
            {
                n = client.Receive(buffer, length, buffer.Length - length, SocketFlags.None);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                continue;
            }
            if (n == 0)
                return length == 0 ? null : Decode(buffer.AsSpan(0, length));
            int eol = buffer.AsSpan(length, n).IndexOf((byte)'\n');
            if (eol >= 0)
                return Decode(buffer.AsSpan(0, length + eol));
            length += n;
            if (length == buffer.Length)
            {
                error = $"request longer than {ControlProtocol.MaxRequestBytes} bytes";
                return null;
            }
        }
    }

    private static string Decode(ReadOnlySpan<byte> line)
    {
        if (!line.IsEmpty && line[^1] == '\r')
            line = line[..^1];
        return s_utf8.GetString(line);
    }

    private void Respond(string[] words, StreamWriter output, PeerCredentials peer)
    {
        string verb = words.Length == 0 ? "" : words[0];
        ReadOnlySpan<string> args = words.AsSpan(Math.Min(1, words.Length));
        if ((verb is ControlProtocol.Stats or ControlProtocol.Flush or ControlProtocol.ReloadSysctls or ControlProtocol.ZeroCounters or ControlProtocol.CpuStats or ControlProtocol.FlushExpect) && args.Length > 0)
        {
            WriteError(output, $"{verb} takes no arguments");
            return;
        }
        try
        {
            switch (verb)
            {
                case ControlProtocol.Stats:
                    IReadOnlyList<KeyValuePair<string, long>> stats;
                    lock (_targetLock)
                        stats = _target.Stats();
                    WriteStats(output, stats);
                    break;
                case ControlProtocol.List:
                    List(output, args.ToArray());
                    break;
                case ControlProtocol.Delete:
                    Delete(output, args.ToArray(), peer);
                    break;
                case ControlProtocol.Flush:
                    int removed;
                    lock (_targetLock)
                        removed = _target.Flush();
                    LogChange(verb, peer, string.Create(CultureInfo.InvariantCulture, $"{removed} entries removed"));
                    output.Write(string.Create(CultureInfo.InvariantCulture, $"ok\n{removed}\n"));
                    break;
                case ControlProtocol.ReloadSysctls:
                    string? reloadError;
                    lock (_targetLock)
                        reloadError = _target.ReloadSysctls();
                    LogChange(verb, peer, reloadError is null ? "sysctls re-read" : $"failed: {reloadError}");
                    if (reloadError is not null)
                        WriteError(output, reloadError);
                    else
                        output.Write("ok\n");
                    break;
                case ControlProtocol.Reload:
                    ReloadResult reload;
                    lock (_targetLock)
                        reload = _target.Reload();
                    LogChange(verb, peer, reload.Ok ? reload.Message : $"failed: {reload.Message}");
                    if (reload.Ok)
                        output.Write($"ok\n{reload.Message.ReplaceLineEndings(" ")}\n");
                    else
                        WriteError(output, reload.Message);
                    break;
                case ControlProtocol.Rules:
                    ListRules(output, args, peer);
                    break;
                case ControlProtocol.ZeroCounters:
                    lock (_targetLock)
                        _target.ZeroCounters();
                    LogChange(verb, peer, "rule and policy counters zeroed");
                    output.Write("ok\n");
                    break;
                case ControlProtocol.CpuStats:
                    IReadOnlyList<WorkerCounters> cpus = _target.WorkerStatistics();
                    output.Write("ok\n");
                    foreach (WorkerCounters c in cpus)
                        output.Write(ConntrackListing.FormatCpuStats(c) + "\n");
                    break;
                case ControlProtocol.ListExpect:
                    ListExpectations(output, args.ToArray());
                    break;
                case ControlProtocol.FlushExpect:
                    int expectations;
                    lock (_targetLock)
                        expectations = _target.FlushExpectations();
                    LogChange(verb, peer, string.Create(CultureInfo.InvariantCulture, $"{expectations} expectations removed"));
                    output.Write(string.Create(CultureInfo.InvariantCulture, $"ok\n{expectations}\n"));
                    break;
                case ControlProtocol.Sync:
                    if (args.Length != 1)
                    {
                        WriteError(output, $"sync takes one of {string.Join(", ", ControlProtocol.SyncRequests)}");
                        break;
                    }
                    IReadOnlyList<string>? syncLines;
                    string? syncError;
                    lock (_targetLock)
                        syncLines = _target.SyncRequest(args[0], out syncError);
                    if (args[0] is not (ControlProtocol.SyncStatus or ControlProtocol.SyncExternal))
                        LogChange($"sync {Shorten(args[0])}", peer, syncLines is null ? $"failed: {syncError}" : string.Join("; ", syncLines));
                    if (syncLines is null)
                    {
                        WriteError(output, syncError!);
                        break;
                    }
                    output.Write("ok\n");
                    foreach (string l in syncLines)
                        output.Write(l + "\n");
                    break;
                case "":
                    WriteError(output, "empty request");
                    break;
                default:
                    WriteError(output, $"unknown request '{Shorten(verb)}' (expected {ControlProtocol.Stats}, {ControlProtocol.List}, {ControlProtocol.Flush}, {ControlProtocol.Delete}, {ControlProtocol.Events}, {ControlProtocol.CpuStats}, {ControlProtocol.ListExpect}, {ControlProtocol.FlushExpect}, {ControlProtocol.Reload}, {ControlProtocol.ReloadSysctls}, {ControlProtocol.Rules}, {ControlProtocol.Sync} or {ControlProtocol.ZeroCounters})");
                    break;
            }
        }
        catch (Exception e) when (e is not (SocketException or IOException or ObjectDisposedException))
        {
            // The daemon failed, not the connection. Every branch calls the target before it
            // writes `ok`, so the error is the whole answer.
            LogChange(verb, peer, $"failed: {e.Message}", onlyIfChange: true);
            WriteError(output, $"{verb} failed: {e.Message}");
        }
    }

    private void ListRules(StreamWriter output, ReadOnlySpan<string> args, PeerCredentials peer)
    {
        bool verbose = false, exact = false, zero = false;
        foreach (string arg in args)
        {
            switch (arg)
            {
                case ControlProtocol.RulesVerbose:
                    verbose = true;
                    break;
                case ControlProtocol.RulesExact:
                    exact = true;
                    break;
                case ControlProtocol.RulesZero:
                    zero = true;
                    break;
                default:
                    WriteError(output, $"unknown {ControlProtocol.Rules} argument '{Shorten(arg)}' (expected {ControlProtocol.RulesVerbose}, {ControlProtocol.RulesExact} or {ControlProtocol.RulesZero})");
                    return;
            }
        }
        string listing;
        lock (_targetLock)
            listing = _target.ListRules(verbose, exact, zero);
        if (zero)
            LogChange("rules zero", peer, "listed, then rule and policy counters zeroed");
        output.Write("ok\n");
        output.Write(listing);
    }

    private void Delete(StreamWriter output, string[] args, PeerCredentials peer)
    {
        if (OutputOptions.Split(args, allowMask: false, out OutputFormat format, out _, out args) is string outputError)
        {
            WriteError(output, outputError);
            return;
        }
        ConntrackFilter? filter = ConntrackFilter.Parse(args, out string? error);
        if (filter == null)
        {
            WriteError(output, error!);
            return;
        }
        List<FlowInfo> deleted;
        long deletedAt;
        lock (_targetLock)
            deleted = _target.Delete((flow, now) => filter.Matches(flow, now), out deletedAt);
        LogChange(ControlProtocol.Delete, peer, string.Create(CultureInfo.InvariantCulture,
            $"{deleted.Count} entries removed{(args.Length == 0 ? "" : " (" + Shorten(string.Join(' ', args)) + ")")}"));
        ListingOptions options = _target.ListingOptions;
        output.Write("ok\n");
        foreach (FlowInfo flow in deleted)
        {
            output.Write(OutputOptions.FormatEntry(flow, format, options, deletedAt));
            output.Write('\n');
        }
    }

    private void List(StreamWriter output, string[] args)
    {
        if (OutputOptions.Split(args, allowMask: false, out OutputFormat format, out _, out args) is string outputError)
        {
            WriteError(output, outputError);
            return;
        }
        ConntrackFilter? filter = ConntrackFilter.Parse(args, out string? error);
        if (filter == null)
        {
            WriteError(output, error!);
            return;
        }
        List<FlowInfo> flows;
        long nowMs;
        lock (_targetLock)
            flows = _target.Snapshot(out nowMs);
        ListingOptions options = _target.ListingOptions;
        output.Write("ok\n");
        foreach (FlowInfo flow in flows)
        {
            if (filter.Matches(flow, nowMs))
            {
                output.Write(OutputOptions.FormatEntry(flow, format, options, nowMs));
                if (filter.Annotates && format != OutputFormat.Json)
                    output.Write(filter.Annotate(flow, nowMs));
                output.Write('\n');
            }
        }
    }

    private void ListExpectations(StreamWriter output, string[] args)
    {
        if (OutputOptions.Split(args, allowMask: false, out OutputFormat format, out _, out string[] rest) is string outputError)
        {
            WriteError(output, outputError);
            return;
        }
        if (rest.Length > 0)
        {
            WriteError(output, $"{ControlProtocol.ListExpect} takes no filters ('{Shorten(rest[0])}')");
            return;
        }
        if (format == OutputFormat.Extended)
        {
            WriteError(output, "expectations have no extended format (-o json only)");
            return;
        }
        List<ExpectationInfo> expectations;
        lock (_targetLock)
            expectations = _target.Expectations();
        output.Write("ok\n");
        foreach (ExpectationInfo x in expectations)
        {
            output.Write(format == OutputFormat.Json ? ConntrackListing.FormatExpectationJson(x) : ConntrackListing.FormatExpectation(x));
            output.Write('\n');
        }
    }

    private static void WriteStats(StreamWriter output, IReadOnlyList<KeyValuePair<string, long>> stats)
    {
        output.Write("ok\n");
        foreach (KeyValuePair<string, long> stat in stats)
            output.Write(string.Create(CultureInfo.InvariantCulture, $"{stat.Key} {stat.Value}\n"));
    }

    /// <summary>
    /// The server's own counters, for the target to add to its stats: connections accepted, being
    /// served, answered busy, refused (no role) and denied (a change asked by a read-only client).
    /// </summary>
    public IEnumerable<KeyValuePair<string, long>> Counters()
    {
        yield return new("control.connections", Interlocked.Read(ref _accepted));
        yield return new("control.active", Active);
        yield return new("control.busy", Interlocked.Read(ref _busy));
        yield return new("control.refused", Interlocked.Read(ref _refused));
        yield return new("control.denied", Interlocked.Read(ref _denied));
    }

    /// <summary>"uid 1000 (alice) pid 4242": who a log line is about.</summary>
    private static string Who(PeerCredentials peer) =>
        string.Create(CultureInfo.InvariantCulture, $"uid {peer.UserId}{(UnixIdentity.LocalUserName(peer.UserId) is { } name ? $" ({name})" : "")} pid {peer.ProcessId}");

    /// <summary>One line per change: what, by whom, with what result.</summary>
    private void LogChange(string what, PeerCredentials peer, string result, bool onlyIfChange = false)
    {
        if (_log is null || (onlyIfChange && ControlProtocol.IsReadOnly(what, [])))
            return;
        _log($"ctfw: control: {what} by {Who(peer)}: {result.ReplaceLineEndings(" ")}");
    }

    /// <summary>
    /// A refusal, busy answer or denial: logged at once when none was for <see cref="RefusalLogIntervalMs"/>,
    /// otherwise counted into the next line, so a client hammering the socket cannot flood the log.
    /// </summary>
    private void LogRefusal(Func<string> what)
    {
        if (_log is null)
            return;
        string? line = null;
        lock (_refusalLogLock)
        {
            long now = Environment.TickCount64;
            if (now - _refusalLoggedAtMs >= RefusalLogIntervalMs)
            {
                // Only a line that is written costs the /etc/passwd look-up in what().
                line = _refusalsUnlogged == 0
                    ? $"ctfw: control: {what()}"
                    : string.Create(CultureInfo.InvariantCulture, $"ctfw: control: {what()} (and {_refusalsUnlogged} more refused or busy in the last {RefusalLogIntervalMs / 1000} s)");
                _refusalLoggedAtMs = now;
                _refusalsUnlogged = 0;
            }
            else
            {
                _refusalsUnlogged++;
            }
        }
        if (line is not null)
            _log(line);
    }

    private static void WriteError(StreamWriter output, string message) =>
        output.Write($"error: {message.ReplaceLineEndings(" ")}\n");

    private static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "…";
}
