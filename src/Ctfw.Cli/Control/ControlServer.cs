using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Ctfw.Conntrack;
using Ctfw.Linux;

namespace Ctfw.Cli.Control;

/// <summary>
/// The control socket of a running daemon: `ctfw stats`, `ctfw conntrack` and `ctfw lab` talk to
/// it. One background thread serves one connection at a time; nothing here is on the packet path.
/// <para>
/// Protocol. An AF_UNIX SOCK_STREAM socket at a path (mode 0600, in a directory only root or the
/// daemon's user can write, checked before binding and by every client: <see cref="ControlTrust"/>);
/// clients running as another uid are answered with an error only.
/// The client sends one request line of UTF-8 ending in `\n` (at most
/// <see cref="ControlProtocol.MaxRequestBytes"/> bytes, within <see cref="ControlProtocol.RequestTimeoutMs"/> ms;
/// end of stream also ends it). Words are separated by tabs (by spaces when the line has no tab,
/// for hand-typed requests):
/// <list type="bullet">
/// <item>`stats` — body: one `name value` line per counter (<see cref="IControlTarget.Stats"/>).</item>
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
/// </list>
/// The server answers `ok\n` and the body, or a single `error: MESSAGE\n`, then closes. A client that
/// connects and closes without a byte gets no answer (that is how liveness is probed).
/// </para>
/// </summary>
internal sealed class ControlServer : IDisposable
{
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private readonly Socket _listener;
    private readonly IControlTarget _target;
    private readonly Thread _thread;
    /// <summary>The connection being served, so Dispose can cut a slow client short.</summary>
    private Socket? _client;
    private int _disposed;

    private ControlServer(string path, Socket listener, IControlTarget target)
    {
        Path = path;
        _listener = listener;
        _target = target;
        _thread = new Thread(Serve) { IsBackground = true, Name = "ctfw control" };
    }

    public string Path { get; }

    /// <summary>
    /// Binds <paramref name="path"/> and starts serving. Creates the directory (0700) when missing
    /// and replaces a socket file nobody answers on. Throws <see cref="IOException"/> with a
    /// one-line message when the directory is one others could write (<see cref="ControlTrust"/>),
    /// something other than a socket is at the path, a live server owns it, or the socket cannot be made.
    /// </summary>
    public static ControlServer Start(string path, IControlTarget target)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("the control socket needs Linux");
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
        // lstat, not File.Exists: a link or a file at the path is not ours to remove.
        Errno existing = UnixIdentity.TryLstat(path, out UnixFileStatus status);
        if (existing == Errno.None && status.Kind != UnixFileKind.Socket)
            throw new IOException($"{path} exists and is not a socket ({ControlTrust.Describe(status.Kind)}); remove it or choose another --control path");
        if (existing == Errno.None)
        {
            if (ControlClient.Answers(path))
                throw new IOException($"control socket {path} is in use by another running ctfw");
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"cannot remove stale control socket {path}: {e.Message}", e);
            }
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        bool bound = false;
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            bound = true;
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            listener.Listen(16);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            listener.Dispose();
            if (bound)
                TryDelete(path);
            throw new IOException($"cannot listen on control socket {path}: {e.Message}", e);
        }
        var server = new ControlServer(path, listener, target);
        server._thread.Start();
        return server;
    }

    /// <summary>Stops serving (an answer in progress is cut off) and removes the socket file.</summary>
    public void Dispose()
    {
        // Exchange: exactly one Dispose proceeds. Full fence: the flag is visible before we read _client
        // below (Serve publishes the client, then reads the flag).
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        // Closing the listener wakes the blocked Accept (the runtime shuts the socket down first).
        _listener.Dispose();
        // Benign race: may read null just as Serve publishes a client; Serve then sees the flag and
        // does not answer, except in the narrow window noted at its Volatile.Write (bounded by the timeouts).
        Volatile.Read(ref _client)?.Dispose();
        _thread.Join();
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

    private void Serve()
    {
        while (Volatile.Read(ref _disposed) == 0) // fresh read each turn of Dispose's flag
        {
            Socket client;
            try
            {
                client = _listener.Accept();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (Volatile.Read(ref _disposed) != 0) // the listener was closed by Dispose: stop quietly
                    return;
                // Out of descriptors or an aborted handshake: do not spin on it.
                Thread.Sleep(100);
                continue;
            }
            using (client)
            {
                // Published so Dispose can close it; a stale read there only closes a finished socket twice, which is harmless.
                // Full fence (Dekker with Dispose's Exchange of _disposed): the client is published
                // before the flag is read below, so either Serve sees the flag or Dispose sees the
                // client and closes it. A release-only write could pass the flag read (store-load
                // reordering, allowed even on x64) and both would miss, leaving Join to wait out the
                // request/send timeouts.
                Interlocked.Exchange(ref _client, client);
                try
                {
                    if (Volatile.Read(ref _disposed) == 0) // see above: pairs with Dispose's Exchange
                        Handle(client);
                }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
                {
                    // The client went away or stopped reading; the next one is unaffected.
                }
                finally
                {
                    Volatile.Write(ref _client, null); // release; Dispose reading the old socket only disposes it twice
                }
            }
        }
    }

    private void Handle(Socket client)
    {
        client.SendTimeout = ControlProtocol.SendTimeoutMs;
        string? refused = ControlTrust.CheckClient(client);
        // An untrusted client's request is read too (bounded as any), never acted on: closing with
        // it unread would reset the connection and cut the refusal off.
        string? line = ReadRequest(client, out string? error);
        if (line == null && error == null)
            return;
        if (refused != null)
            error = refused;
        if (error == null && line!.StartsWith(ControlProtocol.Takeover, StringComparison.Ordinal)
            && (line.Length == ControlProtocol.Takeover.Length || line[ControlProtocol.Takeover.Length] is '\t' or ' '))
        {
            // A conversation, not a request/answer: the target speaks the hand-over protocol itself.
            string[] words = line.Contains('\t', StringComparison.Ordinal) ? line.Split('\t') : line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            _target.HandOver(client, words[1..]);
            return;
        }
        using var output = new StreamWriter(new NetworkStream(client, ownsSocket: false), s_utf8, 1 << 16);
        if (error != null)
            WriteError(output, error);
        else
            Respond(line!, output);
        output.Flush();
        client.Shutdown(SocketShutdown.Send);
    }

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

    private void Respond(string line, StreamWriter output)
    {
        string[] words = line.Contains('\t', StringComparison.Ordinal)
            ? line.Split('\t')
            : line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string verb = words.Length == 0 ? "" : words[0];
        ReadOnlySpan<string> args = words.AsSpan(Math.Min(1, words.Length));
        if ((verb is ControlProtocol.Stats or ControlProtocol.Flush or ControlProtocol.ReloadSysctls or ControlProtocol.ZeroCounters) && args.Length > 0)
        {
            WriteError(output, $"{verb} takes no arguments");
            return;
        }
        try
        {
            switch (verb)
            {
                case ControlProtocol.Stats:
                    WriteStats(output, _target.Stats());
                    break;
                case ControlProtocol.List:
                    List(output, args.ToArray());
                    break;
                case ControlProtocol.Delete:
                    Delete(output, args.ToArray());
                    break;
                case ControlProtocol.Flush:
                    int removed = _target.Flush();
                    output.Write(string.Create(CultureInfo.InvariantCulture, $"ok\n{removed}\n"));
                    break;
                case ControlProtocol.ReloadSysctls:
                    if (_target.ReloadSysctls() is string reloadError)
                        WriteError(output, reloadError);
                    else
                        output.Write("ok\n");
                    break;
                case ControlProtocol.Reload:
                    ReloadResult reload = _target.Reload();
                    if (reload.Ok)
                        output.Write($"ok\n{reload.Message.ReplaceLineEndings(" ")}\n");
                    else
                        WriteError(output, reload.Message);
                    break;
                case ControlProtocol.Rules:
                    ListRules(output, args);
                    break;
                case ControlProtocol.ZeroCounters:
                    _target.ZeroCounters();
                    output.Write("ok\n");
                    break;
                case "":
                    WriteError(output, "empty request");
                    break;
                default:
                    WriteError(output, $"unknown request '{Shorten(verb)}' (expected {ControlProtocol.Stats}, {ControlProtocol.List}, {ControlProtocol.Flush}, {ControlProtocol.Delete}, {ControlProtocol.Reload}, {ControlProtocol.ReloadSysctls}, {ControlProtocol.Rules} or {ControlProtocol.ZeroCounters})");
                    break;
            }
        }
        catch (Exception e) when (e is not (SocketException or IOException or ObjectDisposedException))
        {
            // The daemon failed, not the connection. Every branch calls the target before it
            // writes `ok`, so the error is the whole answer.
            WriteError(output, $"{verb} failed: {e.Message}");
        }
    }

    private void ListRules(StreamWriter output, ReadOnlySpan<string> args)
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
        string listing = _target.ListRules(verbose, exact, zero);
        output.Write("ok\n");
        output.Write(listing);
    }

    private void Delete(StreamWriter output, string[] args)
    {
        ConntrackFilter? filter = ConntrackFilter.Parse(args, out string? error);
        if (filter == null)
        {
            WriteError(output, error!);
            return;
        }
        List<FlowInfo> deleted = _target.Delete((flow, now) => filter.Matches(flow, now), out _);
        ListingOptions options = _target.ListingOptions;
        output.Write("ok\n");
        foreach (FlowInfo flow in deleted)
        {
            output.Write(ConntrackListing.Format(flow, options));
            output.Write('\n');
        }
    }

    private void List(StreamWriter output, string[] args)
    {
        ConntrackFilter? filter = ConntrackFilter.Parse(args, out string? error);
        if (filter == null)
        {
            WriteError(output, error!);
            return;
        }
        List<FlowInfo> flows = _target.Snapshot(out long nowMs);
        ListingOptions options = _target.ListingOptions;
        output.Write("ok\n");
        foreach (FlowInfo flow in flows)
        {
            if (filter.Matches(flow, nowMs))
            {
                output.Write(ConntrackListing.Format(flow, options));
                if (filter.Annotates)
                    output.Write(filter.Annotate(flow, nowMs));
                output.Write('\n');
            }
        }
    }

    private static void WriteStats(StreamWriter output, IReadOnlyList<KeyValuePair<string, long>> stats)
    {
        output.Write("ok\n");
        foreach (KeyValuePair<string, long> stat in stats)
            output.Write(string.Create(CultureInfo.InvariantCulture, $"{stat.Key} {stat.Value}\n"));
    }

    private static void WriteError(StreamWriter output, string message) =>
        output.Write($"error: {message.ReplaceLineEndings(" ")}\n");

    private static string Shorten(string text) => text.Length <= 64 ? text : text[..64] + "…";
}
