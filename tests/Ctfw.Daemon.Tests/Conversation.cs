using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ctfw.Linux;
using Xunit.Abstractions;

namespace Ctfw.Daemon.Tests;

/// <summary>
/// A long-lived conversation across a <see cref="GatewayLab"/>, the proof that an event in the
/// firewall's life (restart, kill -9, reload, takeover, switch-over) keeps established connections:
/// <list type="bullet">
/// <item>TCP: the client sends "m N\n" every 200 ms (or the interval given) on one connection, the server echoes it; every
/// echo must come back, in order, none missing, and neither side may see a reset or an error.</item>
/// <item>UDP: the client sends one "subscribe" datagram, then the server pushes "p N\n" every 200 ms
/// to the client's address. Under <see cref="StrictRules"/> those pushes pass only as ESTABLISHED
/// replies: a firewall that lost the flow's state judges them NEW from outside and drops them.</item>
/// </list>
/// IPv4 only; between any two namespaces (<see cref="ConversationEnds"/>), a <see cref="GatewayLab"/>'s
/// client and server by default. Timeouts here only decide "broken or not"; how long the event took is reported
/// (<see cref="ConversationReport"/>) and recorded (<see cref="RecordGap"/>), never asserted.
/// </summary>
internal sealed class Conversation : IAsyncDisposable
{
    /// <summary>How often the client sends a TCP message and the server pushes a UDP datagram, unless told otherwise.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);

    private readonly TimeSpan _interval;

    /// <summary>Where <see cref="RecordGap"/> writes one file per case, for the integrator to collect.</summary>
    public const string GapDirectory = "/tmp/ctfw-gaps";

    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan s_subscribeEvery = TimeSpan.FromSeconds(1);

    private readonly Lock _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly CancellationTokenSource _sending = new(); // the client's sends and the server's pushes
    private readonly CancellationTokenSource _running = new(); // everything
    private readonly List<Task> _loops = [];
    private readonly Socket _tcpListener;
    private readonly Socket _tcpClient;
    private readonly Socket _udpServer;
    private readonly Socket _udpClient;
    private readonly IPEndPoint _tcpServerEndPoint;
    private Socket? _tcpPeer;
    private bool _disposed;

    // All below under _lock. Message n (from 1) is at index n - 1; an echo time is NaN until it came.
    private readonly List<double> _tcpSentMs = [];
    private readonly List<double> _tcpEchoMs = [];
    private int _tcpEchoed;
    private int _tcpNextExpected = 1;
    private int _tcpOutOfOrder;
    private string? _tcpError;
    private int _udpPushed;
    private readonly List<bool> _udpArrived = [];
    private int _udpReceived;
    private int _udpDuplicates;
    private double _udpSubscribedMs = double.NaN;
    private readonly List<double> _udpArrivalMs = []; // in order of arrival
    private double _eventMs = double.NaN;
    private double _sendingStoppedMs = double.NaN; // no UDP silence after this: nothing was pushed
    private double _endMs = double.NaN; // set when StopAsync has drained: reports then end there
    private TaskCompletionSource _progress = NewSignal();

    private Conversation(ConversationEnds ends, int tcpPort, int udpPort, TimeSpan interval)
    {
        _interval = interval;
        _tcpServerEndPoint = new IPEndPoint(ends.ServerV4, tcpPort);
        (_tcpListener, _udpServer) = NetworkNamespace.Run(NetworkNamespace.PathOf(ends.Server), () =>
        {
            var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                listener.Bind(new IPEndPoint(IPAddress.Any, tcpPort));
                listener.Listen(1);
                udp.Bind(new IPEndPoint(IPAddress.Any, udpPort));
                return (listener, udp);
            }
            catch
            {
                listener.Dispose();
                udp.Dispose();
                throw;
            }
        });
        (_tcpClient, _udpClient) = NetworkNamespace.Run(NetworkNamespace.PathOf(ends.Client), () =>
            (new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp),
             new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp)));
        _udpClient.Connect(new IPEndPoint(ends.ServerV4, udpPort));
    }

    /// <summary>
    /// Under a strict ruleset in iptables-save format: FORWARD policy DROP, INVALID dropped,
    /// RELATED/ESTABLISHED accepted, NEW accepted only for a TCP SYN to the server's
    /// <paramref name="tcpPort"/> and for UDP from the client to the server's <paramref name="udpPort"/>.
    /// <paramref name="moreRules"/> (lines such as "-A FORWARD …") go after those, before COMMIT.
    /// Meant to run with `--set nf_conntrack_tcp_loose=0`, so that a lost TCP entry is not picked up mid-stream.
    /// </summary>
    public static string StrictRules(GatewayLab lab, int tcpPort, int udpPort, params string[] moreRules) =>
        StrictRules(lab.ClientV4, lab.ServerV4, tcpPort, udpPort, moreRules);

    /// <summary>As <see cref="StrictRules(GatewayLab, int, int, string[])"/>, for any client and server address.</summary>
    public static string StrictRules(IPAddress clientV4, IPAddress serverV4, int tcpPort, int udpPort, params string[] moreRules)
    {
        var rules = new StringBuilder();
        rules.Append("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        rules.Append("-A FORWARD -m conntrack --ctstate INVALID -j DROP\n");
        rules.Append("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
        rules.Append(CultureInfo.InvariantCulture,
            $"-A FORWARD -d {serverV4}/32 -p tcp -m tcp --dport {tcpPort} --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j ACCEPT\n");
        rules.Append(CultureInfo.InvariantCulture,
            $"-A FORWARD -s {clientV4}/32 -d {serverV4}/32 -p udp -m udp --dport {udpPort} -m conntrack --ctstate NEW -j ACCEPT\n");
        foreach (string rule in moreRules)
            rules.Append(rule).Append('\n');
        rules.Append("COMMIT\n");
        return rules.ToString();
    }

    /// <summary>
    /// Opens both conversations from the client to the lab's IPv4 server and returns once the first
    /// TCP echo and the first UDP push have arrived (the subscription is repeated every second until
    /// then, in case the path was not open yet). Throws <see cref="TimeoutException"/> after 30 s.
    /// </summary>
    public static Task<Conversation> StartAsync(GatewayLab lab, int tcpPort, int udpPort, CancellationToken token) =>
        StartAsync(new ConversationEnds(lab.Client, lab.Server, lab.ServerV4), tcpPort, udpPort, Interval, token);

    /// <summary>As <see cref="StartAsync(GatewayLab, int, int, CancellationToken)"/>, between any two namespaces, at <paramref name="interval"/>.</summary>
    public static async Task<Conversation> StartAsync(ConversationEnds ends, int tcpPort, int udpPort, TimeSpan interval, CancellationToken token)
    {
        var conversation = new Conversation(ends, tcpPort, udpPort, interval);
        try
        {
            await conversation.OpenAsync(token);
            return conversation;
        }
        catch
        {
            await conversation.DisposeAsync();
            throw;
        }
    }

    private async Task OpenAsync(CancellationToken token)
    {
        using var start = CancellationTokenSource.CreateLinkedTokenSource(token, _running.Token);
        start.CancelAfter(s_startTimeout);
        try
        {
            Task<Socket> accept = _tcpListener.AcceptAsync(start.Token).AsTask();
            await _tcpClient.ConnectAsync(_tcpServerEndPoint, start.Token);
            _tcpPeer = await accept;
            _loops.Add(RunThread("conversation-tcp-echo", TcpEchoLoop));
            _loops.Add(RunThread("conversation-tcp-read", TcpReadLoop));
            _loops.Add(RunThread("conversation-tcp-send", TcpSendLoop));
            _loops.Add(RunThread("conversation-udp-server", UdpServerLoop));
            _loops.Add(RunThread("conversation-udp-receive", UdpReceiveLoop));
            while (true)
            {
                lock (_lock)
                {
                    if (double.IsNaN(_udpSubscribedMs))
                        _udpSubscribedMs = NowMs(); // before it leaves: the first push may come back at once
                }
                try
                {
                    await _udpClient.SendAsync("subscribe"u8.ToArray(), SocketFlags.None, start.Token);
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
                {
                    // An ICMP port unreachable for an earlier subscription, reported on this send.
                }
                if (await WaitForProgressAsync(1, 1, s_subscribeEvery, fromStart: true))
                    return;
                start.Token.ThrowIfCancellationRequested();
            }
        }
        catch (OperationCanceledException) when (!token.IsCancellationRequested)
        {
            throw new TimeoutException($"the conversation did not start within {s_startTimeout.TotalSeconds:F0} s: {Report().Describe()}");
        }
    }

    /// <summary>The client's TCP port (the connection's original source port).</summary>
    public int TcpClientPort => ((IPEndPoint)_tcpClient.LocalEndPoint!).Port;

    /// <summary>The client's UDP port (the stream's original source port).</summary>
    public int UdpClientPort => ((IPEndPoint)_udpClient.LocalEndPoint!).Port;

    /// <summary>
    /// True once at least <paramref name="tcpMessages"/> more echoes and <paramref name="udpMessages"/>
    /// more pushes (distinct numbers) have arrived than had when called; false after <paramref name="timeout"/>.
    /// </summary>
    public Task<bool> WaitForProgressAsync(int tcpMessages, int udpMessages, TimeSpan timeout) =>
        WaitForProgressAsync(tcpMessages, udpMessages, timeout, fromStart: false);

    private async Task<bool> WaitForProgressAsync(int tcpMessages, int udpMessages, TimeSpan timeout, bool fromStart)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        int tcpGoal, udpGoal;
        lock (_lock)
        {
            tcpGoal = (fromStart ? 0 : _tcpEchoed) + tcpMessages;
            udpGoal = (fromStart ? 0 : _udpReceived) + udpMessages;
        }
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_tcpEchoed >= tcpGoal && _udpReceived >= udpGoal)
                    return true;
                changed = _progress.Task;
            }
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
                return false;
            await Task.WhenAny(changed, Task.Delay(TimeSpan.FromMilliseconds(left)));
        }
    }

    /// <summary>
    /// Marks the event under test (call it just before the signal): the longest echo delay and UDP
    /// silence of later reports then cover only what ends at or after it, so that a hiccup before
    /// the event (the conversation's start, say) is not quoted as the event's gap. Counts still
    /// cover the whole conversation.
    /// </summary>
    public void MarkEvent()
    {
        lock (_lock)
            _eventMs = NowMs();
    }

    /// <summary>What happened so far; pending echoes and the current UDP silence count up to now.</summary>
    public ConversationReport Report()
    {
        lock (_lock)
            return Snapshot(double.IsNaN(_endMs) ? NowMs() : _endMs);
    }

    /// <summary>
    /// Stops sending and pushing, gives what is in flight up to <paramref name="drain"/> (default 3 s)
    /// to arrive, closes every socket and returns the final report, which ends there.
    /// </summary>
    public async Task<ConversationReport> StopAsync(TimeSpan? drain = null)
    {
        StopSending();
        long deadline = Environment.TickCount64 + (long)(drain ?? TimeSpan.FromSeconds(3)).TotalMilliseconds;
        while (true)
        {
            Task changed;
            lock (_lock)
            {
                if (_tcpEchoed == _tcpSentMs.Count && _udpArrived.Count == _udpPushed && _udpReceived == _udpPushed)
                    break;
                changed = _progress.Task;
            }
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
                break;
            await Task.WhenAny(changed, Task.Delay(TimeSpan.FromMilliseconds(left)));
        }
        lock (_lock)
        {
            if (double.IsNaN(_endMs))
                _endMs = NowMs();
        }
        await CloseAsync();
        return Report();
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
            return;
        _disposed = true;
        StopSending();
        lock (_lock)
        {
            if (double.IsNaN(_endMs))
                _endMs = NowMs();
        }
        await CloseAsync();
        _sending.Dispose();
        _running.Dispose();
    }

    private void StopSending()
    {
        lock (_lock)
        {
            if (double.IsNaN(_sendingStoppedMs))
                _sendingStoppedMs = NowMs();
        }
        _sending.Cancel();
    }

    private async Task CloseAsync()
    {
        if (_running.IsCancellationRequested)
            return;
        _sending.Cancel();
        _running.Cancel();
        foreach (Socket? s in (Socket?[])[_tcpClient, _tcpPeer, _tcpListener, _udpClient, _udpServer])
            s?.Dispose();
        // The loops end on their closed sockets (or at the end of the pause); none of them throws.
        try
        {
            await Task.WhenAll(_loops).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
            // Their sockets are closed; a loop still stuck cannot touch the test any more.
        }
    }

    /// <summary>
    /// Writes the case's measured gap (longest TCP echo delay, longest UDP silence) and the whole
    /// report to the test log and to <see cref="GapDirectory"/>/<paramref name="caseName"/>.txt.
    /// </summary>
    public static void RecordGap(ITestOutputHelper output, string caseName, ConversationReport report)
    {
        string line = string.Create(CultureInfo.InvariantCulture,
            $"gap {caseName}: longest TCP echo delay {report.FormatEchoDelay()}, longest UDP silence {report.FormatSilence()} ({report.Describe()})");
        output.WriteLine(line);
        Directory.CreateDirectory(GapDirectory);
        File.WriteAllText(Path.Combine(GapDirectory, caseName + ".txt"), line + "\n");
    }

    private ConversationReport Snapshot(double endMs)
    {
        double from = double.IsNaN(_eventMs) ? double.NegativeInfinity : _eventMs;
        int missing = 0, unanswered = 0;
        double longestDelay = 0;
        bool delayOpen = false;
        int highestEchoed = 0;
        for (int i = _tcpEchoMs.Count - 1; i >= 0; i--)
        {
            if (!double.IsNaN(_tcpEchoMs[i]))
            {
                highestEchoed = i + 1;
                break;
            }
        }
        for (int i = 0; i < _tcpSentMs.Count; i++)
        {
            bool echoed = !double.IsNaN(_tcpEchoMs[i]);
            if (!echoed)
            {
                if (i + 1 < highestEchoed)
                    missing++;
                else
                    unanswered++;
            }
            double answeredAt = echoed ? _tcpEchoMs[i] : endMs;
            double delay = answeredAt - _tcpSentMs[i];
            if (answeredAt >= from && delay > longestDelay)
            {
                longestDelay = delay;
                delayOpen = !echoed;
            }
        }

        List<int> lost = [];
        for (int i = 0; i < _udpArrived.Count; i++)
        {
            if (!_udpArrived[i])
                lost.Add(i + 1);
        }
        double silence = 0;
        bool silenceOpen = false;
        double since = _udpSubscribedMs;
        foreach (double arrival in _udpArrivalMs)
        {
            if (arrival >= from)
                silence = Math.Max(silence, arrival - since);
            since = arrival;
        }
        double silenceEnd = double.IsNaN(_sendingStoppedMs) ? endMs : Math.Min(endMs, _sendingStoppedMs);
        if (!double.IsNaN(since) && silenceEnd - since > silence)
        {
            silence = silenceEnd - since;
            silenceOpen = true;
        }

        return new ConversationReport
        {
            TcpSent = _tcpSentMs.Count,
            TcpEchoed = _tcpEchoed,
            TcpMissing = missing,
            TcpOutOfOrder = _tcpOutOfOrder,
            TcpUnanswered = unanswered,
            TcpError = _tcpError,
            LongestEchoDelayMs = longestDelay,
            LongestEchoDelayOpen = delayOpen,
            UdpPushed = _udpPushed,
            UdpReceived = _udpReceived,
            UdpLostNumbers = lost,
            UdpTrailing = _udpPushed - _udpArrived.Count,
            UdpDuplicates = _udpDuplicates,
            LongestUdpSilenceMs = silence,
            LongestUdpSilenceOpen = silenceOpen,
            FromEvent = !double.IsNaN(_eventMs),
        };
    }

    // The loops run on their own threads with blocking calls: the test's blocking waits (WaitForLine,
    // WaitForExit) can starve the thread pool on a 2-core machine for a second, and a pushed or sent
    // message late for that reason would pass for a gap in the firewall.
    private static Task RunThread(string name, Action loop)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                loop();
            }
            finally
            {
                done.SetResult();
            }
        })
        { Name = name, IsBackground = true };
        thread.Start();
        return done.Task;
    }

    // True when the sending stopped during the interval.
    private bool Pause() => _sending.Token.WaitHandle.WaitOne(_interval);

    private void TcpSendLoop()
    {
        try
        {
            do
            {
                int n;
                lock (_lock)
                {
                    if (_tcpError is not null)
                        return;
                    _tcpSentMs.Add(NowMs());
                    _tcpEchoMs.Add(double.NaN);
                    n = _tcpSentMs.Count;
                }
                _tcpClient.Send(Encoding.ASCII.GetBytes($"m {n}\n"));
            }
            while (!Pause());
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            TcpFailed("client send", e);
        }
    }

    private void TcpReadLoop()
    {
        try
        {
            SocketLines.ReadUntilClosed(_tcpClient, Echoed);
            TcpFailed("client receive", "the server closed the connection");
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            TcpFailed("client receive", e);
        }
    }

    private void Echoed(string line)
    {
        double now = NowMs();
        lock (_lock)
        {
            if (!line.StartsWith("m ", StringComparison.Ordinal)
                || !int.TryParse(line.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                || n < 1 || n > _tcpSentMs.Count)
            {
                _tcpError ??= $"client receive: an echo that was never sent: '{line}'";
                return;
            }
            if (n != _tcpNextExpected)
                _tcpOutOfOrder++;
            _tcpNextExpected = n + 1;
            if (double.IsNaN(_tcpEchoMs[n - 1]))
            {
                _tcpEchoMs[n - 1] = now;
                _tcpEchoed++;
                Signal();
            }
        }
    }

    private void TcpEchoLoop()
    {
        Socket peer = _tcpPeer!;
        byte[] buffer = new byte[4096];
        try
        {
            while (true)
            {
                int got = peer.Receive(buffer);
                if (got == 0)
                {
                    TcpFailed("server receive", "the client closed the connection");
                    return;
                }
                peer.Send(buffer.AsSpan(0, got));
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            TcpFailed("server", e);
        }
    }

    private void UdpServerLoop()
    {
        byte[] buffer = new byte[1500];
        EndPoint subscriber = new IPEndPoint(IPAddress.Any, 0);
        Task? pushing = null;
        try
        {
            while (true)
            {
                int got = _udpServer.ReceiveFrom(buffer, ref subscriber);
                // The first subscription starts the pushes; repeats (sent until the first push arrived) change nothing.
                if (pushing is null && buffer.AsSpan(0, got).SequenceEqual("subscribe"u8))
                {
                    EndPoint to = subscriber;
                    pushing = RunThread("conversation-udp-push", () => UdpPushLoop(to));
                }
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed.
        }
        pushing?.Wait();
    }

    private void UdpPushLoop(EndPoint subscriber)
    {
        try
        {
            do
            {
                int n;
                lock (_lock)
                    n = ++_udpPushed; // counted before it leaves, so a received number is never above it
                _udpServer.SendTo(Encoding.ASCII.GetBytes($"p {n}\n"), subscriber);
            }
            while (!Pause());
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed: an unconnected UDP socket reports no ICMP errors.
        }
    }

    private void UdpReceiveLoop()
    {
        byte[] buffer = new byte[1500];
        while (true)
        {
            int got;
            try
            {
                got = _udpClient.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && !_running.IsCancellationRequested)
            {
                continue; // an ICMP port unreachable for a subscription sent before the server listened
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            Pushed(Encoding.ASCII.GetString(buffer, 0, got));
        }
    }

    private void Pushed(string datagram)
    {
        double now = NowMs();
        lock (_lock)
        {
            if (!datagram.StartsWith("p ", StringComparison.Ordinal) || !datagram.EndsWith('\n')
                || !int.TryParse(datagram.AsSpan(2, datagram.Length - 3), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                || n < 1 || n > _udpPushed)
            {
                return; // not ours
            }
            while (_udpArrived.Count < n)
                _udpArrived.Add(false);
            if (_udpArrived[n - 1])
            {
                _udpDuplicates++;
                return;
            }
            _udpArrived[n - 1] = true;
            _udpReceived++;
            _udpArrivalMs.Add(now);
            Signal();
        }
    }

    private void TcpFailed(string where, Exception e) =>
        TcpFailed(where, e is SocketException se ? $"{se.SocketErrorCode} ({se.Message})" : e.Message);

    private void TcpFailed(string where, string what)
    {
        lock (_lock)
        {
            if (_running.IsCancellationRequested)
                return; // our own close
            _tcpError ??= $"{where}: {what}";
            Signal();
        }
    }

    // Under _lock: wakes every waiter, which then re-checks its goal.
    private void Signal()
    {
        TaskCompletionSource woken = _progress;
        _progress = NewSignal();
        woken.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private double NowMs() => _clock.Elapsed.TotalMilliseconds;
}

/// <summary>Where a <see cref="Conversation"/> runs: the client's and the server's namespaces and the server's address.</summary>
internal readonly record struct ConversationEnds(string Client, string Server, IPAddress ServerV4);

/// <summary>
/// What a <see cref="Conversation"/> saw. TCP messages and UDP pushes are numbered from 1.
/// <list type="bullet">
/// <item>TCP: <see cref="TcpMissing"/> counts messages without an echo though a later one was echoed;
/// <see cref="TcpUnanswered"/> those after the last echoed one (in flight, or stuck behind a broken path).</item>
/// <item>UDP: <see cref="UdpLost"/> counts the gaps among the numbers up to the highest one received
/// (pushed, and something pushed after them arrived, but they did not); <see cref="UdpTrailing"/>
/// those pushed after the highest received one (in flight, or all dropped since).</item>
/// <item>The longest TCP echo delay counts an unanswered message up to the report's end; the longest
/// UDP silence (between the subscription and the first push, then between consecutive arrivals)
/// counts the current silence up to it, or up to the end of the pushes once stopped. A silence of
/// about one interval (200 ms) is the push cadence itself, not a gap. The *Open flags say the
/// longest one had not ended there, so the figure is a lower bound.</item>
/// </list>
/// </summary>
internal sealed record ConversationReport
{
    public int TcpSent { get; init; }
    public int TcpEchoed { get; init; }
    public int TcpMissing { get; init; }
    public int TcpOutOfOrder { get; init; }
    public int TcpUnanswered { get; init; }

    /// <summary>The first reset, socket error or unexpected close either end of the TCP connection saw; null when none.</summary>
    public string? TcpError { get; init; }

    public bool TcpReset => TcpError is not null;
    public double LongestEchoDelayMs { get; init; }
    public bool LongestEchoDelayOpen { get; init; }
    public int UdpPushed { get; init; }
    public int UdpReceived { get; init; }
    public IReadOnlyList<int> UdpLostNumbers { get; init; } = [];
    public int UdpLost => UdpLostNumbers.Count;
    public int UdpTrailing { get; init; }
    public int UdpDuplicates { get; init; }
    public double LongestUdpSilenceMs { get; init; }
    public bool LongestUdpSilenceOpen { get; init; }

    /// <summary>The longest delay and silence cover only what ended at or after <see cref="Conversation.MarkEvent"/>.</summary>
    public bool FromEvent { get; init; }

    /// <summary>Nothing lost, nothing out of order, no reset, everything sent answered (for a report after <see cref="Conversation.StopAsync"/>).</summary>
    public bool Intact => IntactExceptUdp(1, 0);

    /// <summary>As <see cref="Intact"/>, except that the UDP pushes numbered <paramref name="first"/>..<paramref name="last"/> may be lost.</summary>
    public bool IntactExceptUdp(int first, int last)
    {
        foreach (int n in UdpLostNumbers)
        {
            if (n < first || n > last)
                return false;
        }
        return !TcpReset && TcpMissing == 0 && TcpOutOfOrder == 0 && TcpUnanswered == 0 && UdpTrailing == 0 && UdpDuplicates == 0;
    }

    public string FormatEchoDelay() => Format(LongestEchoDelayMs, LongestEchoDelayOpen);

    public string FormatSilence() => Format(LongestUdpSilenceMs, LongestUdpSilenceOpen);

    /// <summary>One line for assertion messages and logs.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"tcp: sent {TcpSent}, echoed {TcpEchoed}, missing {TcpMissing}, out of order {TcpOutOfOrder}, unanswered {TcpUnanswered}, "
        + $"{(TcpError is null ? "no reset" : "error: " + TcpError)}, longest echo delay {FormatEchoDelay()}; "
        + $"udp: pushed {UdpPushed}, received {UdpReceived}, lost {UdpLost}{(UdpLost == 0 ? "" : $" [{string.Join(' ', UdpLostNumbers.Take(10))}{(UdpLost > 10 ? " …" : "")}]")}, trailing {UdpTrailing}, duplicates {UdpDuplicates}, "
        + $"longest silence {FormatSilence()}{(FromEvent ? " (delay and silence from the event on)" : "")}");

    private static string Format(double ms, bool open) =>
        string.Create(CultureInfo.InvariantCulture, $"{(open ? ">= " : "")}{ms:F0} ms{(open ? " (not over)" : "")}");
}
