using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Ctfw.Cli.Metrics;

/// <summary>
/// Where <c>--metrics</c> listens: <c>ADDR:PORT</c> with an IPv4 literal, <c>0.0.0.0</c> for every
/// IPv4 address. IPv6 is refused: the managed HttpListener under prometheus-net's server rejects an
/// IPv6 literal in its prefix and binds its wildcard to IPv4 only. Host names are refused too: a
/// firewall's metrics port should not depend on a resolver at start.
/// </summary>
internal sealed record MetricsEndpoint(IPAddress Address, int Port)
{
    public bool IsAny => Address.Equals(IPAddress.Any);

    /// <summary>The HttpListener prefix host: <c>+</c> for every address (any Host header), else the literal.</summary>
    public string ListenerHost => IsAny ? "+" : Address.ToString();

    /// <summary>The URL a scraper on this host would use.</summary>
    public Uri Url
    {
        get
        {
            IPAddress shown = IsAny ? IPAddress.Loopback : Address;
            return new Uri(string.Create(CultureInfo.InvariantCulture, $"http://{shown}:{Port}/metrics"));
        }
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Address}:{Port}");

    /// <summary>Parses <c>ADDR:PORT</c>; on failure <paramref name="error"/> says what is wrong in one line.</summary>
    public static bool TryParse(string text, out MetricsEndpoint? endpoint, out string? error)
    {
        endpoint = null;
        error = null;
        int colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            error = $"--metrics: '{text}' is not ADDR:PORT (e.g. 127.0.0.1:9469)";
            return false;
        }
        string host = text[..colon];
        string portText = text[(colon + 1)..];
        if (host.StartsWith('[') && host.EndsWith(']'))
            host = host[1..^1];
        else if (host.Contains(':', StringComparison.Ordinal))
        {
            error = $"--metrics: '{text}': IPv6 is not supported by the metrics listener; give an IPv4 address, or 0.0.0.0 for every one";
            return false;
        }
        if (!IPAddress.TryParse(host, out IPAddress? address))
        {
            error = $"--metrics: '{host}' is not an IP address (host names are not resolved)";
            return false;
        }
        if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            error = $"--metrics: '{portText}' is not a port (1-65535)";
            return false;
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            error = $"--metrics: '{text}': IPv6 is not supported by the metrics listener; give an IPv4 address, or 0.0.0.0 for every one";
            return false;
        }
        endpoint = new MetricsEndpoint(address, port);
        return true;
    }
}
