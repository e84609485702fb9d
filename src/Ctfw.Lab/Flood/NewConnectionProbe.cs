using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Lab.Flood;

/// <summary>
/// Opens one TCP connection from the client namespace to the server's echo port every 100 ms slot
/// while running. An attempt succeeds when it connected and one 8-byte echo came back within 3 s of
/// its start: 3 s covers the first SYN retransmission (1 s) and the second (3 s after the first SYN
/// is too late), so one lost SYN or SYN-ACK is tolerated — as a user would, who waits a moment but
/// not through backoff — while a connection that needs two retries counts as failed. Attempts run
/// concurrently, one per slot, so a slow one never delays the next slot.
/// </summary>
public sealed class NewConnectionProbe
{
    public static readonly TimeSpan Slot = TimeSpan.FromMilliseconds(100);
    public static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(3);

    private readonly string _clientNamespace;
    private readonly IPEndPoint _server;
    private readonly List<Task<ProbeAttempt>> _attempts = [];

    public NewConnectionProbe(string clientNamespace, IPEndPoint server)
    {
        _clientNamespace = clientNamespace;
        _server = server;
    }

    /// <summary>Starts one attempt per slot until <paramref name="stop"/>, then waits for the last ones and sums up.</summary>
    public async Task<ProbeFigures> RunAsync(CancellationToken stop)
    {
        var clock = Stopwatch.StartNew();
        int slot = 0;
        while (!stop.IsCancellationRequested)
        {
            _attempts.Add(AttemptAsync(slot));
            slot++;
            TimeSpan next = Slot * slot - clock.Elapsed;
            if (next > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(next, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
        ProbeAttempt[] attempts = await Task.WhenAll(_attempts);
        return ProbeFigures.Of(attempts);
    }

    private async Task<ProbeAttempt> AttemptAsync(int slot)
    {
        var clock = Stopwatch.StartNew();
        Socket socket;
        try
        {
            socket = NetworkNamespace.Run(NetworkNamespace.PathOf(_clientNamespace),
                () => new Socket(_server.AddressFamily, SocketType.Stream, ProtocolType.Tcp));
        }
        catch (Exception e)
        {
            return new ProbeAttempt(slot, false, double.NaN, "socket: " + e.Message);
        }
        using (socket)
        {
            using var cts = new CancellationTokenSource(AttemptTimeout);
            try
            {
                await socket.ConnectAsync(_server, cts.Token);
                double connectMs = clock.Elapsed.TotalMilliseconds;
                byte[] message = "probe-8\n"u8.ToArray();
                await socket.SendAsync(message, SocketFlags.None, cts.Token);
                byte[] buffer = new byte[message.Length];
                int got = 0;
                while (got < buffer.Length)
                {
                    int n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cts.Token);
                    if (n == 0)
                        return new ProbeAttempt(slot, false, connectMs, "closed before the echo");
                    got += n;
                }
                return buffer.AsSpan().SequenceEqual(message)
                    ? new ProbeAttempt(slot, true, connectMs, null)
                    : new ProbeAttempt(slot, false, connectMs, "wrong echo");
            }
            catch (OperationCanceledException)
            {
                return new ProbeAttempt(slot, false, double.NaN, "timeout");
            }
            catch (SocketException e)
            {
                return new ProbeAttempt(slot, false, double.NaN, e.SocketErrorCode.ToString());
            }
        }
    }
}

/// <summary>One probe connection: its 100 ms slot, whether it succeeded, its connect time, why not.</summary>
public sealed record ProbeAttempt(int Slot, bool Succeeded, double ConnectMs, string? Failure);

/// <summary>What the new-connection probe saw.</summary>
/// <param name="LongestFailedRun">The most consecutive failed slots (× 100 ms: the longest time new connections could not be opened).</param>
/// <param name="Failures">Failure reasons with their counts.</param>
public sealed record ProbeFigures(int Attempts, int Successes, int LongestFailedRun, double MedianConnectMs, double MaxConnectMs, IReadOnlyDictionary<string, int> Failures)
{
    /// <summary>Successful slots in per cent of all slots (one attempt per slot).</summary>
    public double SuccessPercent => Attempts == 0 ? 0 : 100.0 * Successes / Attempts;

    public static ProbeFigures Of(IReadOnlyList<ProbeAttempt> attempts)
    {
        int successes = 0, run = 0, longest = 0;
        var failures = new SortedDictionary<string, int>(StringComparer.Ordinal);
        List<double> connects = [];
        foreach (ProbeAttempt a in attempts.OrderBy(a => a.Slot))
        {
            if (a.Succeeded)
            {
                successes++;
                run = 0;
                connects.Add(a.ConnectMs);
            }
            else
            {
                longest = Math.Max(longest, ++run);
                string why = a.Failure ?? "?";
                failures[why] = failures.GetValueOrDefault(why) + 1;
            }
        }
        connects.Sort();
        double median = connects.Count == 0 ? double.NaN : connects[connects.Count / 2];
        double max = connects.Count == 0 ? double.NaN : connects[^1];
        return new ProbeFigures(attempts.Count, successes, longest, median, max, failures);
    }

    public string Describe() => string.Concat(
        $"{Successes}/{Attempts} ({SuccessPercent:F1} % of 100 ms slots), longest run of failed slots {LongestFailedRun}, connect median {MedianConnectMs:F1} ms max {MaxConnectMs:F0} ms",
        Failures.Count == 0 ? "" : ", failures: " + string.Join(", ", Failures.Select(f => $"{f.Key} {f.Value}")));
}
