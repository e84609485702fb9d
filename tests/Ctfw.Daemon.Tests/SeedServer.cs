using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Ctfw.Linux;

namespace Ctfw.Daemon.Tests;

/// <summary>How a read loop on a TCP socket ended, and when (on the clock the test passed in).</summary>
internal readonly record struct ReadEnd(string Outcome, TimeSpan At, long Bytes)
{
    public const string Eof = "eof";
}

/// <summary>
/// An IPv4 TCP listener in a lab's server namespace whose accepted sockets the test drives itself
/// (read to EOF and close, hold open, never read) — unlike <see cref="GatewayLab.Listen"/>'s echo
/// servers. Dispose closes the listener and every accepted socket.
/// </summary>
internal sealed class SeedServer : IDisposable
{
    private readonly Socket _listener;
    private readonly List<Socket> _accepted = [];
    private readonly CancellationTokenSource _stop = new();

    private SeedServer(Socket listener)
    {
        _listener = listener;
    }

    /// <summary>
    /// Listens on <paramref name="port"/>. A positive <paramref name="receiveBuffer"/> is set as
    /// SO_RCVBUF before listen(): accepted sockets inherit it, and the window scale the SYN/ACK
    /// offers is chosen from it.
    /// </summary>
    public static SeedServer Listen(GatewayLab lab, int port, int receiveBuffer = 0)
    {
        Socket listener = NetworkNamespace.Run(NetworkNamespace.PathOf(lab.Server), () =>
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (receiveBuffer > 0)
                    s.ReceiveBufferSize = receiveBuffer;
                s.Bind(new IPEndPoint(IPAddress.Any, port));
                s.Listen(16);
                return s;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        });
        return new SeedServer(listener);
    }

    public CancellationToken Stopping => _stop.Token;

    /// <summary>The next connection; throws <see cref="OperationCanceledException"/> after <paramref name="timeout"/>.</summary>
    public async Task<Socket> AcceptAsync(TimeSpan timeout)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        cts.CancelAfter(timeout);
        Socket peer = await _listener.AcceptAsync(cts.Token);
        lock (_accepted)
            _accepted.Add(peer);
        return peer;
    }

    /// <summary>
    /// Reads and discards until EOF (<see cref="ReadEnd.Eof"/>) or an error (the socket error's
    /// name, e.g. ConnectionReset); on EOF closes the socket when <paramref name="closeOnEof"/>.
    /// </summary>
    public static async Task<ReadEnd> Drain(Socket socket, Stopwatch clock, bool closeOnEof, CancellationToken token)
    {
        byte[] buffer = new byte[16384];
        long total = 0;
        try
        {
            while (true)
            {
                int n = await socket.ReceiveAsync(buffer, SocketFlags.None, token);
                if (n == 0)
                {
                    var end = new ReadEnd(ReadEnd.Eof, clock.Elapsed, total);
                    if (closeOnEof)
                        socket.Dispose();
                    return end;
                }
                total += n;
            }
        }
        catch (SocketException e)
        {
            return new ReadEnd(e.SocketErrorCode.ToString(), clock.Elapsed, total);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
            return new ReadEnd("cancelled", clock.Elapsed, total);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        lock (_accepted)
        {
            foreach (Socket s in _accepted)
                s.Dispose();
        }
        _stop.Dispose();
    }
}
