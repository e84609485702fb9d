using System.Buffers.Binary;
using System.Globalization;
using System.Net;

namespace Ctfw.Lab.Network;

/// <summary>
/// The identifying fields of a packet as conntrack's tuple sees them: addresses, protocol, and
/// ports (TCP/UDP/SCTP/UDP-Lite) or type/code/id (ICMP/ICMPv6 queries). Other protocols: addresses only.
/// </summary>
public readonly record struct FlowKey(byte Protocol, IPAddress Src, IPAddress Dst, int SrcPort, int DstPort, int IcmpType, int IcmpCode, int IcmpId)
{
    public const int None = -1;

    /// <summary>Reads the key of a packet without extension headers or IPv4 options (all the lab sends).</summary>
    public static FlowKey FromPacket(ReadOnlySpan<byte> packet)
    {
        bool v6 = packet[0] >> 4 == 6;
        int l3 = v6 ? 40 : (packet[0] & 0xF) * 4;
        byte proto = v6 ? packet[6] : packet[9];
        var src = new IPAddress(v6 ? packet.Slice(8, 16) : packet.Slice(12, 4));
        var dst = new IPAddress(v6 ? packet.Slice(24, 16) : packet.Slice(16, 4));
        ReadOnlySpan<byte> l4 = packet[l3..];
        return proto switch
        {
            6 or 17 or 132 or 136 when l4.Length >= 4 => new FlowKey(proto, src, dst,
                BinaryPrimitives.ReadUInt16BigEndian(l4), BinaryPrimitives.ReadUInt16BigEndian(l4[2..]), None, None, None),
            1 or 58 when l4.Length >= 8 => new FlowKey(proto, src, dst, None, None, l4[0], l4[1], BinaryPrimitives.ReadUInt16BigEndian(l4[4..])),
            _ => new FlowKey(proto, src, dst, None, None, None, None, None),
        };
    }

    /// <summary>The packet quoted by an ICMP error (IPv4 types 3, 4, 5, 11, 12; ICMPv6 types below 128).</summary>
    public static bool TryGetIcmpErrorQuote(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> quoted)
    {
        quoted = default;
        bool v6 = packet[0] >> 4 == 6;
        int l3 = v6 ? 40 : (packet[0] & 0xF) * 4;
        byte proto = v6 ? packet[6] : packet[9];
        if (packet.Length < l3 + 8 + 20)
            return false;
        byte type = packet[l3];
        bool error = v6 ? proto == 58 && type < 128 : proto == 1 && type is 3 or 4 or 5 or 11 or 12;
        if (error)
            quoted = packet[(l3 + 8)..];
        return error;
    }
}

/// <summary>One direction's tuple as <c>conntrack -L</c> prints it.</summary>
public sealed record ConntrackTuple(IPAddress Src, IPAddress Dst, int SrcPort, int DstPort, int IcmpType, int IcmpCode, int IcmpId)
{
    public bool Matches(in FlowKey key) =>
        Src.Equals(key.Src) && Dst.Equals(key.Dst)
        && (SrcPort == FlowKey.None || SrcPort == key.SrcPort)
        && (DstPort == FlowKey.None || DstPort == key.DstPort)
        && (IcmpType == FlowKey.None || IcmpType == key.IcmpType)
        && (IcmpCode == FlowKey.None || IcmpCode == key.IcmpCode)
        && (IcmpId == FlowKey.None || IcmpId == key.IcmpId);
}

/// <summary>
/// One line of <c>conntrack -L</c> (conntrack-tools default output), e.g.
/// <c>tcp 6 431999 ESTABLISHED src=10.99.1.2 dst=10.99.2.2 sport=40001 dport=80 src=10.99.2.2
/// dst=10.99.1.2 sport=80 dport=40001 [ASSURED] mark=0 use=1</c>.
/// </summary>
public sealed record ConntrackEntry(
    string ProtocolName,
    byte Protocol,
    int TimeoutSeconds,
    string? TcpState,
    ConntrackTuple Original,
    ConntrackTuple Reply,
    IReadOnlyList<string> Flags,
    string Line)
{
    public bool Matches(in FlowKey key) => key.Protocol == Protocol && (Original.Matches(key) || Reply.Matches(key));

    public static IReadOnlyList<ConntrackEntry> ParseAll(string output)
    {
        List<ConntrackEntry> entries = [];
        foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (TryParse(line, out ConntrackEntry? e))
                entries.Add(e);
        }
        return entries;
    }

    public static bool TryParse(string line, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ConntrackEntry? entry)
    {
        entry = null;
        string[] t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (t.Length < 5
            || !byte.TryParse(t[1], NumberStyles.None, CultureInfo.InvariantCulture, out byte proto)
            || !int.TryParse(t[2], NumberStyles.None, CultureInfo.InvariantCulture, out int timeout))
        {
            return false;
        }
        int i = 3;
        string? state = null;
        if (!t[i].Contains('=', StringComparison.Ordinal) && !t[i].StartsWith('['))
            state = t[i++];

        var fields = new Dictionary<string, string>[] { new(StringComparer.Ordinal), new(StringComparer.Ordinal) };
        List<string> flags = [];
        int dir = 0;
        for (; i < t.Length; i++)
        {
            if (t[i].StartsWith('[') && t[i].EndsWith(']'))
            {
                flags.Add(t[i][1..^1]);
                continue;
            }
            int eq = t[i].IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                continue;
            string key = t[i][..eq];
            if (key is not ("src" or "dst" or "sport" or "dport" or "type" or "code" or "id"))
                continue; // mark=, use=, zone=, secctx= …
            if (fields[dir].ContainsKey(key))
            {
                if (dir == 1)
                    break;
                dir = 1; // a repeated key starts the reply tuple
            }
            fields[dir][key] = t[i][(eq + 1)..];
        }
        if (!TryTuple(fields[0], out ConntrackTuple? orig) || !TryTuple(fields[1], out ConntrackTuple? reply))
            return false;
        entry = new ConntrackEntry(t[0], proto, timeout, state, orig, reply, flags, line);
        return true;
    }

    private static bool TryTuple(Dictionary<string, string> f, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ConntrackTuple? tuple)
    {
        tuple = null;
        if (!f.TryGetValue("src", out string? s) || !f.TryGetValue("dst", out string? d)
            || !IPAddress.TryParse(s, out IPAddress? src) || !IPAddress.TryParse(d, out IPAddress? dst))
        {
            return false;
        }
        tuple = new ConntrackTuple(src, dst, Int(f, "sport"), Int(f, "dport"), Int(f, "type"), Int(f, "code"), Int(f, "id"));
        return true;
    }

    private static int Int(Dictionary<string, string> f, string key) =>
        f.TryGetValue(key, out string? v) && int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : FlowKey.None;
}
