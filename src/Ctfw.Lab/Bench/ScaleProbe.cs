using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Ctfw.Lab.Network;

namespace Ctfw.Lab.Bench;

/// <summary>What <see cref="ScaleProbe.Fill"/> did: datagrams sent, how long it took, and whether the daemon saw them all.</summary>
public sealed record ScaleFill(int Flows, long Sent, TimeSpan Elapsed, long DaemonPackets, bool TimedOut)
{
    public double PacketsPerSecond => Elapsed > TimeSpan.Zero ? Sent / Elapsed.TotalSeconds : 0;
}

/// <summary>
/// Puts <c>flows</c> distinct UDP flows through the gateway in a few seconds, one datagram each, from a
/// raw socket in the client namespace: source addresses <c>sourceBase</c> + 0..<c>sources</c>-1 and
/// source ports 1024..65535, all to one allowed destination port. Sending is paced by the daemon's own
/// packet counter so that its queue never overflows (an overflowing queue with fail-open would let
/// packets pass unseen and the table would not hold them all). Used by `ctfw bench` to show the
/// daemon's memory with 1 M concurrent flows in its table.
/// </summary>
public static class ScaleProbe
{
    private const int PortsPerSource = 65536 - 1024;
    private const int Step = 4096;

    /// <summary>Sends one UDP datagram per flow; <paramref name="daemonPackets"/> reads the daemon's packet counter (-1 if unknown).</summary>
    public static ScaleFill Fill(string clientNs, IPAddress sourceBase, IPAddress destination, int port, int flows,
        Func<long> daemonPackets, int maxInFlight, TimeSpan timeout, CancellationToken cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(flows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInFlight, Step * 2);
        int sources = (flows + PortsPerSource - 1) / PortsPerSource;
        uint baseAddress = BinaryPrimitives.ReadUInt32BigEndian(sourceBase.GetAddressBytes());
        if ((baseAddress & 0xFF) + (uint)sources > 255)
            throw new ArgumentException($"{flows} flows need {sources} source addresses from {sourceBase}, past the end of its /24");
        using Socket socket = Netns.OpenRawSocket(clientNs, v6: false);
        var to = new IPEndPoint(destination, 0);
        byte[] packet = new byte[20 + 8 + 4];
        Build(packet, destination, port);

        long start = daemonPackets();
        var clock = Stopwatch.StartNew();
        long sent = 0;
        bool timedOut = false;
        for (int f = 0; f < flows && !timedOut; f++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(packet.AsSpan(12), baseAddress + (uint)(f / PortsPerSource));
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20), (ushort)(1024 + (f % PortsPerSource)));
            socket.SendTo(packet, to);
            sent++;
            if (sent % Step == 0)
                timedOut = !WaitFor(() => daemonPackets() - start >= sent - maxInFlight + Step, clock, timeout, cancel);
        }
        if (!timedOut)
            timedOut = !WaitFor(() => daemonPackets() - start >= sent, clock, timeout, cancel);
        return new ScaleFill(flows, sent, clock.Elapsed, daemonPackets() - start, timedOut);
    }

    private static bool WaitFor(Func<bool> condition, Stopwatch clock, TimeSpan timeout, CancellationToken cancel)
    {
        while (!condition())
        {
            if (clock.Elapsed > timeout || cancel.IsCancellationRequested)
                return false;
            Thread.Sleep(1);
        }
        return true;
    }

    /// <summary>IPv4 + UDP header and 4 payload bytes. The kernel fills in the IP checksum of a raw packet; UDP checksum 0 means none (IPv4).</summary>
    internal static void Build(Span<byte> p, IPAddress destination, int port)
    {
        p.Clear();
        p[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(p[2..], (ushort)p.Length);
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = 17;
        destination.GetAddressBytes().CopyTo(p[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(p[22..], (ushort)port);
        BinaryPrimitives.WriteUInt16BigEndian(p[24..], (ushort)(p.Length - 20));
        "ctfw"u8.CopyTo(p[28..]);
    }
}
