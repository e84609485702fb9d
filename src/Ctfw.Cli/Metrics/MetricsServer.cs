using System.Net;
using Prometheus;

namespace Ctfw.Cli.Metrics;

/// <summary>
/// <c>ctfw run --metrics ADDR:PORT</c>: serves <c>/metrics</c> over HTTP (prometheus-net's
/// HttpListener server) on its own threads. Nothing here runs on a packet worker.
/// </summary>
internal sealed class MetricsServer : IDisposable
{
    private readonly MetricServer _server;

    private MetricsServer(MetricsEndpoint endpoint, MetricServer server)
    {
        Endpoint = endpoint;
        _server = server;
    }

    public MetricsEndpoint Endpoint { get; }

    /// <summary>
    /// Binds and starts serving. Throws <see cref="IOException"/> with a one-line message when the
    /// address cannot be bound (in use, not on this host, no permission).
    /// </summary>
    public static MetricsServer Start(MetricsEndpoint endpoint, IMetricsSource source)
    {
        var registry = new MetricsRegistry(source);
        var server = new MetricServer(endpoint.ListenerHost, endpoint.Port, "metrics/", registry.Registry);
        try
        {
            server.Start();
        }
        catch (Exception e) when (e is HttpListenerException or System.Net.Sockets.SocketException or InvalidOperationException)
        {
            server.Dispose();
            throw new IOException($"--metrics {endpoint}: cannot listen: {Describe(e)}", e);
        }
        return new MetricsServer(endpoint, server);
    }

    private static string Describe(Exception e)
    {
        // The managed HttpListener turns the bind's SocketException into an HttpListenerException
        // whose ErrorCode may be the SocketError or the raw errno, depending on the path.
        System.Net.Sockets.SocketError? error = e switch
        {
            System.Net.Sockets.SocketException s => s.SocketErrorCode,
            HttpListenerException { InnerException: System.Net.Sockets.SocketException s } => s.SocketErrorCode,
            HttpListenerException h => h.ErrorCode switch
            {
                98 => System.Net.Sockets.SocketError.AddressAlreadyInUse, // EADDRINUSE
                99 => System.Net.Sockets.SocketError.AddressNotAvailable, // EADDRNOTAVAIL
                13 => System.Net.Sockets.SocketError.AccessDenied, // EACCES
                _ => (System.Net.Sockets.SocketError)h.ErrorCode,
            },
            _ => null,
        };
        return error switch
        {
            System.Net.Sockets.SocketError.AddressAlreadyInUse => "the port is in use",
            System.Net.Sockets.SocketError.AddressNotAvailable => "the address is not on this host (namespace)",
            System.Net.Sockets.SocketError.AccessDenied => "permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)",
            _ => e.Message.ReplaceLineEndings(" "),
        };
    }

    private int _disposed;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _server.Dispose();
    }
}
