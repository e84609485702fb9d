using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ctfw.Lab.Traffic;
using Ctfw.Linux;

namespace Ctfw.Lab.Flood;

/// <summary>
/// One long-lived TCP conversation from the client namespace to the server's echo port: "m N\n"
/// every 200 ms, each echoed back. It survived a run when neither end saw a reset or error and every
/// message sent was echoed, in order, by the end of the drain (<see cref="StopAndDrain"/>). The
/// loops run on threads of their own with blocking calls, so a busy thread pool cannot pass for a gap.
/// </summary>
public sealed class EchoConversation : IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    private readonly Lock _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly ManualResetEventSlim _stopSending = new();
    private readonly Socket _socket;
    private readonly List<double> _sentMs = []; // message n at n - 1
    private readonly List<double> _echoMs = []; // NaN until echoed
    private Thread? _sender;
    private Thread? _reader;
    private int _echoed;
    private int _nextExpected = 1;
    private int _outOfOrder;
    private string? _error;
    private bool _closing;

    private EchoConversation(Socket socket)
    {
        _socket = socket;
    }

    /// <summary>Connects from <paramref name="clientNamespace"/> and starts talking; throws when the connection fails within <paramref name="timeout"/>.</summary>
    public static EchoConversation Open(string clientNamespace, IPEndPoint server, TimeSpan timeout)
    {
        Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(clientNamespace),
            () => new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        try
        {
            using var cts = new CancellationTokenSource(timeout);
            socket.ConnectAsync(server, cts.Token).AsTask().GetAwaiter().GetResult();
            socket.NoDelay = true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            throw new TimeoutException($"conversation to {server}: {e.Message}", e);
        }
        var conversation = new EchoConversation(socket);
        conversation._reader = new Thread(conversation.ReadLoop) { Name = "hostile-conversation-read", IsBackground = true };
        conversation._sender = new Thread(conversation.SendLoop) { Name = "hostile-conversation-send", IsBackground = true };
        conversation._reader.Start();
        conversation._sender.Start();
        return conversation;
    }

    /// <summary>True once the first <paramref name="count"/> messages were echoed; false after <paramref name="timeout"/> or an error.</summary>
    public bool WaitForEchoes(int count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            lock (_lock)
            {
                if (_error is not null)
                    return false;
                if (_echoed >= count)
                    return true;
            }
            Thread.Sleep(20);
        }
        return false;
    }

    /// <summary>
    /// Stops sending, then waits up to <paramref name="drain"/> for every sent message to be echoed
    /// (TCP's retransmission backoff after a loss is seconds long). Returns the report.
    /// </summary>
    public ConversationFigures StopAndDrain(TimeSpan drain)
    {
        _stopSending.Set();
        _sender?.Join();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < drain)
        {
            lock (_lock)
            {
                if (_error is not null || _echoed >= _sentMs.Count)
                    break;
            }
            Thread.Sleep(20);
        }
        return Report(clock.Elapsed);
    }

    private ConversationFigures Report(TimeSpan drained)
    {
        lock (_lock)
        {
            double now = _clock.Elapsed.TotalMilliseconds, longest = 0;
            for (int i = 0; i < _sentMs.Count; i++)
                longest = Math.Max(longest, (double.IsNaN(_echoMs[i]) ? now : _echoMs[i]) - _sentMs[i]);
            return new ConversationFigures(_sentMs.Count, _echoed, _outOfOrder, _error, longest, drained.TotalMilliseconds);
        }
    }

    private void SendLoop()
    {
        try
        {
            do
            {
                int n;
                lock (_lock)
                {
                    if (_error is not null)
                        return;
                    _sentMs.Add(_clock.Elapsed.TotalMilliseconds);
                    _echoMs.Add(double.NaN);
                    n = _sentMs.Count;
                }
                _socket.Send(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"m {n}\n")));
            }
            while (!_stopSending.Wait(Interval));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Failed("send", e);
        }
    }

    private void ReadLoop()
    {
        try
        {
            SocketLines.ReadUntilClosed(_socket, Echoed);
            Failed("receive", "the server closed the connection");
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Failed("receive", e);
        }
    }

    private void Echoed(string line)
    {
        lock (_lock)
        {
            if (!line.StartsWith("m ", StringComparison.Ordinal)
                || !int.TryParse(line.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                || n < 1 || n > _sentMs.Count)
            {
                _error ??= $"an echo that was never sent: '{line}'";
                return;
            }
            if (n != _nextExpected)
                _outOfOrder++;
            _nextExpected = n + 1;
            if (double.IsNaN(_echoMs[n - 1]))
            {
                _echoMs[n - 1] = _clock.Elapsed.TotalMilliseconds;
                _echoed++;
            }
        }
    }

    private void Failed(string where, Exception e) =>
        Failed(where, e is SocketException se ? $"{se.SocketErrorCode} ({se.Message})" : e.Message);

    private void Failed(string where, string what)
    {
        lock (_lock)
        {
            if (!_closing)
                _error ??= $"{where}: {what}";
        }
    }

    public void Dispose()
    {
        lock (_lock)
            _closing = true;
        _stopSending.Set();
        _socket.Dispose();
        _sender?.Join();
        _reader?.Join();
        _stopSending.Dispose();
    }
}

/// <summary>What one <see cref="EchoConversation"/> saw.</summary>
/// <param name="Error">The first reset, socket error or unexpected close; null when none.</param>
/// <param name="LongestEchoDelayMs">The longest time from a message's send to its echo (an unanswered one counts up to the report).</param>
/// <param name="DrainMs">How long the drain after the flood waited for the last echoes.</param>
public sealed record ConversationFigures(int Sent, int Echoed, int OutOfOrder, string? Error, double LongestEchoDelayMs, double DrainMs)
{
    /// <summary>No error, nothing out of order, every message echoed.</summary>
    public bool Survived => Error is null && OutOfOrder == 0 && Echoed == Sent;

    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"{(Survived ? "survived" : "BROKEN")}: sent {Sent}, echoed {Echoed}{(OutOfOrder > 0 ? $", out of order {OutOfOrder}" : "")}, longest echo delay {LongestEchoDelayMs:F0} ms, drain {DrainMs:F0} ms{(Error is null ? "" : ", error: " + Error)}");
}
