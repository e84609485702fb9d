using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Ctfw.Lab.Traffic;
using Ctfw.Linux.Sync;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>
/// A real conntrackd 1.4.7 (FTFW over UDP unicast, port 3780) in namespace B of a <see cref="NetnsLab"/>,
/// with its own config, lock file, UNIX socket and log in a private directory, and a C#
/// <see cref="FtfwSession"/> on a plain UDP socket in namespace A as its peer. Dispose kills the daemon
/// and deletes the directory, whatever happened.
/// </summary>
internal sealed class ConntrackdPeer : IDisposable
{
    public const int Port = 3780;

    private readonly NetnsLab _lab;
    private readonly string _dir;
    private readonly ChildProcess _daemon;
    private readonly Socket _socket;
    private readonly IPEndPoint _peer;
    private readonly byte[] _buffer = new byte[65536];
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public ConntrackdPeer(NetnsLab lab, FtfwSession session, bool trackTrafficInB)
    {
        _lab = lab;
        Session = session;
        _dir = Directory.CreateTempSubdirectory("ctfw-conntrackd-").FullName;
        try
        {
            File.WriteAllText(Config, $$"""
                Sync {
                  Mode FTFW {
                    ResendQueueSize 131072
                    ACKWindowSize 300
                  }
                  UDP {
                    IPv4_address {{lab.AddressB4}}
                    IPv4_Destination_Address {{lab.AddressA4}}
                    Port {{Port}}
                    Interface vb
                    Checksum on
                  }
                }
                General {
                  HashSize 8192
                  HashLimit 65535
                  LogFile {{Path.Combine(_dir, "conntrackd.log")}}
                  Syslog off
                  LockFile {{Path.Combine(_dir, "conntrackd.lock")}}
                  UNIX { Path {{Path.Combine(_dir, "conntrackd.sock")}} }
                  NetlinkBufferSize 2097152
                  NetlinkBufferSizeMaxGrowth 8388608
                }
                """);
            if (trackTrafficInB)
            {
                // Conntrack hooks are registered only when a rule needs them; the sync flow itself is left untracked.
                Tool.RunIn(lab.B, "iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");
                Tool.RunIn(lab.B, "iptables", "-t", "raw", "-A", "PREROUTING", "-p", "udp", "--dport", $"{Port}", "-j", "NOTRACK");
                Tool.RunIn(lab.B, "iptables", "-t", "raw", "-A", "OUTPUT", "-p", "udp", "--dport", $"{Port}", "-j", "NOTRACK");
            }
            _socket = lab.Udp(lab.A, v6: false, bindPort: Port);
            _peer = new IPEndPoint(lab.AddressB4, Port);
            Sink = new UdpSink(_socket, _peer);
            _daemon = ChildProcess.StartIn(lab.B, "conntrackd", ["conntrackd", "-C", Config]);
            string sock = Path.Combine(_dir, "conntrackd.sock");
            var wait = Stopwatch.StartNew();
            while (!File.Exists(sock))
            {
                if (_daemon.HasExited || wait.ElapsedMilliseconds > 5000)
                    throw new InvalidOperationException($"conntrackd did not start: {_daemon.StdOut} {_daemon.StdErr} {Log}");
                Thread.Sleep(20);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public FtfwSession Session { get; }

    public UdpSink Sink { get; }

    public string Config => Path.Combine(_dir, "conntrackd.conf");

    public string Log => File.Exists(Path.Combine(_dir, "conntrackd.log")) ? File.ReadAllText(Path.Combine(_dir, "conntrackd.log")) : "";

    public long Now => _clock.ElapsedMilliseconds;

    /// <summary>A conntrackd client command (-e, -i, -c, -n, -s ...) against this instance.</summary>
    public string Client(params string[] args) => Tool.RunIn(_lab.B, ["conntrackd", "-C", Config, .. args]);

    /// <summary>The kernel's table in B (<c>conntrack -L</c>).</summary>
    public string KernelTable() => Tool.Run(checkExit: false, Tool.InNetns(_lab.B, "conntrack", "-L")).StdOut;

    /// <summary>
    /// Runs the session against the socket — receive, timers, flush — until <paramref name="done"/> holds
    /// or <paramref name="timeoutMs"/> passes. Returns whether it held. A datagram
    /// <paramref name="dropIncoming"/> picks is thrown away unseen (a loss on purpose).
    /// </summary>
    public bool Run(ISyncReceiver receiver, Func<bool> done, int timeoutMs = 5000, IDatagramSink? sink = null,
        Func<ReadOnlySpan<byte>, bool>? dropIncoming = null)
    {
        sink ??= Sink;
        long end = Now + timeoutMs;
        while (Now < end)
        {
            if (_socket.Poll(20_000, SelectMode.SelectRead))
            {
                EndPoint from = new IPEndPoint(IPAddress.Any, 0);
                int n = _socket.ReceiveFrom(_buffer, ref from);
                // The sync port takes messages from the configured peer only.
                if (((IPEndPoint)from).Address.Equals(_peer.Address) && dropIncoming?.Invoke(_buffer.AsSpan(0, n)) != true)
                    Session.Receive(_buffer.AsSpan(0, n), Now, receiver, sink);
            }
            Session.Tick(Now, sink);
            Session.Flush(Now, sink);
            if (done())
                return true;
        }
        return done();
    }

    public void Dispose()
    {
        _daemon?.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal sealed class UdpSink(Socket socket, EndPoint peer) : IDatagramSink
{
    public void Send(ReadOnlySpan<byte> datagram) => socket.SendTo(datagram, SocketFlags.None, peer);
}

/// <summary>Passes datagrams on, except those <see cref="LoseIf"/> picks (counted).</summary>
internal sealed class LossySink(IDatagramSink inner) : IDatagramSink
{
    public Func<ReadOnlySpan<byte>, bool>? LoseIf { get; set; }

    public int Lost { get; private set; }

    public void Send(ReadOnlySpan<byte> datagram)
    {
        if (LoseIf?.Invoke(datagram) == true)
        {
            Lost++;
            return;
        }
        inner.Send(datagram);
    }
}
