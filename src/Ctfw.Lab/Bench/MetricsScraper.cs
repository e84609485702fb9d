using System.Diagnostics;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Lab.Bench;

/// <summary>
/// The Prometheus stand-in of the ctfw1m set-up: GETs /metrics from ctfw's <c>--metrics</c> listener
/// at a fixed period on one thread, over a keep-alive connection made inside the gateway namespace
/// (where the listener's loopback is), as a Prometheus server scraping the host would.
/// </summary>
public sealed class MetricsScraper : IDisposable
{
    /// <summary>Where ctfw1m listens (the gateway namespace's loopback).</summary>
    public const string Endpoint = "127.0.0.1:9469";

    /// <summary>What the scrapes took.</summary>
    public readonly record struct Result(int Scrapes, int Failures, double MeanMs, double MaxMs, long Bytes, string? LastError);

    private readonly HttpClient _http;
    private readonly TimeSpan _period;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _stop = new();
    private int _scrapes;
    private int _failures;
    private double _totalMs;
    private double _maxMs;
    private long _bytes;
    private string? _lastError;

    private MetricsScraper(string netns, TimeSpan period)
    {
        _period = period;
        _http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancel) =>
            {
                Socket socket = NetworkNamespace.Run(NetworkNamespace.PathOf(netns), () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, cancel).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        })
        { Timeout = TimeSpan.FromSeconds(5) };
        _thread = new Thread(Loop) { Name = "bench metrics scraper", IsBackground = true };
    }

    public static MetricsScraper Start(string netns, TimeSpan period)
    {
        var scraper = new MetricsScraper(netns, period);
        scraper._thread.Start();
        return scraper;
    }

    private void Loop()
    {
        var url = new Uri($"http://{Endpoint}/metrics");
        var clock = Stopwatch.StartNew();
        long next = 0;
        while (!_stop.IsCancellationRequested)
        {
            long started = Stopwatch.GetTimestamp();
            try
            {
                byte[] body = _http.GetByteArrayAsync(url, _stop.Token).GetAwaiter().GetResult();
                double ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                _scrapes++;
                _bytes += body.Length;
                _totalMs += ms;
                _maxMs = Math.Max(_maxMs, ms);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                if (_stop.IsCancellationRequested)
                    break;
                _failures++;
                _lastError = e.Message;
            }
            // A fixed rate, not a fixed gap: a slow scrape does not push the next ones back.
            next += (long)_period.TotalMilliseconds;
            long wait = next - clock.ElapsedMilliseconds;
            if (wait > 0)
                _stop.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(wait));
        }
    }

    /// <summary>Stops the scraper and returns its figures (read after the thread has ended).</summary>
    public Result Stop()
    {
        _stop.Cancel();
        _thread.Join();
        return new Result(_scrapes, _failures, _scrapes == 0 ? 0 : _totalMs / _scrapes, _maxMs, _bytes, _lastError);
    }

    public void Dispose()
    {
        if (!_stop.IsCancellationRequested)
            Stop();
        _http.Dispose();
        _stop.Dispose();
    }
}
