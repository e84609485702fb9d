using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Ctfw.Linux.Firewall;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// Two network namespaces, A and B, joined by a veth pair (va in A, vb in B), with IPv4 and IPv6
/// addresses. Everything a test adds (rules, queues, sockets) lives inside them, so deleting both
/// namespaces undoes it all; <see cref="Dispose"/> does that, so does a failed constructor, and so does
/// process exit. Namespaces left by a killed run (ctfwl-PID-* whose PID is gone) are removed when a new
/// lab starts. Needs root.
/// </summary>
public sealed class NetnsLab : IDisposable
{
    public const string Prefix = "ctfwl-";

    private static int s_next;

    private readonly EventHandler _onExit;
    private readonly List<Socket> _sockets = [];
    private bool _disposed;

    public NetnsLab()
    {
        if (!OperatingSystem.IsLinux() || !Environment.IsPrivilegedProcess)
            throw new InvalidOperationException("privileged tests need root on Linux (network namespaces, iptables, NFQUEUE)");
        RemoveLeftovers();
        int n = Interlocked.Increment(ref s_next) % 250;
        string stem = $"{Prefix}{Environment.ProcessId}-{n}";
        A = stem + "-a";
        B = stem + "-b";
        AddressA4 = IPAddress.Parse($"10.78.{n}.1");
        AddressB4 = IPAddress.Parse($"10.78.{n}.2");
        AddressA6 = IPAddress.Parse($"fd78:{n:x}::1");
        AddressB6 = IPAddress.Parse($"fd78:{n:x}::2");
        _onExit = (_, _) => Dispose();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
        try
        {
            Build();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string A { get; }

    public string B { get; }

    public IPAddress AddressA4 { get; }

    public IPAddress AddressB4 { get; }

    public IPAddress AddressA6 { get; }

    public IPAddress AddressB6 { get; }

    /// <summary>Interface index of vb inside B (what NFQA_IFINDEX_INDEV reports for traffic from A).</summary>
    public int VethIndexB { get; private set; }

    public static string Run(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args.Skip(1))
            psi.ArgumentList.Add(a);
        using Process p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {args[0]}");
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException(string.Join(' ', args));
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"`{string.Join(' ', args)}` exited {p.ExitCode}: {stderr.Result.Trim()}");
        return stdout;
    }

    public static string RunIn(string ns, params string[] args) => Run(["nsenter", $"--net=/run/netns/{ns}", "--", .. args]);

    /// <summary>Installs ctfw's NFQUEUE rules inside B.</summary>
    public IptablesInstaller InstallInB(IptablesOptions options) => IptablesInstaller.Install(options with { NetworkNamespace = B });

    /// <summary>A UDP socket created inside <paramref name="ns"/> (it stays there), optionally bound to a port.</summary>
    public Socket Udp(string ns, bool v6, int bindPort = -1)
    {
        Socket s = NetworkNamespace.Run(NetworkNamespace.PathOf(ns), () =>
        {
            var socket = new Socket(v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            if (bindPort >= 0)
                socket.Bind(new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, bindPort));
            return socket;
        });
        _sockets.Add(s);
        s.ReceiveTimeout = 300;
        return s;
    }

    /// <summary>
    /// Datagrams that reached <paramref name="receiver"/>: waits (up to 5 s) until at least
    /// <paramref name="expected"/> arrived, then until the socket has been quiet for its receive timeout,
    /// so extra arrivals are seen too.
    /// </summary>
    public static List<string> Drain(Socket receiver, int expected = 0)
    {
        List<string> got = [];
        byte[] buffer = new byte[2048];
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                int n = receiver.Receive(buffer);
                got.Add(System.Text.Encoding.ASCII.GetString(buffer, 0, n));
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                if (got.Count >= expected || clock.Elapsed > TimeSpan.FromSeconds(5))
                    return got;
            }
        }
    }

    private void Build()
    {
        foreach (string ns in (string[])[A, B])
        {
            Run("ip", "netns", "add", ns);
            RunIn(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0");
            Run("ip", "-n", ns, "link", "set", "lo", "up");
        }
        Run("ip", "-n", A, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", B);
        Run("ip", "-n", A, "addr", "add", $"{AddressA4}/24", "dev", "va");
        Run("ip", "-n", B, "addr", "add", $"{AddressB4}/24", "dev", "vb");
        Run("ip", "-n", A, "addr", "add", $"{AddressA6}/64", "dev", "va", "nodad");
        Run("ip", "-n", B, "addr", "add", $"{AddressB6}/64", "dev", "vb", "nodad");
        Run("ip", "-n", A, "link", "set", "va", "up");
        Run("ip", "-n", B, "link", "set", "vb", "up");
        string index = Run("ip", "-n", B, "-o", "link", "show", "dev", "vb").Split(':')[0];
        VethIndexB = int.Parse(index, CultureInfo.InvariantCulture);
    }

    /// <summary>Deletes lab namespaces whose creating process no longer exists.</summary>
    public static void RemoveLeftovers()
    {
        foreach (string line in Run("ip", "netns", "list").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string name = line.Split(' ', 2)[0];
            if (!name.StartsWith(Prefix, StringComparison.Ordinal))
                continue;
            string pid = name[Prefix.Length..].Split('-')[0];
            if (int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int p) && p != Environment.ProcessId && Directory.Exists($"/proc/{p}"))
                continue;
            if (p == Environment.ProcessId)
                continue; // a lab of this run that is still in use
            TryDelete(name);
        }
    }

    private static void TryDelete(string ns)
    {
        try
        {
            Run("ip", "netns", "del", ns);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        foreach (Socket s in _sockets)
            s.Dispose();
        TryDelete(A);
        TryDelete(B);
    }
}
