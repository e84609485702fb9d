using System.Diagnostics;
using System.Text;
using Ctfw.Linux.Nfqueue;

namespace Ctfw.Linux.Tests.Privileged;

/// <summary>A packet as a test saw it (copied out of the receive slot).</summary>
public sealed record SeenPacket(
    uint Id, ushort HwProtocol, NfHook Hook, byte Family, ushort Queue, uint InputInterface, uint OutputInterface,
    uint Mark, PacketFlags Flags, uint OriginalLength, byte[] Payload, uint ConntrackInfo, byte[] ConntrackAttributes)
{
    /// <summary>The UDP data as ASCII (IPv4 or IPv6 without extension headers).</summary>
    public string UdpText
    {
        get
        {
            int l3 = (Payload[0] >> 4) == 4 ? (Payload[0] & 0xF) * 4 : 40;
            return Encoding.ASCII.GetString(Payload, l3 + 8, Payload.Length - l3 - 8);
        }
    }

    public static SeenPacket From(in PacketView p) => new(
        p.PacketId, p.HwProtocol, p.Hook, p.Family, p.Queue, p.InputInterface, p.OutputInterface,
        p.Mark, p.Flags, p.OriginalLength, p.Payload.ToArray(), p.ConntrackInfo, p.ConntrackAttributes.ToArray());
}

/// <summary>Drives an <see cref="NfqueueSocket"/> the way the daemon will: receive a batch, verdict each packet in order.</summary>
public static class QueuePump
{
    public delegate (NfVerdict Verdict, uint? Mark) Decide(SeenPacket packet, int index);

    /// <summary>Receives until <paramref name="expected"/> packets arrived or <paramref name="timeout"/> passed; flushes at the end.</summary>
    public static List<SeenPacket> Run(NfqueueSocket queue, int expected, TimeSpan timeout, Decide decide)
    {
        List<SeenPacket> seen = [];
        var packets = new PacketView[64];
        var clock = Stopwatch.StartNew();
        while (seen.Count < expected && clock.Elapsed < timeout)
        {
            int n = queue.Receive(packets);
            if (n < 0)
                throw new InvalidOperationException($"receive failed: {queue.LastError}");
            for (int i = 0; i < n; i++)
            {
                var p = SeenPacket.From(packets[i]);
                (NfVerdict verdict, uint? mark) = decide(p, seen.Count);
                if (mark is { } m)
                    queue.Verdicts.Add(p.Id, verdict, m);
                else
                    queue.Verdicts.Add(p.Id, verdict);
                seen.Add(p);
            }
        }
        queue.Verdicts.Flush();
        return seen;
    }

    /// <summary>Pumps on a background thread until <paramref name="stop"/> is cancelled; returns what it saw.</summary>
    public static Task<List<SeenPacket>> Background(NfqueueSocket queue, Decide decide, CancellationToken stop) =>
        Task.Factory.StartNew(
            () =>
            {
                List<SeenPacket> seen = [];
                var packets = new PacketView[64];
                while (!stop.IsCancellationRequested)
                {
                    int n = queue.Receive(packets);
                    if (n < 0)
                        throw new InvalidOperationException($"receive failed: {queue.LastError}");
                    for (int i = 0; i < n; i++)
                    {
                        var p = SeenPacket.From(packets[i]);
                        (NfVerdict verdict, uint? mark) = decide(p, seen.Count);
                        if (mark is { } m)
                            queue.Verdicts.Add(p.Id, verdict, m);
                        else
                            queue.Verdicts.Add(p.Id, verdict);
                        seen.Add(p);
                    }
                }
                queue.Verdicts.Flush();
                return seen;
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
}
