using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Ctfw.Cli.Metrics;

/// <summary>
/// Where <c>--metrics</c> listens: <c>ADDR:PORT</c> with an IP literal (<c>[v6]:PORT</c> for IPv6);
/// <c>0.0.0.0</c> or <c>[::]</c> listen on every address. Host names are refused: a firewall's metrics
/// port should not depend on a resolver at start.
/// </summary>
internal sealed record MetricsEndpoint(IPAddress Address, int Port)
{
    public bool IsAny => Address.Equals(IPAddress.Any) || Address.Equals(IPAddress.IPv6Any);

    /// <summary>The HttpListener prefix host: <c>+</c> for every address (any Host header), else the literal.</summary>
    public string ListenerHost => IsAny ? "+" : Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address.ToString();

    /// <summary>The URL a scraper on this host would use.</summary>
    public Uri Url
    {
        get
        {
            IPAddress shown = IsAny ? (Address.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback) : Address;
            string host = shown.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{shown}]" : shown.ToString();
            return new Uri(string.Create(CultureInfo.InvariantCulture, $"http://{host}:{Port}/metrics"));
        }
    }

    public override string ToString() => Address.AddressFamily == AddressFamily.InterNetworkV6
        ? string.Create(CultureInfo.InvariantCulture, $"[{Address}]:{Port}")
        : string.Create(CultureInfo.InvariantCulture, $"{Address}:{Port}");

    /// <summary>Parses <c>ADDR:PORT</c>; on failure <paramref name="error"/> says what is wrong in one line.</summary>
    public static bool TryParse(string text, out MetricsEndpoint? endpoint, out string? error)
    {
        endpoint = null;
        error = null;
        int colon = text.LastIndexOf(':');
        if (colon < 0)
        {
            error = $"--metrics: '{text}' is not ADDR:PORT (e.g. 127.0.0.1:9469 or [::1]:9469)";
            return false;
        }
        string host = text[..colon];
        string portText = text[(colon + 1)..];
        if (host.StartsWith('[') && host.EndsWith(']'))
            host = host[1..^1];
        else if (host.Contains(':', StringComparison.Ordinal))
        {
            error = $"--metrics: '{text}': an IPv6 address goes in brackets, e.g. [::1]:9469";
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
        endpoint = new MetricsEndpoint(address, port);
        return true;
    }
}
