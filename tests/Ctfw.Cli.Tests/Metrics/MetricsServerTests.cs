using System.Net;
using System.Net.Sockets;
using Ctfw.Cli.Metrics;

namespace Ctfw.Cli.Tests.Metrics;

public class MetricsServerTests
{
    private sealed class CountingSource : IMetricsSource
    {
        private long _n;

        public IReadOnlyList<KeyValuePair<string, long>> Read() => [new("table.entries", Interlocked.Increment(ref _n))];
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_Loopback_ServesMetricsReadAtEachScrape()
    {
        var endpoint = new MetricsEndpoint(IPAddress.Loopback, FreePort());
        using MetricsServer server = MetricsServer.Start(endpoint, new CountingSource());
        using var http = new HttpClient();

        using HttpResponseMessage response = await http.GetAsync(endpoint.Url);
        string first = await response.Content.ReadAsStringAsync();
        string second = await http.GetStringAsync(endpoint.Url);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.Equal(1, Exposition.Value(Exposition.Parse(first).Samples, "ctfw_conntrack_entries"));
        Assert.Equal(2, Exposition.Value(Exposition.Parse(second).Samples, "ctfw_conntrack_entries"));
    }

    [Fact(Timeout = 30_000)]
    public async Task Start_EveryAddress_ServesOnLoopbackWhateverTheHost()
    {
        const string listen = "0.0.0.0", scrape = "127.0.0.1";
        int port = FreePort();
        Assert.True(MetricsEndpoint.TryParse($"{listen}:{port}", out MetricsEndpoint? endpoint, out string? error), error);
        using MetricsServer server = MetricsServer.Start(endpoint!, new CountingSource());
        using var http = new HttpClient();

        string text = await http.GetStringAsync(new Uri($"http://{scrape}:{port}/metrics"));

        Assert.Equal(1, Exposition.Value(Exposition.Parse(text).Samples, "ctfw_conntrack_entries"));
    }

    [Fact]
    public void Start_PortInUse_OneLineErrorNamingIt()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var endpoint = new MetricsEndpoint(IPAddress.Loopback, ((IPEndPoint)holder.LocalEndpoint).Port);

        IOException e = Assert.Throws<IOException>(() => MetricsServer.Start(endpoint, new CountingSource()));

        Assert.Equal($"--metrics {endpoint}: cannot listen: the port is in use", e.Message);
    }

    [Fact]
    public void Start_AddressNotOnThisHost_OneLineError()
    {
        // TEST-NET-1 (RFC 5737): never configured on a test machine.
        var endpoint = new MetricsEndpoint(IPAddress.Parse("192.0.2.1"), FreePort());

        IOException e = Assert.Throws<IOException>(() => MetricsServer.Start(endpoint, new CountingSource()));

        Assert.Equal($"--metrics {endpoint}: cannot listen: the address is not on this host (namespace)", e.Message);
    }
}
