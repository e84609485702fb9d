using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>One element of an offload set as `nft -j list set` shows it: the flow key and its counter.</summary>
internal readonly record struct OffloadElement(string Source, string Destination, int SourcePort, int DestinationPort, long Packets);

/// <summary>
/// What the offload live tests read from outside the daemon: the kernel's view (`nft` in the
/// gateway namespace) and the daemon's (`ctfw stats`, `ctfw conntrack -L` over its control socket).
/// </summary>
internal static class OffloadProbe
{
    private static readonly TimeSpan s_cliTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The table a daemon of pid <paramref name="pid"/> owns.</summary>
    public static string Table(int pid) => string.Create(CultureInfo.InvariantCulture, $"ctfw-{pid}");

    /// <summary>True when `nft list tables` in the gateway shows `table inet ctfw-PID`.</summary>
    public static bool TableExists(GatewayLab lab, int pid) =>
        Tool.RunIn(lab.Gateway, "nft", "list", "tables").Split('\n').Any(l => l.Trim() == $"table inet {Table(pid)}");

    /// <summary>`nft list table inet ctfw-PID` (empty when the table is gone).</summary>
    public static string ListTable(GatewayLab lab, int pid)
    {
        ToolResult r = Tool.Run(checkExit: false, Tool.InNetns(lab.Gateway, "nft", "list", "table", "inet", Table(pid)));
        return r.ExitCode == 0 ? r.StdOut : "";
    }

    /// <summary>The elements of set <paramref name="set"/> (tcp4, tcp6, udp4, udp6) of the daemon's table, from `nft -j list set`.</summary>
    public static List<OffloadElement> Elements(GatewayLab lab, int pid, string set)
    {
        string json = Tool.RunIn(lab.Gateway, "nft", "-j", "list", "set", "inet", Table(pid), set);
        var elements = new List<OffloadElement>();
        using JsonDocument doc = JsonDocument.Parse(json);
        foreach (JsonElement item in doc.RootElement.GetProperty("nftables").EnumerateArray())
        {
            if (!item.TryGetProperty("set", out JsonElement s) || !s.TryGetProperty("elem", out JsonElement elems))
                continue;
            foreach (JsonElement e in elems.EnumerateArray())
            {
                // With timeouts or counters an element is {"elem": {"val": {...}, "counter": {...}}}; without, the bare value.
                JsonElement value = e, counter = default;
                if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("elem", out JsonElement wrapped))
                {
                    value = wrapped.GetProperty("val");
                    wrapped.TryGetProperty("counter", out counter);
                }
                JsonElement[] parts = [.. value.GetProperty("concat").EnumerateArray()];
                if (parts.Length != 4)
                    throw new InvalidOperationException($"not a saddr . daddr . sport . dport key: {value}");
                long packets = counter.ValueKind == JsonValueKind.Object ? counter.GetProperty("packets").GetInt64() : 0;
                elements.Add(new OffloadElement(parts[0].GetString()!, parts[1].GetString()!, parts[2].GetInt32(), parts[3].GetInt32(), packets));
            }
        }
        return elements;
    }

    /// <summary>`ctfw stats --raw`: every counter by name.</summary>
    public static Dictionary<string, long> Stats(string control)
    {
        var stats = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in Lines(RunCtfw("stats", "--raw", "--control", control).StdOut))
        {
            string[] parts = line.Split(' ');
            Assert.True(parts.Length == 2, $"not a `name value` line: '{line}'");
            stats[parts[0]] = long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
        Assert.True(stats.ContainsKey("offload.flows"), "ctfw stats has no offload counters: " + string.Join(' ', stats.Keys));
        return stats;
    }

    /// <summary>ctfw's listing line of the flow from client port <paramref name="sport"/> to <paramref name="dport"/> (`ctfw conntrack -L -p PROTO`), or null.</summary>
    public static string? Entry(string control, string protocol, int sport, int dport) =>
        Lines(RunCtfw("conntrack", "-L", "--control", control, "-p", protocol).StdOut)
            .SingleOrDefault(l => l.Contains(string.Create(CultureInfo.InvariantCulture, $"sport={sport} dport={dport} "), StringComparison.Ordinal));

    /// <summary>Both directions' packets= of a listing line (accounting on).</summary>
    public static long ListedPackets(string line)
    {
        long total = 0;
        int found = 0;
        foreach (string field in line.Split(' '))
        {
            if (field.StartsWith("packets=", StringComparison.Ordinal))
            {
                total += long.Parse(field.AsSpan("packets=".Length), CultureInfo.InvariantCulture);
                found++;
            }
        }
        Assert.True(found == 2, $"no packets= for both directions in '{line}'");
        return total;
    }

    /// <summary>`ctfw ARGS`, which must exit 0.</summary>
    public static ToolResult RunCtfw(params string[] args)
    {
        ToolResult r = CtfwProcess.Run(s_cliTimeout, args);
        Assert.True(r.ExitCode == 0, $"ctfw {string.Join(' ', args)}: {r}");
        return r;
    }

    /// <summary>
    /// Reads <paramref name="read"/> every 100 ms until <paramref name="done"/> holds and returns that
    /// value; fails with <paramref name="what"/> and the last value after <paramref name="timeout"/>.
    /// </summary>
    public static async Task<T> Until<T>(Func<T> read, Func<T, bool> done, TimeSpan timeout, string what, Func<T, string>? describe = null)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            T value = read();
            if (done(value))
                return value;
            if (Environment.TickCount64 > deadline)
                Assert.Fail($"{what}: not within {timeout.TotalSeconds:F1} s; last: {(describe is null ? value?.ToString() : describe(value))}");
            await Task.Delay(100);
        }
    }

    public static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static string Describe(List<OffloadElement> elements) =>
        elements.Count == 0 ? "no elements" : string.Join("; ", elements);

    public static string Describe(Dictionary<string, long> stats) =>
        string.Join(' ', stats.Where(kv => kv.Key.StartsWith("offload.", StringComparison.Ordinal) || kv.Key == "packets").Select(kv => $"{kv.Key}={kv.Value}"));
}

/// <summary>
/// One TCP connection from the client to a listener in the server namespace, echoed by the server
/// side on a thread of its own; the test decides when a message goes (so it knows when the flow is
/// idle).
/// </summary>
internal sealed class EchoFlow : IDisposable
{
    private readonly Socket _client;
    private readonly Socket _peer;
    private readonly Thread _echo;

    private EchoFlow(Socket client, Socket peer)
    {
        _client = client;
        _peer = peer;
        ClientPort = ((IPEndPoint)client.LocalEndPoint!).Port;
        _echo = new Thread(Echo) { Name = "offload-echo", IsBackground = true };
        _echo.Start();
    }

    public int ClientPort { get; }

    /// <summary>A listener on <paramref name="port"/> in the server namespace (IPv4).</summary>
    public static Socket Listen(GatewayLab lab, int port) => NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            s.Bind(new IPEndPoint(IPAddress.Any, port));
            s.Listen(4);
            return s;
        }
        catch
        {
            s.Dispose();
            throw;
        }
    });

    /// <summary>Connects from the client to <paramref name="listener"/>'s port on the lab's server and accepts there.</summary>
    public static async Task<EchoFlow> OpenAsync(GatewayLab lab, Socket listener)
    {
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        Socket client = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Client),
            () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            Task<Socket> accept = listener.AcceptAsync(cts.Token).AsTask();
            await client.ConnectAsync(new IPEndPoint(lab.ServerV4, port), cts.Token);
            return new EchoFlow(client, await accept);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>Sends <paramref name="message"/> and returns the echo ("timeout" after 5 s, or the socket error).</summary>
    public async Task<string> PingAsync(string message)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        byte[] data = Encoding.ASCII.GetBytes(message);
        byte[] buffer = new byte[data.Length];
        try
        {
            await _client.SendAsync(data, SocketFlags.None, cts.Token);
            int got = 0;
            while (got < buffer.Length)
            {
                int n = await _client.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cts.Token);
                if (n == 0)
                    return "closed";
                got += n;
            }
            return Encoding.ASCII.GetString(buffer);
        }
        catch (OperationCanceledException)
        {
            return "timeout";
        }
        catch (SocketException e)
        {
            return e.SocketErrorCode.ToString();
        }
    }

    private void Echo()
    {
        byte[] buffer = new byte[4096];
        try
        {
            int n;
            while ((n = _peer.Receive(buffer)) > 0)
                _peer.Send(buffer.AsSpan(0, n));
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Closed by the test, or reset.
        }
    }

    public void Dispose()
    {
        _client.Dispose();
        _peer.Dispose();
        _echo.Join(TimeSpan.FromSeconds(5));
    }
}
