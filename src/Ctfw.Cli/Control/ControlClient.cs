using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Ctfw.Cli.Control;

/// <summary>The client side of the control protocol (see <see cref="ControlServer"/>).</summary>
internal static class ControlClient
{
    /// <summary>Per operation (connect, send, each read): a daemon that stalls this long is given up on.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);

    /// <inheritdoc cref="TryRequest(string, string, TimeSpan, out string, out string?)"/>
    public static bool TryRequest(string path, string request, out string body, out string? error) =>
        TryRequest(path, request, DefaultTimeout, out body, out error);

    /// <summary>
    /// Sends one request line (without its newline) and reads the whole answer. True with the body
    /// when the daemon answered `ok`; otherwise false with a one-line <paramref name="error"/>: the
    /// daemon's own message after `error: `, or why it could not be reached.
    /// </summary>
    public static bool TryRequest(string path, string request, TimeSpan timeout, out string body, out string? error)
    {
        body = "";
        if (request.Length == 0 || request.AsSpan().ContainsAny('\n', '\r'))
        {
            error = "a request is one non-empty line";
            return false;
        }
        string answer;
        try
        {
            using Socket socket = Connect(path, timeout);
            socket.ReceiveTimeout = Milliseconds(timeout);
            using var stream = new NetworkStream(socket, ownsSocket: false);
            try
            {
                stream.Write(s_utf8.GetBytes(request + "\n"));
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (IOException) when (socket.Available > 0)
            {
                // The server answered without reading (`error: busy`) and closed: its line is here to read.
            }
            answer = ReadAnswer(stream);
        }
        catch (ControlTrustException e)
        {
            error = e.Message;
            return false;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AccessDenied)
        {
            error = ControlTrust.PermissionDenied(path);
            return false;
        }
        catch (SocketException e)
        {
            error = $"cannot connect to {path}: {e.Message}";
            return false;
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.TimedOut or SocketError.WouldBlock })
        {
            error = $"no answer from {path} within {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s";
            return false;
        }
        catch (IOException e)
        {
            error = $"talking to {path}: {e.Message}";
            return false;
        }
        catch (ArgumentException e)
        {
            // UnixDomainSocketEndPoint refuses paths longer than sun_path (108 bytes).
            error = $"bad control socket path {path}: {e.Message}";
            return false;
        }

        int eol = answer.IndexOf('\n', StringComparison.Ordinal);
        string status = eol < 0 ? answer : answer[..eol];
        if (status == "ok")
        {
            body = eol < 0 ? "" : answer[(eol + 1)..];
            error = null;
            return true;
        }
        const string ErrorPrefix = "error: ";
        if (status.StartsWith(ErrorPrefix, StringComparison.Ordinal))
            error = status[ErrorPrefix.Length..];
        else if (answer.Length == 0)
            error = $"{path} closed the connection without answering";
        else
            error = $"unexpected answer from {path}: '{(status.Length > 80 ? status[..80] + "…" : status)}'";
        return false;
    }

    /// <summary>
    /// Connects to the control socket at <paramref name="path"/> once <see cref="ControlTrust"/> finds
    /// it trustworthy, and checks who listens on it. Throws <see cref="ControlTrustException"/> (one
    /// line: what is wrong, how to fix it) when either is not to be believed, <see cref="SocketException"/>
    /// when nothing answers. <paramref name="timeout"/> bounds the connect (a full backlog blocks it).
    /// </summary>
    public static Socket Connect(string path, TimeSpan timeout)
    {
        if (ControlTrust.CheckSocket(path) is { } refusal)
            throw new ControlTrustException(refusal);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.SendTimeout = Milliseconds(timeout);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            if (ControlTrust.CheckServer(socket, path) is { } server)
                throw new ControlTrustException(server);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static int Milliseconds(TimeSpan timeout) => (int)Math.Clamp(timeout.TotalMilliseconds, 1, int.MaxValue);

    /// <summary>
    /// Everything up to end of stream. A reset after some data still counts as the end: the
    /// server closes with part of an oversized request unread, which Linux reports as ECONNRESET
    /// once its answer has been read.
    /// </summary>
    private static string ReadAnswer(NetworkStream stream)
    {
        var answer = new MemoryStream();
        byte[] buffer = new byte[1 << 16];
        while (true)
        {
            int n;
            try
            {
                n = stream.Read(buffer);
            }
            catch (IOException e) when (answer.Length > 0 && e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
            {
                break;
            }
            if (n == 0)
                break;
            answer.Write(buffer, 0, n);
        }
        return s_utf8.GetString(answer.GetBuffer(), 0, (int)answer.Length);
    }

    /// <summary>The daemon's counters, in the order it sent them.</summary>
    public static bool TryGetStats(string path, out List<KeyValuePair<string, long>> stats, out string? error)
    {
        stats = [];
        if (!TryRequest(path, ControlProtocol.Stats, out string body, out error))
            return false;
        stats = ParseStats(body);
        return true;
    }

    /// <summary>`name value` lines; lines that are not are skipped (a newer daemon may say more).</summary>
    public static List<KeyValuePair<string, long>> ParseStats(string body)
    {
        var stats = new List<KeyValuePair<string, long>>();
        foreach (string line in body.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0 && long.TryParse(line.AsSpan(space + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
                stats.Add(new(line[..space], value));
        }
        return stats;
    }

    /// <summary>True when a server accepts connections on <paramref name="path"/> (it sends nothing, which the server ignores).</summary>
    public static bool Answers(string path)
    {
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            return false;
        }
    }
}

/// <summary>A control socket, or the process behind it, that is not to be believed; the message says why and what to do.</summary>
internal sealed class ControlTrustException : IOException
{
    public ControlTrustException()
    {
    }

    public ControlTrustException(string message)
        : base(message)
    {
    }

    public ControlTrustException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
