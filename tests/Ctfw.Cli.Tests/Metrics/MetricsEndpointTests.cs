using System.Net;
using Ctfw.Cli.Metrics;

namespace Ctfw.Cli.Tests.Metrics;

public class MetricsEndpointTests
{
    [Theory]
    [InlineData("127.0.0.1:9469", "127.0.0.1", 9469, "127.0.0.1", "http://127.0.0.1:9469/metrics")]
    [InlineData("0.0.0.0:9469", "0.0.0.0", 9469, "+", "http://127.0.0.1:9469/metrics")]
    public void TryParse_AddressAndPort_Parsed(string text, string address, int port, string listenerHost, string url)
    {
        Assert.True(MetricsEndpoint.TryParse(text, out MetricsEndpoint? endpoint, out string? error), error);
        Assert.Equal(IPAddress.Parse(address), endpoint!.Address);
        Assert.Equal(port, endpoint.Port);
        Assert.Equal(listenerHost, endpoint.ListenerHost);
        Assert.Equal(url, endpoint.Url.ToString());
    }

    [Theory]
    [InlineData("9469", "not ADDR:PORT")]
    [InlineData("localhost:9469", "not an IP address")]
    [InlineData("::1:9469", "IPv6 is not supported")]
    [InlineData("[::]:9469", "IPv6 is not supported")]
    [InlineData("127.0.0.1:0", "not a port")]
    [InlineData("127.0.0.1:65536", "not a port")]
    [InlineData("127.0.0.1:-1", "not a port")]
    [InlineData("127.0.0.1:", "not a port")]
    [InlineData("300.0.0.1:80", "not an IP address")]
    [InlineData("[::1]:9469", "IPv6 is not supported")]
    public void TryParse_Bad_OneLineError(string text, string expected)
    {
        Assert.False(MetricsEndpoint.TryParse(text, out MetricsEndpoint? endpoint, out string? error));
        Assert.Null(endpoint);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.StartsWith("--metrics: ", error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error!);
    }
}
