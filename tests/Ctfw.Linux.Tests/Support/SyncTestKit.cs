using System.Buffers.Binary;
using System.Text.RegularExpressions;
using Ctfw.Capture;
using Ctfw.Conntrack;
using Ctfw.Linux.Sync;
using Ctfw.Packets;

namespace Ctfw.Linux.Tests.Support;

/// <summary>A sink that keeps every datagram (copied), optionally dropping some on purpose.</summary>
internal sealed class RecordingSink : IDatagramSink
{
    public List<byte[]> Datagrams { get; } = [];

    /// <summary>Returns true for a datagram (index, bytes) that should be "lost".</summary>
    public Func<int, byte[], bool>? Lose { get; set; }

    public int Sent { get; private set; }

    public int Lost { get; private set; }

    public void Send(ReadOnlySpan<byte> datagram)
    {
        byte[] copy = datagram.ToArray();
        int index = Sent++;
        if (Lose?.Invoke(index, copy) == true)
        {
            Lost++;
            return;
        }
        Datagrams.Add(copy);
    }

    /// <summary>Takes the datagrams recorded so far (the list is emptied).</summary>
    public List<byte[]> Take()
    {
        List<byte[]> all = [.. Datagrams];
        Datagrams.Clear();
        return all;
    }
}

internal sealed class RecordingReceiver : ISyncReceiver
{
    public List<(SyncMessageType Type, KernelConnection Connection)> Connections { get; } = [];

    public int ResyncRequests { get; private set; }

    public void OnConnection(SyncMessageType type, in KernelConnection connection) => Connections.Add((type, connection));

    public void OnResyncRequest() => ResyncRequests++;
}

internal static partial class SyncTestKit
{
    public static string DataPath(string name) => Path.Combine(RepoPaths.Root, "tests", "data", "sync", name);

    /// <summary>The UDP payloads of a capture with their source address and port (IPv4 only, as the sync link is).</summary>
    public static List<(string Source, int SourcePort, int DestPort, byte[] Payload)> ReadUdp(string pcap)
    {
        var list = new List<(string, int, int, byte[])>();
        using CaptureReader reader = CaptureReader.Open(pcap);
        while (reader.TryRead(out CaptureRecord record))
        {
            if (CapturedDatagram.Get(record, ChecksumPolicy.Off, out CapturedDatagram d) != LinkResult.Ip)
                continue;
            ReadOnlySpan<byte> ip = d.Packet;
            if (ip[0] >> 4 != 4 || ip[9] != IpProto.Udp)
                continue;
            int ihl = (ip[0] & 0x0F) * 4;
            ReadOnlySpan<byte> udp = ip[ihl..];
            int length = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
            string src = $"{ip[12]}.{ip[13]}.{ip[14]}.{ip[15]}";
            list.Add((src, BinaryPrimitives.ReadUInt16BigEndian(udp), BinaryPrimitives.ReadUInt16BigEndian(udp[2..]), udp[8..length].ToArray()));
        }
        Assert.Null(reader.Error);
        return list;
    }

    /// <summary>The messages of one datagram, split by their length fields.</summary>
    public static List<byte[]> Messages(byte[] datagram)
    {
        var list = new List<byte[]>();
        int at = 0;
        while (at + SyncWire.HeaderSize <= datagram.Length)
        {
            int len = SyncWire.LengthOf(datagram.AsSpan(at));
            Assert.InRange(len, SyncWire.HeaderSize, datagram.Length - at);
            list.Add(datagram.AsSpan(at, len).ToArray());
            at += len;
        }
        Assert.Equal(datagram.Length, at);
        return list;
    }

    public static ConnTuple Tuple(string src, string dst, byte protocol, ushort srcId, ushort dstId, ushort zone = 0)
    {
        Assert.True(IpAddress.TryParse(src, out IpAddress s, out bool v6));
        Assert.True(IpAddress.TryParse(dst, out IpAddress d, out _));
        return new ConnTuple { Src = s, Dst = d, SrcId = srcId, DstId = dstId, Protocol = protocol, IpVersion = v6 ? (byte)6 : (byte)4, Zone = zone };
    }

    public static KernelConnection Entry(ConnTuple original, CtStatus status, uint timeout, TcpState state = TcpState.None, uint mark = 0)
    {
        Assert.True(original.TryInvert(out ConnTuple reply));
        return new KernelConnection { Original = original, Reply = reply, Status = status, TimeoutSeconds = timeout, TcpState = state, Mark = mark };
    }

    /// <summary>
    /// One line of <c>conntrack -L</c> as the kernel printed it: the ORIGINAL and REPLY tuples (the first
    /// and second src/dst/sport/dport or type/code/id groups), with the entry's zone.
    /// </summary>
    public static (ConnTuple Original, ConnTuple Reply) ParseConntrackLine(string line)
    {
        string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        byte proto = byte.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture);
        var values = new Dictionary<string, List<string>>();
        foreach (Match m in KeyValue().Matches(line))
        {
            if (!values.TryGetValue(m.Groups[1].Value, out List<string>? l))
                values[m.Groups[1].Value] = l = [];
            l.Add(m.Groups[2].Value);
        }
        ConnTuple T(int i)
        {
            ushort a = 0, b = 0;
            if (proto is IpProto.Tcp or IpProto.Udp)
            {
                a = ushort.Parse(values["sport"][i], System.Globalization.CultureInfo.InvariantCulture);
                b = ushort.Parse(values["dport"][i], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (proto is IpProto.Icmp or IpProto.Icmpv6)
            {
                a = ushort.Parse(values["id"][i], System.Globalization.CultureInfo.InvariantCulture);
                b = (ushort)((int.Parse(values["type"][i], System.Globalization.CultureInfo.InvariantCulture) << 8)
                    | int.Parse(values["code"][i], System.Globalization.CultureInfo.InvariantCulture));
            }
            ushort zone = values.TryGetValue("zone", out List<string>? z) ? ushort.Parse(z[0], System.Globalization.CultureInfo.InvariantCulture) : (ushort)0;
            return Tuple(values["src"][i], values["dst"][i], proto, a, b, zone);
        }
        return (T(0), T(1));
    }

    [GeneratedRegex(@"\b(src|dst|sport|dport|type|code|id|zone)=([0-9a-fA-F.:]+)")]
    private static partial Regex KeyValue();
}
